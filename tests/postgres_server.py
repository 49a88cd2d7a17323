"""A throwaway PostgreSQL cluster (Debian's binaries) on a free loopback port for the tests.

``initdb -A trust --no-sync`` in a temporary folder, ``pg_ctl start`` with fsync off (but commits
synchronous: a stop ``-m immediate`` loses no committed row); as the
``postgres`` user when we are root (PostgreSQL refuses root). One database per test
(:meth:`PostgresServer.create_database`); :meth:`stop` and :meth:`start` take the same cluster
down and up again (the outage tests).
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.prometheus_server import free_port

SUPERUSER = "postgres"


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/*/bin; None: missing."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A PostgreSQL cluster of our own: ``url(dbname)``, ``create_database()``, ``stop()``, ``start()``, ``close()``.

    Parameters
    ----------
    bindir
        The folder of ``initdb``, ``pg_ctl`` and ``postgres`` (see :func:`postgres_bin`).
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bizra-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:  # the cluster belongs to `postgres`, which must reach the folder
            shutil.chown(self.dir, SUPERUSER, SUPERUSER)
            os.chmod(self.dir, 0o700)
        self._names = itertools.count(1)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "--no-sync", "-E", "UTF8",
                  "--locale=C")
        self.start()

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}\n{log}")
        return done

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        """The SQLAlchemy URL of database ``dbname`` (any ``password`` is accepted: trust authentication)."""
        auth = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        """Start the cluster (again) on its port; returns once it accepts connections."""
        # fsync off: fast, and a commit still reaches the OS before it returns, so a crash of the server
        # (stop -m immediate) loses nothing; synchronous_commit off would lose the last commits of a crash
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        """Stop it at once (``-m immediate``: like a crash, every connection cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        if self._as_root:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0

    def close(self) -> None:
        """Stop it (if running) and remove its folder."""
        try:
            if self.running():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
