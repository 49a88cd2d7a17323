"""The run worker: executes one notebook with papermill in its own process, reporting progress as JSON lines.

``python -m bizra_nb.notebook_exec --input NB --output OUT --parameters JSON --kernel NAME --cell-timeout S``

stdout carries one JSON object a line: ``{"event": "progress", "cell": i, "cells": n}`` while
running, and ``{"event": "error", "type", "message", "cell", "source"}`` when the run fails
(exit code 1). Running it in a process of its own lets the runner cancel it and kill a
run that hangs, whatever its kernel does.

``--warm`` (a worker of :class:`bizra_nb.kernel_pool.KernelPool`): start the kernel now, run
:data:`WARM_UP` in it silently (imports :data:`PRELOAD`, builds a figure; no execution count, no
history, no name in the notebook's namespace), say
``{"event": "ready", "kernel_pid": p}``, then wait for ONE job, a JSON line on stdin
(``input``, ``output``, ``parameters``, ``cell_timeout``, ``env``: the run's own variables),
run it in that kernel exactly as above, say ``{"event": "finished", "code": c}`` once the notebook
is written, shut the kernel down and exit with ``c``. End of stdin, SIGTERM or a kernel that dies
while waiting: the worker shuts its kernel down and exits.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
from typing import Callable

from papermill.engines import NBClientEngine, papermill_engines

from bizra_nb.errors import clip_message
from bizra_nb.worker_process import die_with

_current = {"index": None}
PRELOAD = ("pandas", "plotly.express", "plotly.graph_objects", "plotly.subplots", "plotly.io", "IPython.display",
           "bizra_nb", "bizra_nb.notebook", "bizra_nb.plots", "bizra_nb.summaries", "bizra_nb.cmdb",
           "bizra_nb.diagnose", "bizra_nb.sources", "bizra_nb.rca", "bizra_nb.paths", "bizra_nb.loadgen",
           "bizra_nb.audit", "bizra_nb.store")  # what the platform's notebooks import
WARM_UP = f"""
import importlib
for name in {PRELOAD!r}:
    importlib.import_module(name)
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
pio.renderers  # plotly loads its renderers (and nbformat, jsonschema) on first use: seconds
pio.templates["plotly_white"]
fig = make_subplots(rows=2, cols=1)
fig.add_trace(go.Scatter(x=[0, 1], y=[1, 2], mode="lines", name="a"), row=1, col=1)
fig.add_trace(go.Bar(x=[1], y=["a"], orientation="h"), row=2, col=1)
fig.add_vline(x=0.5, line=dict(dash="dot"), row=1, col=1)
fig.add_hline(y=1, line=dict(dash="dot"), annotation_text="t")
fig.add_annotation(text="t", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
fig.update_layout(template="plotly_white", height=300)
go.Figure(go.Histogram(x=[1, 2], nbinsx=2)).to_dict()
pio.to_html(fig, include_plotlyjs=False, full_html=False, validate=False)
pio.to_json(fig, validate=False)
"""  # run in a namespace of its own: the notebook's sees no name of it; figures' machinery is loaded
KERNEL_CHECK = 1.0  # seconds between a waiting warm worker's checks that its kernel lives


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _position(cells: list[tuple[bool, str]], index: int | None) -> tuple[int | None, str]:
    """1-based position of cell ``index`` in the notebook as written (without papermill's injected cell).

    ``cells`` is the (injected?, source) list taken before execution: papermill inserts
    error cells into the notebook afterwards, which would shift the indexes.
    """
    if index is None or index >= len(cells):
        return None, ""
    injected = sum(1 for was_injected, _ in cells[:index] if was_injected)
    source = cells[index][1].strip().splitlines()
    return index - injected + 1, (source[0][:160] if source else "")


class ProgressEngine(NBClientEngine):
    """papermill's nbclient engine, reporting each cell's start and completion."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        start, complete = nb_man.cell_start, nb_man.cell_complete
        total = len(nb_man.nb.cells)

        def cell_start(cell, cell_index=None, **kw):
            _current["index"] = cell_index
            return start(cell, cell_index=cell_index, **kw)

        def cell_complete(cell, cell_index=None, **kw):
            result = complete(cell, cell_index=cell_index, **kw)
            emit(event="progress", cell=(cell_index or 0) + 1, cells=total)
            return result

        nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
        _current["cells"] = [("injected-parameters" in c.metadata.get("tags", []), c.source) for c in nb_man.nb.cells]
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register("bizra", ProgressEngine)


def _terminate(signum, frame) -> None:
    raise SystemExit(f"cancelled (signal {signum})")


def execute(notebook: str, output: str, parameters: dict, *, kernel: str, cell_timeout: float,
            cwd: str | None, km=None) -> int:
    """Run ``notebook`` into ``output`` with papermill; 0 on success, else 1 after an ``error`` line.

    ``km``: a kernel manager whose kernel runs already (a warm worker's); None: papermill starts one.
    nbclient neither starts nor shuts down a kernel it is given: the caller shuts it down.
    """
    import papermill

    given = {"km": km} if km is not None else {}
    try:
        papermill.execute_notebook(
            notebook, output, parameters=parameters, engine_name="bizra",
            kernel_name=kernel, progress_bar=False, log_output=False, cwd=cwd,
            execution_timeout=cell_timeout, start_timeout=60, **given,
        )
    except BaseException as exc:  # noqa: BLE001 - every way a run ends badly is reported the same way
        cell, source = _position(_current.get("cells", []), _current["index"])
        name = getattr(exc, "ename", None) or type(exc).__name__
        message = getattr(exc, "evalue", None) or (str(exc).strip().splitlines() or [""])[0]
        emit(event="error", type=name, message=clip_message(str(message)),  # shown without a token: no file content
             cell=cell, source=source)
        return 1
    return 0


def serve_one(kernel: str, cwd: str | None) -> int:
    """``--warm``: start the kernel and preload it now, then run the one job stdin brings (see the module)."""
    import nbformat
    import papermill  # noqa: F401 - loaded before the job comes
    from nbclient import NotebookClient
    from nbclient.util import run_sync
    from papermill.utils import chdir

    client = NotebookClient(nbformat.v4.new_notebook(), kernel_name=kernel, startup_timeout=60)
    km = client.create_kernel_manager()  # nbclient's own class and arguments: the kernel a cold run gets
    ran = False
    try:
        with chdir(cwd):  # papermill starts a cold run's kernel in cwd too
            client.start_new_kernel()
        client.start_new_kernel_client()
        _run_silently(client, f"exec({WARM_UP!r}, {{}})", what="preloading the project")
        emit(event="ready", kernel_pid=km.provisioner.pid)
        job = _wait_for_job(run_sync(km.is_alive))
        if job is None:
            return 0
        if not run_sync(km.is_alive)():  # died as the job came: the run starts a kernel of its own
            client.kc.stop_channels()
            client.kc = None
            run_sync(km.shutdown_kernel)(now=True)  # its leftovers (connection file, sockets)
            km = None
        os.environ.update(job.get("env") or {})
        if km is not None:
            if job.get("env"):
                _run_silently(client, f"__import__('os').environ.update({dict(job['env'])!r})", what="the run's variables")
            client.kc.stop_channels()  # papermill's client opens its own channels
            client.kc = None
        ran = True
        code = execute(job["input"], job["output"], job.get("parameters") or {}, kernel=kernel,
                       cell_timeout=float(job.get("cell_timeout") or 600), cwd=cwd, km=km)
        emit(event="finished", code=code)  # the notebook is written: the run's report need not wait for what follows
        return code
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the kernel is shut down once, without interruption
        if km is not None and km.has_kernel:
            try:  # after a run as nbclient shuts down its own kernel; an idle one at once
                run_sync(km.shutdown_kernel)(now=not ran)
            except Exception as exc:  # noqa: BLE001 - it dies with this process anyway (its parent poller)
                print(f"warm worker: could not shut its kernel down: {exc!r}", file=sys.stderr)


def _run_silently(client, code: str, *, what: str) -> None:
    """Execute ``code`` in ``client``'s kernel without a trace (no output, no count, no history); log a failure."""
    msg_id = client.kc.execute(code, silent=True, store_history=False)
    reply = client.wait_for_reply(msg_id)
    content = (reply or {}).get("content", {})
    if content.get("status") != "ok":
        print(f"warm worker: {what} failed: {content.get('ename')}: {content.get('evalue')}", file=sys.stderr)


def _wait_for_job(alive: Callable[[], bool]) -> dict | None:
    """The job line of stdin; None at its end. Exits (code 3) when the kernel dies meanwhile."""
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], KERNEL_CHECK)
        if readable:
            line = sys.stdin.readline()
            return json.loads(line) if line.strip() else None
        if not alive():
            print("warm worker: its kernel died while it waited for a run", file=sys.stderr)
            raise SystemExit(3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bizra_nb.notebook_exec")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--parameters", default="{}")
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--cell-timeout", type=float, default=600)
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--warm", action="store_true", help="start the kernel now, then run one job read from stdin")
    args = parser.parse_args(argv)
    if not args.warm and not (args.input and args.output):
        parser.error("--input and --output are required (or --warm)")
    signal.signal(signal.SIGTERM, _terminate)
    if os.environ.get("BIZRA_PARENT_PID", "").isdigit():  # its server or Dask worker killed: stop, kernel too
        die_with(int(os.environ["BIZRA_PARENT_PID"]))
    if args.warm:
        return serve_one(args.kernel, args.cwd)
    return execute(args.input, args.output, json.loads(args.parameters), kernel=args.kernel,
                   cell_timeout=args.cell_timeout, cwd=args.cwd)


if __name__ == "__main__":
    sys.exit(main())
