"""`serve --processes N`: N server processes on one machine sharing the listening sockets, restarted when killed.

The parent binds the ports, migrates the store and settles the API token once, then forks
N children; each runs the whole server (its own IOLoop, replica name ``<name>/<i>``) on the
inherited sockets, and the kernel spreads the connections over them; a child dies with its parent
(``PR_SET_PDEATHSIG``), so a parent killed with SIGKILL leaves no process holding the port. The processes share
live events, the score and leadership through Redis (``--redis-url`` is required), and
the store through the database. Each process also listens on a private loopback port for its
own ``/metrics``, so that ``/metrics`` on the shared port answers for every process (each series
labelled ``replica``), whichever process the scrape reaches. The parent only supervises: it forwards SIGTERM, SIGINT
and SIGHUP to the children, and starts again any child that ends while it is not stopping
(killed, crashed, or unable to start because the store is down), after a second, doubling
up to a minute while the child keeps ending within :data:`STABLE_AFTER` seconds. Settings
and the store's schema are checked once, before forking: a wrong one stops the command there.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Callable

from bizra_nb.errors import InvalidSetting
from bizra_nb.settings import Settings
from bizra_nb.worker_process import die_with

log = logging.getLogger("bizra.processes")

RESTART_DELAY = 1.0  # seconds before an ended child is started again
MAX_RESTART_DELAY = 60.0  # the longest wait, for a child that keeps ending at once
STABLE_AFTER = 30.0  # seconds a child must live for its next end to be waited for RESTART_DELAY again


def default_replica_name(settings: Settings, port: int) -> str:
    """``--replica-name``, else ``<host name>:<port>``: unique per machine and port, bounded in number."""
    return settings.replica_name or f"{socket.gethostname()}:{port}"


def check_processes(settings: Settings) -> None:
    """More than one process needs Redis to share events, the score and leadership."""
    if settings.processes > 1 and not settings.redis_url:
        raise InvalidSetting(f"processes {settings.processes} needs --redis-url (BIZRA_REDIS_URL): the processes share "
                             "live events, the score and the leader's lease through Redis; use --processes 1 without it",
                             field="processes")


def serve_processes(settings: Settings, *, ready: Callable[[dict], None] | None = None) -> int:
    """Run ``settings.processes`` server processes until a stop signal; returns the exit status."""
    from bizra_nb.store import Store
    from bizra_server.app import bind, serve
    from bizra_server.auth import load_or_create_token

    check_processes(settings)
    sockets = {"http": bind(settings.port, settings.host)}
    if settings.ws_port >= 0:
        sockets["ws"] = bind(settings.ws_port, settings.host, flag="--ws-port")
    ports = {name: socks[0].getsockname()[1] for name, socks in sockets.items()}
    private = [bind(0, "127.0.0.1") for _ in range(settings.processes)]  # each process's own /metrics
    token, generated = load_or_create_token(settings.api_token, settings.data_dir)
    Store.from_url(settings.store_url, data_dir=settings.data_dir).close()  # migrate once, before any child opens it
    base = default_replica_name(settings, ports["http"])
    child_settings = settings.replace(port=ports["http"], ws_port=ports.get("ws", -1), api_token=token, processes=1)

    parent = os.getpid()

    def child(index: int) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        die_with(parent)
        status = 0
        siblings = [(f"{base}/{other}", f"http://127.0.0.1:{socks[0].getsockname()[1]}/metrics")
                    for other, socks in enumerate(private) if other != index]
        try:
            asyncio.run(serve(child_settings.replace(replica_name=f"{base}/{index}"),
                              sockets={**sockets, "metrics": private[index]}, metric_siblings=siblings))
        except BaseException as exc:  # noqa: BLE001 - a child reports and exits; the parent decides
            log.error("process %s/%d stopped: %r", base, index, exc)
            status = 1
        finally:
            logging.shutdown()
            os._exit(status)

    children: dict[int, int] = {}  # pid -> index
    started: dict[int, float] = {}  # index -> monotonic start
    quick_ends: dict[int, int] = dict.fromkeys(range(settings.processes), 0)  # index -> ends in a row within STABLE_AFTER

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            child(index)
        children[pid] = index
        started[index] = time.monotonic()

    stopping = False

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for index in range(settings.processes):
        spawn(index)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    if ready is not None:
        ready({"ports": ports, "token": token, "token_generated": generated, "replica": base,
               "processes": settings.processes, "pids": sorted(children)})
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, None)
        if index is None or stopping:
            continue
        how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exited with status {os.WEXITSTATUS(status)}")
        quick_ends[index] = quick_ends[index] + 1 if time.monotonic() - started[index] < STABLE_AFTER else 1
        delay = min(MAX_RESTART_DELAY, RESTART_DELAY * 2 ** (quick_ends[index] - 1))
        log.error("process %s/%d %s: starting it again in %.0f s", base, index, how, delay)
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)  # a stop signal meanwhile ends the wait
        if not stopping:
            spawn(index)
    for socks in [*sockets.values(), *private]:
        for sock in socks:
            sock.close()
    return 0
