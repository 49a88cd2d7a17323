"""Notebook parameters: declared, checked, coerced, and which are paths or URLs.

A notebook declares its parameters in the cell tagged ``parameters``, one
assignment a line; the default's literal gives the type and the comment the
help text. A comment that starts with a marker declares what the value names::

    source = "data/demo/metrics.parquet"  # [path|url] dataset file, or a Prometheus URL
    cmdb = "data/demo/cmdb.yaml"          # [path] CMDB file ("": rank without topology)
    target_url = "http://127.0.0.1:8080"  # [url] the server under test

The marker is ``[path]``, ``[url]`` or ``[path|url]`` (``spec["kind"]`` in
:func:`declared_parameters`; ``None`` for plain values) and is not part of the
help text. The server confines such values with :func:`confine_parameters`
(a file inside its data dir, a URL it was configured with); the command line
does not: whoever runs ``bizra-nb run`` may read any file they can.
"""
from __future__ import annotations

import ast
import json
import keyword
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from bizra_nb.errors import InvalidInput, excerpt

KINDS = ("path", "url", "path|url")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}
_MARKER = re.compile(r"^\[\s*(path|url|path\s*\|\s*url|url\s*\|\s*path)\s*\]\s*", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def parameter_kind(help_text: str) -> tuple[str | None, str]:
    """The kind a parameter's comment declares (``path``, ``url``, ``path|url`` or None) and the help without it."""
    match = _MARKER.match(help_text or "")
    if not match:
        return None, help_text or ""
    parts = {p.strip().lower() for p in match.group(1).split("|")}
    return ("path|url" if parts == {"path", "url"} else parts.pop()), help_text[match.end():]


def declared_parameters(path: Path) -> dict[str, dict]:
    """The parameters a notebook declares in its ``parameters`` cell: name → type, default, help, kind.

    papermill infers a type only from an annotation; without one, the type of the
    default's literal is the declared type (``rate = 500.0`` declares a float).
    ``kind`` is ``"path"``, ``"url"``, ``"path|url"`` when the comment starts with
    that marker in brackets, else None.
    """
    import papermill

    declared = papermill.inspect_notebook(str(path))
    for spec in declared.values():
        if spec.get("inferred_type_name") in (None, "None"):
            try:
                value = ast.literal_eval(spec.get("default") or "None")
            except (ValueError, SyntaxError):
                value = None
            spec["inferred_type_name"] = "any" if value is None else type(value).__name__
        spec["kind"], spec["help"] = parameter_kind(spec.get("help") or "")
    return declared


def describe_parameters(declared: dict[str, dict]) -> str:
    return ", ".join(f"{n} ({p['inferred_type_name']})" for n, p in declared.items()) or "none"


def check_parameters(path: Path, parameters: dict[str, Any], *, confine: dict | None = None,
                     declared: dict[str, dict] | None = None) -> dict[str, Any]:
    """Parameters after validation; names the notebook does not declare are rejected, never injected.

    Papermill writes parameter *names* into code verbatim, so a name must be a
    declared identifier; values must be JSON values of the declared type (``true``
    is not a number).

    Parameters
    ----------
    path
        The notebook.
    parameters
        Name → value, as a client sent them.
    confine
        Keywords of :func:`confine_parameters` (``data_dir``, ``allowed_sources``): a
        server call, whose path and URL values are confined. None (the CLI): no confinement.
    declared
        The notebook's :func:`declared_parameters`, when the caller has them (None: read from ``path``).

    Raises
    ------
    InvalidInput
        Naming the parameter (``field``) and what is allowed.
    """
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters must be an object of name: value", field="parameters")
    declared = declared_parameters(path) if declared is None else declared
    allowed = describe_parameters(declared)
    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name) or name not in declared:
            raise InvalidInput(f"unknown parameter {str(name)[:60]!r} for {path.stem}; allowed: {allowed}",
                               field="parameters")
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter {name!r} must be a JSON value", field=name) from None
        expected = declared[name]["inferred_type_name"]
        types = _TYPES.get(expected.split("[")[0].strip().lower())
        if types and value is not None and not (isinstance(value, types) and not (
                isinstance(value, bool) and bool not in types)):
            raise InvalidInput(f"parameter {name!r} must be of type {expected}, got {type(value).__name__} "
                               f"{json.dumps(value)[:60]}; allowed: {allowed}", field=name)
        checked[name] = value
    if confine is not None:
        checked = confine_parameters(declared, checked, **confine)
    return checked


def coerce_cli_value(raw: str, expected: str) -> Any:
    """A ``-p name value`` string as the declared type (JSON when it parses, else the text)."""
    if expected == "str":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# The server's own files in its data dir, never a notebook's input: the API token (server/auth.py)
# and the SQLite store with its journal files (bizra_nb/store.py).
PRIVATE_FILES = ("api_token", "bizra.sqlite3")


def confine_path(value: str, *, data_dir: str | Path, name: str) -> str:
    """The absolute path of ``value``, a file named relative to ``data_dir`` that stays inside it.

    Refused: an absolute path, a ``..`` part, a NUL byte, a name that resolves
    (through symlinks) outside ``data_dir``, hidden files and the server's own files
    (:data:`PRIVATE_FILES`). The data dir itself is allowed.

    Raises
    ------
    InvalidInput
        With ``field=name``.
    """
    problem = (f"{name} must be a file inside the server's data dir, named relative to it (no '..', "
               f"no absolute path, no symlink leading out), not {excerpt(value)}")
    if not isinstance(value, str) or not value or "\x00" in value or "\\" in value:
        raise InvalidInput(problem, field=name)
    relative = PurePosixPath(value)
    if relative.is_absolute() or value.startswith("~") or ".." in relative.parts:
        raise InvalidInput(problem, field=name)
    root = Path(data_dir).resolve()
    try:
        resolved = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long
        raise InvalidInput(problem, field=name) from None
    if resolved != root and root not in resolved.parents:
        raise InvalidInput(problem, field=name)
    inside = resolved.relative_to(root).parts
    if any(part.startswith(".") for part in inside) or (inside and inside[-1].startswith(PRIVATE_FILES)):
        raise InvalidInput(f"{name} may not name the server's own files (the API token, the store, "
                           f"hidden files), not {excerpt(value)}", field=name)
    return str(resolved)


def confine_parameters(declared: dict[str, dict], values: dict[str, Any], *, data_dir: str | Path,
                       allowed_sources: Iterable[str] = ()) -> dict[str, Any]:
    """``values`` with every path or URL parameter confined, as the server accepts them from a request.

    For a parameter whose ``kind`` is set (see :func:`declared_parameters`):

    - ``""`` or null stays (it means "none");
    - a value equal to one of ``allowed_sources`` (the configured Prometheus URL,
      dataset, audit source, ``run_allowed_urls``) is kept as it is;
    - a ``path`` is then a file relative to ``data_dir`` (:func:`confine_path`) and
      is passed on as its absolute path;
    - anything else, a URL in particular, is refused.

    Parameters
    ----------
    declared
        From :func:`declared_parameters`.
    values
        Checked values (:func:`check_parameters`).
    data_dir
        The folder path values are confined to.
    allowed_sources
        URLs (and configured source locations) accepted verbatim.

    Raises
    ------
    InvalidInput
        Naming the parameter (``field``) and what it accepts.
    """
    allowed = {s.rstrip("/") for s in allowed_sources if s}
    out = dict(values)
    for name, value in values.items():
        kind = (declared.get(name) or {}).get("kind")
        if kind is None or value is None or value == "":
            continue
        if isinstance(value, str) and value.rstrip("/") in allowed:
            continue
        shown = ", ".join(sorted(allowed)) or "none is configured"
        if "path" in kind and isinstance(value, str) and not _SCHEME.match(value):
            try:
                out[name] = confine_path(value, data_dir=data_dir, name=name)
            except InvalidInput as exc:
                extra = f"; or one of the configured sources: {shown}" if "url" in kind else ""
                raise InvalidInput(f"parameter {exc.message}{extra}", field=name) from None
            continue
        what = "a file inside the server's data dir or " if "path" in kind else ""
        raise InvalidInput(f"parameter {name} must be {what}one of the configured sources ({shown}; more with "
                           f"--run-allowed-urls), not {excerpt(value)}", field=name)
    return out


def server_confinement(settings: Any, *, also: Iterable[str] = ()) -> dict:
    """The :func:`confine_parameters` keywords of a server: its data dir and the sources (and SLO spec) it was
    configured with.

    ``also``: more locations accepted verbatim (the server's own URL, a benchmark's target).
    """
    sources = (settings.prometheus_url, settings.dataset, settings.audit_source, settings.slo_spec,
               *settings.run_allowed_urls, *also)
    return {"data_dir": settings.data_dir, "allowed_sources": tuple(s for s in sources if s)}


PREFLIGHT_TIMEOUT = 3.0  # seconds a URL parameter has to answer before a run is refused


def preflight(declared: dict[str, dict], values: dict[str, Any], *, base: str | Path | None = None,
              timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """Refuse a run before a kernel starts when a file it names is missing or a URL it names does not answer.

    Only the values given are checked (a notebook's own defaults are its business). For a
    parameter whose ``kind`` is set (see :func:`declared_parameters`), a non-empty value that
    is an ``http(s)://`` URL must answer one GET within ``timeout`` seconds (any HTTP status
    counts: a Prometheus, Thanos or Mimir base URL often answers its root with a redirect or
    a 404); any other value of a ``path`` kind must be an existing file or folder, a relative
    name looked for where the notebook will look (:mod:`bizra_nb.paths`: the data dir, then
    the working directory).
    This blocks for up to ``timeout`` seconds per URL: servers call it off their IOLoop.

    Parameters
    ----------
    declared
        From :func:`declared_parameters`.
    values
        Checked (and, on a server, confined) values.
    base
        The data dir the run's worker gets (``BIZRA_DATA_DIR``); default: this process's.
    timeout
        Seconds per URL.

    Raises
    ------
    InvalidInput
        Naming the first parameter (``field``) that fails, and why.
    """
    for name, value in values.items():
        kind = (declared.get(name) or {}).get("kind")
        if kind is None or not isinstance(value, str) or not value.strip():
            continue
        if value.startswith(("http://", "https://")) and "url" in kind:
            problem = _unanswered(value, timeout)
            if problem:
                raise InvalidInput(f"parameter {name}: {excerpt(value, 80)} does not answer ({problem})", field=name)
        elif "path" in kind and not _SCHEME.match(value):
            found, where = _find(value, base)
            if not found:
                raise InvalidInput(f"parameter {name}: no such file {excerpt(value, 80)}{where}", field=name)


def _find(value: str, base: str | Path | None) -> tuple[bool, str]:
    """Whether the file (or folder) ``value`` names exists, and where a relative one was looked for.

    A relative name is looked for as the notebooks read it (:func:`bizra_nb.paths.data_path`):
    in the data dir (``base`` when given, else ``$BIZRA_DATA_DIR`` or the project's ``data``),
    then in the working directory.
    """
    from bizra_nb.paths import ENV, data_path, describe

    environ = None if base is None else {ENV: str(base)}
    return data_path(value, environ=environ).exists(), describe(value, environ=environ)


def _unanswered(url: str, timeout: float) -> str | None:
    """Why ``url`` does not answer an HTTP GET within ``timeout`` seconds, or None when it answers (any status)."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            with client.stream("GET", url, headers={"User-Agent": "bizra-nb-preflight"}):
                return None  # the status line arrived: something answers there; the body is not read
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"
    except httpx.ConnectError as exc:
        return _reason(exc) or "connection refused"
    except (httpx.HTTPError, ValueError) as exc:
        return _reason(exc) or type(exc).__name__


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a connection error, on one line (``[Errno 111] Connection refused``)."""
    for _ in range(10):
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else ""
