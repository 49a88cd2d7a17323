"""The base handler: JSON bodies and errors, bearer-token auth, access to the shared services."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any, Callable

from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from bizra_nb.errors import BizraError, InvalidInput

log = logging.getLogger("bizra.server")
encode_json = json.JSONEncoder(ensure_ascii=False, default=str).encode  # UTF-8: "احسان" stays readable

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


class ApiError(HTTPError):
    """An HTTP error with a message meant for the client and a machine-readable code."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(status, reason=None)
        self.message = message
        self.code = code or ERROR_CODES.get(status, "error")


def send_json_error(handler: RequestHandler, status_code: int, message: str, *, code: str | None = None,
                    field: str | None = None) -> None:
    """Finish ``handler`` with the API's error body ``{"error": {"code", "message", "field"?}}``."""
    error: dict[str, Any] = {"code": code or ERROR_CODES.get(status_code, "error"), "message": message}
    if field:
        error["field"] = field
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.finish(encode_json({"error": error}))


def bearer_token(handler: RequestHandler) -> str | None:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_matches(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


class BaseHandler(RequestHandler):
    """Every API handler's base: state-changing verbs need the bearer token; errors are JSON."""

    STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    @property
    def services(self):
        return self.settings["services"]

    @property
    def store(self):
        return self.services.store

    @property
    def scorekeeper(self):
        return self.services.scorekeeper

    @property
    def hub(self):
        return self.services.hub

    async def blocking(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run a short blocking call (the store, a file) on the I/O threads, never on the IOLoop."""
        return await asyncio.get_running_loop().run_in_executor(
            self.services.io_pool, lambda: fn(*args, **kwargs))

    async def compute(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run CPU-bound work (a diagnosis) on the worker threads, apart from the store's calls."""
        return await asyncio.get_running_loop().run_in_executor(
            self.services.workers, lambda: fn(*args, **kwargs))

    def int_argument(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"query parameter {name!r} must be a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise ApiError(400, f"query parameter {name!r} must be from {low} to {high}, got {value}")
        return value

    def choice_argument(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.get_query_argument(name, default)
        if value is not None and value not in allowed:
            raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def prepare(self) -> None:
        method = self.request.method.lower()
        if getattr(type(self), method, None) is getattr(RequestHandler, method, None):
            raise ApiError(405, f"{self.request.method} is not allowed on {self.request.path}")
        if self.request.method in self.STATE_CHANGING:
            self.require_token()

    def require_token(self) -> None:
        if not token_matches(bearer_token(self), self.services.api_token):
            self.set_header("WWW-Authenticate", 'Bearer realm="bizra"')
            raise ApiError(401, "this endpoint needs 'Authorization: Bearer <API token>'")

    def compute_etag(self) -> None:
        return None  # API answers are live state; hashing every body buys nothing

    def json_body(self, *, required: bool = True) -> Any:
        """The request body parsed as JSON, or a 400 saying why it is not."""
        if not self.request.body.strip():
            if required:
                raise ApiError(400, "a JSON request body is required")
            return None
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None

    def json_object(self, *allowed: str) -> dict:
        """The body as a JSON object; with ``allowed`` field names, any other field is a 400 naming it."""
        body = self.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        unknown = sorted(set(body) - set(allowed)) if allowed else []
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}",
                               field=unknown[0])
        return body

    def write_json(self, value: Any, status: int | None = None) -> None:
        if status is not None:
            self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(encode_json(value))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, (HTTPError, BizraError)):
            return  # expected: rendered as a 4xx by write_error, logged by the access log
        log.error("unhandled error in %s %s", self.request.method, self.request.uri, exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            code, message = exc.code, exc.message
        elif isinstance(exc, BizraError):
            status_code, code, message = exc.status, exc.code, exc.message
            self.set_status(status_code)
        elif isinstance(exc, HTTPError) and exc.log_message and status_code < 500:
            code, message = ERROR_CODES.get(status_code, "error"), exc.log_message % exc.args
        else:
            code, message = ERROR_CODES.get(status_code, "error"), self._reason
        send_json_error(self, status_code, message, code=code,
                        field=exc.field if isinstance(exc, BizraError) else None)


class StaticFiles(StaticFileHandler):
    """Files served as they are; their errors are JSON like the API's."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        send_json_error(self, status_code, "no such file" if status_code == 404 else self._reason)


class NotFoundHandler(BaseHandler):
    """Answers every path no route matches."""

    def prepare(self) -> None:
        raise ApiError(404, f"no such endpoint: {self.request.path}")
