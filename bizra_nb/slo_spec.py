"""SLOs as code: the entry point that reads OpenSLO v1 and Sloth ``prometheus/v1`` spec files into the SLO model.

The rest of the code imports from here; this module re-exports the model's names. The parts:

- :mod:`bizra_nb.slo_model`: the model (:class:`SLO`, :class:`Indicator`, :class:`Window`,
  :data:`BURN_ALERTS`, :class:`SpecError`) and its pure helpers (:func:`find`, :func:`duration`,
  :func:`window_bounds`);
- :mod:`bizra_nb.slo_fields`: the problem-collecting field readers both formats share;
- :mod:`bizra_nb.slo_openslo` and :mod:`bizra_nb.slo_sloth`: the two formats, each with its decisions;
- this module: the files (the size bound, UTF-8), the YAML loader and the dispatcher that hands each
  document to its format's reader.

Reading specs (:func:`load_specs`, :func:`parse_spec`)
------------------------------------------------------

Strict: all problems of all files (each field's, :mod:`bizra_nb.slo_fields`) are collected and raised as one
:class:`SpecError`. Nothing of a file is echoed beyond the cut values a problem names: a document that is not
a mapping (any file read as YAML, ``/etc/passwd`` is a string) is described by its type and size only. A
file over 1 MiB is refused before it is read. YAML is read with a safe loader (``yaml.CSafeLoader``, as
``yaml.safe_load_all`` does but with libyaml); a key given twice in one mapping is an error (YAML would
silently keep the last). An SLO name given twice, in one file or across the files, is an error.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import yaml

from bizra_nb.errors import clip_message
from bizra_nb.slo_fields import Doc, kind_of, show
from bizra_nb.slo_model import (ALERT_LEVELS, BURN_ALERTS, DEFAULT_ALERT_NAMES, DEFAULT_RUNBOOK_URL, DEFAULT_SLICE,
                                FAILING, NAME, NAME_MAX, OPS, RESERVED_LABELS, SHOWN, SLO, WINDOWS, BurnAlert,
                                Indicator, SpecError, Window, duration, find, timesliced, window_bounds)
from bizra_nb.slo_openslo import read_openslo
from bizra_nb.slo_sloth import read_sloth

__all__ = [
    # the model, re-exported (bizra_nb.slo_model)
    "ALERT_LEVELS", "BURN_ALERTS", "DEFAULT_ALERT_NAMES", "DEFAULT_RUNBOOK_URL", "DEFAULT_SLICE", "FAILING", "NAME",
    "NAME_MAX", "OPS", "RESERVED_LABELS", "SHOWN", "SLO", "WINDOWS", "BurnAlert", "Indicator", "SpecError", "Window",
    "duration", "find", "timesliced", "window_bounds",
    # reading spec files
    "MAX_PROBLEMS", "MAX_SPEC_BYTES", "default_spec_path", "load_specs", "parse_spec",
]

#: a spec file larger than this is refused before it is read
MAX_SPEC_BYTES = 1024 * 1024
#: at most this many problems are listed (the rest are counted)
MAX_PROBLEMS = 200


def default_spec_path() -> Path:
    """The platform's own spec: ``bizra_nb/slo_specs/bizra.yaml`` when installed, else the checkout's
    ``monitoring/slo/bizra.yaml`` (an editable install)."""
    here = Path(__file__).resolve().parent
    installed = here / "slo_specs" / "bizra.yaml"
    return installed if installed.is_file() else here.parent / "monitoring" / "slo" / "bizra.yaml"


def load_specs(paths: Sequence[str | Path] = ()) -> list[SLO]:
    """The SLOs of spec files, each OpenSLO v1 (possibly multi-document) or Sloth ``prometheus/v1``.

    Parameters
    ----------
    paths
        The files; empty (or only empty strings): the platform's default spec (:func:`default_spec_path`).

    Returns
    -------
    list of SLO
        In file order, then document order; ``source_sha256``: the SHA-256 of the bytes of the file parsed.

    Raises
    ------
    SpecError
        Listing every problem of every file: a file missing, unreadable or over 1 MiB (not read), not
        YAML, an unknown or invalid field, an SLO name given twice (names are unique across the files).
    """
    chosen = [p for p in (paths or ()) if str(p) != ""]
    if not chosen:
        chosen = [default_spec_path()]
    problems: list[str] = []
    slos: list[SLO] = []
    for path in chosen:
        data = _read(Path(path), str(path), problems)
        if data is not None:
            slos.extend(_parse(*data, str(path), problems))
    _check_unique(slos, problems)
    if problems:
        raise SpecError(_bounded(problems))
    return slos


def parse_spec(text: str, source: str) -> list[SLO]:
    """The SLOs of one spec file's ``text``; ``source`` names the file in messages, and each SLO's
    ``source_sha256`` is the SHA-256 of ``text`` in UTF-8.

    Raises
    ------
    SpecError
        Listing every problem of the text.
    """
    problems: list[str] = []
    slos = _parse(text, hashlib.sha256(text.encode()).hexdigest(), source, problems)
    _check_unique(slos, problems)
    if problems:
        raise SpecError(_bounded(problems))
    return slos


def _bounded(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"… and {len(problems) - MAX_PROBLEMS} more problems"]


def _check_unique(slos: list[SLO], problems: list[str]) -> None:
    first: dict[str, SLO] = {}
    for slo in slos:
        if slo.name in first:
            where = first[slo.name].source
            elsewhere = "earlier in the same file" if where == slo.source else f"also in {where}"
            problems.append(f"{slo.source}: SLO {slo.name}: the name is given twice ({elsewhere}); SLO names must be unique")
        else:
            first[slo.name] = slo


def _read(path: Path, source: str, problems: list[str]) -> tuple[str, str] | None:
    """The text of ``path`` and the SHA-256 of its bytes (read once), or None with a problem naming the file
    (never its contents)."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            problems.append(f"{source}: not a file")
            return None
        if size > MAX_SPEC_BYTES:
            problems.append(f"{source}: {size:,} bytes is over the {MAX_SPEC_BYTES:,}-byte (1 MiB) limit of a spec file; not read")
            return None
        with path.open("rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        problems.append(f"{source}: no such file")
        return None
    except OSError as exc:
        problems.append(f"{source}: cannot be read ({exc.strerror or type(exc).__name__})")
        return None
    if len(data) > MAX_SPEC_BYTES:  # it grew after stat(), or a device
        problems.append(f"{source}: over the {MAX_SPEC_BYTES:,}-byte (1 MiB) limit of a spec file; not read")
        return None
    try:
        return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
    except UnicodeDecodeError as exc:
        problems.append(f"{source}: not UTF-8 text (byte {exc.start})")
        return None


# --- YAML -------------------------------------------------------------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's safe loader (libyaml's when there is one: ten times faster on a big file), refusing a key given
    twice in one mapping, which YAML would silently resolve to the last."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {show(key.value)} is given twice in one mapping", key.start_mark)
                    seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep=deep)


def _documents(text: str, source: str, problems: list[str]) -> list | None:
    """The YAML documents of ``text`` (safe loader), or None with one problem (line and column, no contents)."""
    try:
        return list(yaml.load_all(text, Loader=_Loader))  # a SafeLoader: plain data only, no Python tags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = clip_message(" ".join(part for part in (exc.context, exc.problem) if part), limit=200, quoted=SHOWN)
        problems.append(f"{source}: {where}not valid YAML: {what}")
    except yaml.YAMLError as exc:
        problems.append(f"{source}: not valid YAML: {clip_message(str(exc), limit=200, quoted=SHOWN)}")
    except RecursionError:
        problems.append(f"{source}: not valid YAML: nested too deeply")
    return None


# --- the dispatcher -----------------------------------------------------------------------------------------------

def _parse(text: str, sha256: str, source: str, problems: list[str]) -> list[SLO]:
    """The SLOs of ``text``, each carrying ``sha256`` (of the bytes parsed) as its ``source_sha256``."""
    docs = _documents(text, source, problems)
    if docs is None:
        return []
    slos: list[SLO] = []
    openslo: list[tuple[int, dict]] = []
    before = len(problems)
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            Doc(source, index, problems).add("", f"expected a mapping (an OpenSLO object or a Sloth spec), "
                                                  f"{kind_of(doc)}")
        elif "apiVersion" in doc or "kind" in doc:
            openslo.append((index, doc))
        elif "version" in doc:
            slos.extend(read_sloth(doc, Doc(source, index, problems)))
        else:
            Doc(source, index, problems).add("", "expected an OpenSLO object (apiVersion: openslo/v1, kind: SLO) "
                                                  "or a Sloth spec (version: prometheus/v1)")
    if openslo:
        slos.extend(read_openslo(openslo, source, problems))
    if not slos and len(problems) == before:
        problems.append(f"{source}: no SLO in it; expected OpenSLO v1 documents (kind: SLO) or a Sloth prometheus/v1 spec")
    return [replace(slo, source_sha256=sha256) for slo in slos]
