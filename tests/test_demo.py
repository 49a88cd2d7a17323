"""`bizra-nb demo`: one folder for everything, the page URL at once, and no orphan after SIGTERM or SIGHUP."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from bizra_nb.cli import build_parser, page_url
from bizra_nb.demo import MARKER, prepare_folder
from bizra_nb.errors import InvalidInput
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _runs_a_notebook(pid: int, cmd: str) -> bool:
    """Whether ``pid`` is a notebook worker running a run: a cold one, or a warm one that took a run (its log is
    the run's ``run.log``), not a warm one still waiting."""
    if "bizra_nb.notebook_exec" not in cmd:
        return False
    try:
        return "--input" in cmd or os.readlink(f"/proc/{pid}/fd/2").endswith("/run.log")
    except OSError:
        return False


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                found[child] = (Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
            todo.append(child)
    return found


class DemoProcess:
    """``bizra-nb demo --serve`` as a subprocess, its output lines collected by a thread."""

    def __init__(self, out: Path, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIZRA_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bizra_nb.cli", "demo", "--serve", "--out", str(out), "--port", "0",
             "--month", "2026-10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 300) -> re.Match:
        """The first line (from now on) matching ``pattern``."""
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"the demo ended without {pattern!r}:\n" + "".join(self.lines))
            found = re.search(pattern, line)
            if found:
                return found

    def stop_with(self, signum: int) -> dict[int, str]:
        """Send ``signum``; returns the processes the demo had below it at that moment."""
        below = _descendants(self.proc.pid)
        self.proc.send_signal(signum)
        return below

    def kill(self) -> None:
        for pid in _descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()


def _assert_all_stopped(demo: DemoProcess, below: dict[int, str], url: str) -> None:
    demo.proc.wait(timeout=60)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
    wait_until(lambda: not [pid for pid in below if _alive(pid)], timeout=30, interval=0.2)


@needs_proc
def test_sigterm_while_a_report_runs_stops_the_server_and_the_notebook(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    demo = DemoProcess(tmp_path / "demo", cwd)
    try:
        url = demo.wait_for(r"status page: (http://127\.0\.0\.1:\d+/)").group(1)
        assert not any("report:" in line for line in demo.lines)  # printed as soon as the server is up
        assert httpx.get(url, timeout=10).status_code == 200
        wait_until(lambda: any(_runs_a_notebook(pid, cmd) for pid, cmd in _descendants(demo.proc.pid).items()),
                   timeout=120, interval=0.1)  # the diagnosis notebook is running (not a warm worker waiting)
        below = demo.stop_with(signal.SIGTERM)
        assert any("bizra_nb.cli serve" in cmd for cmd in below.values())
        _assert_all_stopped(demo, below, url)
        assert demo.proc.returncode == 128 + signal.SIGTERM
        assert "stopped by SIGTERM" in "".join(demo.lines)
    finally:
        demo.kill()


@needs_proc
def test_the_demo_writes_only_into_its_folder_and_sighup_stops_its_server(tmp_path):
    """The README's first command, end to end: reports, the page, then a closed terminal."""
    cwd = tmp_path / "cwd"
    keep = cwd / "data" / "demo" / "notes.txt"  # what the demo once removed, whatever --out said
    keep.parent.mkdir(parents=True)
    keep.write_text("mine")
    out = tmp_path / "demo"
    demo = DemoProcess(out, cwd)
    try:
        url = demo.wait_for(r"status page: (http://127\.0\.0\.1:\d+/)").group(1)
        demo.wait_for(r"serving the status page")
        printed = {line.split()[0]: Path(line.split()[-1]) for line in demo.lines
                   if line.startswith("  ") and len(line.split()) == 2}
        for name in ("diagnosis", "benchmark", "audit", "index"):
            assert printed[name].is_file() and printed[name].is_relative_to(out.resolve()), "".join(demo.lines)
        summary = json.loads((printed["diagnosis"].parent / "summary.json").read_text())
        assert summary["status"] == "succeeded"
        truth = json.loads((out / "truth.json").read_text())
        assert summary["summary"]["top_causes"][0]["service"] == truth[-1]["service"]
        audit = json.loads((printed["audit"].parent / "summary.json").read_text())["summary"]
        assert audit["month"] == "2026-10" and audit["incidents"] == 3
        index = printed["index"].read_text()
        for name in ("diagnosis", "benchmark", "audit"):
            assert printed[name].parent.name in index
        assert keep.read_text() == "mine" and sorted(p.name for p in cwd.rglob("*")) == ["data", "demo", "notes.txt"]
        # the page serves the demo's store
        assert httpx.get(url, timeout=10).status_code == 200
        assert len(httpx.get(url + "rca/incidents", timeout=10).json()["incidents"]) == 3

        below = demo.stop_with(signal.SIGHUP)
        assert any("bizra_nb.cli serve" in cmd for cmd in below.values())
        _assert_all_stopped(demo, below, url)
        assert demo.proc.returncode == 0
    finally:
        demo.kill()


def test_a_folder_that_is_not_the_demos_is_refused_and_kept(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    (tmp_path / "reports").mkdir()
    with pytest.raises(InvalidInput, match="not empty and is not a demo folder"):
        prepare_folder(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work" and (tmp_path / "reports").is_dir()
    assert not (tmp_path / MARKER).exists()


def test_a_second_run_replaces_only_the_demos_own_files(tmp_path):
    prepare_folder(tmp_path)
    for name in ("metrics.parquet", "truth.json", "bizra.sqlite3", "api_token"):
        (tmp_path / name).write_text("old")
    (tmp_path / "reports" / "incident").mkdir(parents=True)
    (tmp_path / "my-notes.md").write_text("kept")  # put there by the user
    prepare_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "my-notes.md"]


def test_the_demo_cli_refuses_a_folder_in_one_line(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "demo", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is not a demo folder" in result.stderr and (tmp_path / "thesis.tex").exists()


def test_the_readme_names_the_url_and_folder_the_demo_uses():
    readme = (ROOT / "README.md").read_text()
    port = build_parser().parse_args(["demo"]).port
    paragraph = readme[readme.index("`make demo` generates"):].split("\n\n")[0]
    assert page_url("127.0.0.1", port) in paragraph and "data/demo" in paragraph
