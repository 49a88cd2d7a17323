"""The run worker: executes one notebook with papermill in its own process, reporting progress as JSON lines.

``python -m bizra_nb.notebook_exec --input NB --output OUT --parameters JSON --kernel NAME --cell-timeout S``

stdout carries one JSON object a line: ``{"event": "progress", "cell": i, "cells": n}`` while
running, and ``{"event": "error", "type", "message", "cell", "source"}`` when the run fails
(exit code 1). Running it in a process of its own lets the runner cancel it and kill a
run that hangs, whatever its kernel does.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from papermill.engines import NBClientEngine, papermill_engines

from bizra_nb.errors import clip_message
from bizra_nb.worker_process import die_with

_current = {"index": None}


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


def main(argv=None) -> int:
    import papermill

    parser = argparse.ArgumentParser(prog="python -m bizra_nb.notebook_exec")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--parameters", default="{}")
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--cell-timeout", type=float, default=600)
    parser.add_argument("--cwd", default=None)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if os.environ.get("BIZRA_PARENT_PID", "").isdigit():  # its server or Dask worker killed: stop, kernel too
        die_with(int(os.environ["BIZRA_PARENT_PID"]))
    try:
        papermill.execute_notebook(
            args.input, args.output, parameters=json.loads(args.parameters), engine_name="bizra",
            kernel_name=args.kernel, progress_bar=False, log_output=False, cwd=args.cwd,
            execution_timeout=args.cell_timeout, start_timeout=60,
        )
    except BaseException as exc:  # noqa: BLE001 - every way a run ends badly is reported the same way
        cell, source = _position(_current.get("cells", []), _current["index"])
        name = getattr(exc, "ename", None) or type(exc).__name__
        message = getattr(exc, "evalue", None) or (str(exc).strip().splitlines() or [""])[0]
        emit(event="error", type=name, message=clip_message(str(message)),  # shown without a token: no file content
             cell=cell, source=source)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
