"""The library's typed exceptions; the server maps them to HTTP statuses in one place.

::

    BizraError                  base of everything the library raises on purpose
    ├── InvalidInput            the caller's input is wrong (400); ``field`` names it
    │   └── InvalidSetting      a setting's value is wrong; ``field`` is the setting
    ├── NotFound                a thing that was named does not exist (404)
    ├── Conflict                the request contradicts stored state (409)
    └── Unavailable             a backend (store, metric source) does not answer (503)
"""
from __future__ import annotations


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
