"""Start, stop and restart a real ``redis-server`` on a free loopback port in a temporary dir, for the tests."""
from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.prometheus_server import free_port


class RedisServer:
    """``redis-server`` without persistence on ``port``; :meth:`stop` then :meth:`start` is an outage.

    ``stop(save=True)`` writes the data first (``SHUTDOWN SAVE``) and the next :meth:`start` loads it:
    a restart that keeps the data, like a production Redis with persistence.
    """

    def __init__(self, binary: str, workdir: Path, *, port: int | None = None) -> None:
        self.binary = binary
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        self.log = open(self.dir / "redis.log", "a")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--dbfilename", "dump.rdb"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while self.command("PING") != "+PONG":
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {timeout} s")
            time.sleep(0.02)

    def command(self, *args: str) -> str | None:
        """Send one command (inline, RESP) and return the first reply line, or None when nobody answers."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(payload.encode())
                return sock.makefile("rb").readline().decode().rstrip("\r\n")
        except OSError:
            return None

    def freeze(self) -> None:
        """SIGSTOP: Redis hangs (connections stay open, nothing answers) until :meth:`thaw`."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, save: bool = False) -> None:
        """Stop the server (its clients see the connection closed); ``save`` keeps the data for :meth:`start`."""
        if not self.running():
            return
        self.thaw()
        if not save:
            (self.dir / "dump.rdb").unlink(missing_ok=True)
        self.command("SHUTDOWN", "SAVE" if save else "NOSAVE")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.01):
    """:func:`tests.conftest.wait_until` on a running asyncio loop: poll ``predicate`` without blocking it."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
