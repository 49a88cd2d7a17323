"""The library's typed exceptions; the server maps them to HTTP statuses in one place.

::

    BizraError                  base of everything the library raises on purpose
    ├── InvalidInput            the caller's input is wrong (400); ``field`` names it
    │   └── InvalidSetting      a setting's value is wrong; ``field`` is the setting
    ├── NotFound                a thing that was named does not exist (404)
    ├── Conflict                the request contradicts stored state (409)
    ├── Unavailable             a backend (store, metric source) does not answer (503)
    └── BadGateway              a service we call for the user (Alertmanager) failed or refused (502)
"""
from __future__ import annotations

import re


class BizraError(Exception):
    """Base of the library's exceptions; ``message`` is safe to show to a user."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(BizraError):
    status = 400
    code = "invalid_input"


class InvalidSetting(InvalidInput):
    code = "invalid_setting"


class NotFound(BizraError):
    status = 404
    code = "not_found"


class Conflict(BizraError):
    status = 409
    code = "conflict"


class Unavailable(BizraError):
    status = 503
    code = "unavailable"


class BadGateway(BizraError):
    status = 502
    code = "bad_gateway"


_QUOTED = re.compile(r"(?<!\w)('[^'\n]*'|\"[^\"\n]*\")(?!\w)")
_CARET = re.compile(r"^\s*\^\s*$")


def excerpt(value: object, limit: int = 40) -> str:
    """A short, escaped excerpt of untrusted input for an error message: its ``repr``, at most ``limit`` characters."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit - 2] + "…" + shown[0]


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, clipped: each run of whitespace (CR and LF too) one space, the ends stripped, and
    cut to ``limit`` characters ending with ``…`` when longer. Safe in a mail header.

    Parameters
    ----------
    text
        Any value: its ``str()``; None gives ``""``.
    limit
        Characters at most, the ``…`` included.

    Examples
    --------
    >>> one_line("disk\\r\\n  full", 200)
    'disk full'
    >>> one_line("abcdef", 4)
    'abc…'
    """
    value = " ".join(("" if text is None else str(text)).split())
    return value if len(value) <= limit else value[:limit - 1] + "…"


def clip_message(text: str, *, limit: int = 500, quoted: int = 40) -> str:
    """An error message from code we do not control, made safe to show without a token.

    One line; the lines of a parser's source snippet (a line followed by a ``^``
    marker, as YAML prints them) dropped; every quoted part longer than ``quoted``
    cut to an :func:`excerpt`; the whole cut to ``limit`` characters.
    """
    lines = str(text).splitlines()
    kept = [line.strip() for i, line in enumerate(lines)
            if not _CARET.match(line) and not (i + 1 < len(lines) and _CARET.match(lines[i + 1]))]
    one = " ".join(line for line in kept if line)
    one = _QUOTED.sub(lambda m: m.group(0) if len(m.group(0)) <= quoted else excerpt(m.group(0)[1:-1], quoted), one)
    return one if len(one) <= limit else one[:limit - 1] + "…"
