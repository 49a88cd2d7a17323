"""`bizra-nb serve --processes N`: several processes behind one port, supervised, one metrics view, clean stops."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TOKEN, wait_until
from tests.prometheus_server import free_port


def serve(tmp_path: Path, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(port), "--ws-port", "-1",
           "--data-dir", str(tmp_path / "data"), "--reports-dir", str(tmp_path / "reports"),
           "--audit-schedule", "", "--benchmark-schedule", "", "--api-token", TOKEN, *extra]
    log = open(tmp_path / f"serve-{port}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    return proc, f"http://127.0.0.1:{port}"


def replicas_seen(url: str, count: int) -> dict[str, int]:
    """Ask /health until ``count`` distinct processes answered: ``{replica name: pid}``."""
    seen: dict[str, int] = {}

    def more() -> bool:
        try:
            replica = httpx.get(url + "/health", timeout=5, headers={"Connection": "close"}).json()["replica"]
        except httpx.HTTPError:
            return False
        seen[replica["name"]] = replica["pid"]
        return len(seen) >= count

    wait_until(more, timeout=60, interval=0.05)
    return seen


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) is not alive
    return "Z" not in subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout


def test_more_than_one_process_needs_redis(tmp_path):
    proc, _ = serve(tmp_path, "--processes", "2")
    assert proc.wait(timeout=60) == 2
    log = next(tmp_path.glob("serve-*.log")).read_text()
    assert "processes 2 needs --redis-url" in log and "BIZRA_REDIS_URL" in log
    assert "Traceback" not in log


def test_two_processes_share_the_port_events_and_metrics(tmp_path, redis_server):
    proc, url = serve(tmp_path, "--processes", "2", "--redis-url", redis_server.url)
    try:
        processes = replicas_seen(url, 2)
        assert set(processes.values()) == set(descendants(proc.pid))  # the parent's two children answer
        assert len({name.rsplit("/", 1)[0] for name in processes}) == 1  # host:port/0 and host:port/1

        # any scrape answers for both processes: each series labelled with its replica
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text)}
        assert {s.labels["replica"] for s in families["bizra_replica_info"].samples} == set(processes)
        leaders = {s.labels["replica"]: s.value for s in families["bizra_leader"].samples}
        assert sorted(leaders.values()) == [0.0, 1.0]  # exactly one leads
        assert {s.labels["replica"] for s in families["bizra_events"].samples} == set(processes)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_a_killed_process_is_started_again_and_sigterm_stops_them_all(tmp_path, redis_server):
    proc, url = serve(tmp_path, "--processes", "2", "--redis-url", redis_server.url)
    try:
        first = replicas_seen(url, 2)
        victim_name, victim = sorted(first.items())[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not alive(victim), timeout=10)

        def restarted() -> bool:
            now = replicas_seen(url, 2)
            return now.get(victim_name) not in (None, victim)

        wait_until(restarted, timeout=60, interval=0.2)  # the same replica name, a new process
        children = descendants(proc.pid)
        assert len(children) == 2 and victim not in children
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    assert not any(alive(child) for child in children)  # no orphan left serving
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)


def test_a_process_that_cannot_start_stops_the_others_with_its_error(tmp_path, redis_server):
    # a store URL nobody answers: each process fails at start, the parent exits non-zero, nobody stays
    dead = f"postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/none"
    proc, url = serve(tmp_path, "--processes", "2", "--redis-url", redis_server.url, env={"BIZRA_STORE_URL": dead})
    assert proc.wait(timeout=60) != 0
    log = next(tmp_path.glob("serve-*.log")).read_text()
    assert "unavailable" in log and "secret" not in log


def test_a_child_that_stops_by_itself_is_started_again_the_other_keeps_serving(tmp_path, redis_server):
    proc, url = serve(tmp_path, "--processes", "2", "--redis-url", redis_server.url)
    try:
        first = replicas_seen(url, 2)
        (stopped_name, stopped), (other_name, other) = sorted(first.items())
        os.kill(stopped, signal.SIGTERM)  # a clean stop of one child (exit 0) is not a reason to stop all
        wait_until(lambda: replicas_seen(url, 2).get(stopped_name) not in (None, stopped), timeout=60, interval=0.2)
        assert replicas_seen(url, 2)[other_name] == other and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_the_children_die_with_a_killed_parent(tmp_path, redis_server):
    proc, url = serve(tmp_path, "--processes", "2", "--redis-url", redis_server.url)
    children = list(replicas_seen(url, 2).values())
    proc.kill()
    proc.wait(timeout=10)
    wait_until(lambda: not any(alive(child) for child in children), timeout=30, interval=0.1)
    wait_until(lambda: _refused(url), timeout=10)  # nobody holds the port: a new serve can take it


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False
