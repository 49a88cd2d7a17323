"""Start and stop a real Alertmanager (Debian's ``prometheus-alertmanager``) on free loopback ports for the tests."""
from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.prometheus_server import free_port, stop_process, wait_ready

CONFIG = """\
route:
  receiver: "nowhere"
receivers:
  - name: "nowhere"
"""


class AlertmanagerProcess:
    """``prometheus-alertmanager`` with a minimal config (one receiver that sends nothing), clustering off,
    its state in ``workdir``; ``url`` once ready."""

    def __init__(self, binary: str, workdir: Path, *, config: str = CONFIG) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(config)
        self.log_path = workdir / "alertmanager.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],  # empty: no cluster
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(self.proc, self.url, self.log_path, "alertmanager")
        except RuntimeError:
            self.log.close()
            raise

    def silences(self) -> list[dict]:
        """Every silence, as the Alertmanager's API v2 gives them (``GET /api/v2/silences``)."""
        response = httpx.get(self.url + "/api/v2/silences", timeout=5)
        response.raise_for_status()
        return response.json()

    def silence(self, silence_id: str) -> dict:
        response = httpx.get(f"{self.url}/api/v2/silence/{silence_id}", timeout=5)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
