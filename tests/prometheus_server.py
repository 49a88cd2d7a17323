"""Start and stop a real Prometheus (Debian package) on a free loopback port for the tests."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, name: str, *, timeout: float = 60.0) -> None:
    """Wait until ``url/-/ready`` answers 200 (Prometheus' and Alertmanager's readiness endpoint).

    Raises RuntimeError with the end of ``log_path`` when the process exits first, or (after stopping it)
    when it is not ready within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"{name} did not become ready within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """Terminate ``proc`` (killed when it does not end within ``timeout`` seconds) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PrometheusProcess:
    """``prometheus`` with a given config and TSDB dir; ``url`` once ready."""

    def __init__(self, binary: str, workdir: Path, *, config: str = "global: {}\n", tsdb: Path | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(config)
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tsdb or workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
             "--web.enable-lifecycle", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(self.proc, self.url, workdir / "prometheus.log", "prometheus")
        except RuntimeError:
            self.log.close()
            raise

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
