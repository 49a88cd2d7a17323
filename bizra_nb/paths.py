"""Where relative data paths point: the data dir (``BIZRA_DATA_DIR``), never the kernel's working directory.

The rule, used by :func:`bizra_nb.sources.open_source`, :meth:`bizra_nb.cmdb.Cmdb.load`,
the notebooks' path parameters and the audit's store:

- an absolute path (or ``~/...``) is used as given;
- a relative path names a file in the **data dir**: ``$BIZRA_DATA_DIR`` when set
  (the same variable as the server's ``--data-dir`` setting), else ``data`` in the
  **project directory**, the nearest folder at or above the working directory that
  holds ``pyproject.toml`` and ``notebooks/`` (else the working directory itself).
  A relative ``BIZRA_DATA_DIR`` is itself taken from the project directory;
- for a path typed in a shell (``bizra-nb diagnose --data data/demo/metrics.parquet``
  from the project folder) that is not in the data dir, the working directory is
  tried second, so commands keep their usual meaning.

So ``jupyter lab notebooks/explore.ipynb`` (kernel in ``notebooks/``) and
``bizra-nb run`` from the project folder read the same files.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "BIZRA_DATA_DIR"


def project_dir(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding
    ``pyproject.toml`` and ``notebooks/``; ``start`` itself when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def data_dir(environ: dict | None = None) -> Path:
    """The base of relative data paths: ``$BIZRA_DATA_DIR``, else ``<project dir>/data`` (absolute)."""
    environ = os.environ if environ is None else environ
    raw = (environ.get(ENV) or "").strip()
    base = Path(raw).expanduser() if raw else Path("data")
    return base if base.is_absolute() else project_dir() / base


def data_path(path: str | os.PathLike, *, environ: dict | None = None) -> Path:
    """``path`` resolved by the rule of this module (see its docstring).

    Parameters
    ----------
    path
        A file path as a user or a notebook parameter gives it.
    environ
        Where to read ``BIZRA_DATA_DIR``; defaults to ``os.environ``.

    Returns
    -------
    Path
        Absolute. When the file exists neither in the data dir nor in the working
        directory, the data-dir candidate (so an error names where it was looked for).
    """
    given = Path(path).expanduser()
    if given.is_absolute():
        return given
    in_data = data_dir(environ) / given
    if in_data.exists():
        return in_data
    in_cwd = Path.cwd() / given
    return in_cwd if in_cwd.exists() else in_data


def describe(path: str | os.PathLike, *, environ: dict | None = None) -> str:
    """Where a relative ``path`` was looked for, for error messages ("" for an absolute one)."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return ""
    return f" (a relative path is read from the data dir {data_dir(environ)}, set by ${ENV}, then from {Path.cwd()})"
