"""The base handler: JSON bodies and errors, bearer-token auth, body limits, access to the shared services.

Request bodies are streamed (``@stream_request_body``): ``prepare()`` runs as soon as
the headers are in, checks the token and the declared size, and only then does the
body arrive, into ``self.request.body``, up to the handler's ``max_body_size``.
So an unauthenticated or oversized request is answered (401, 413) without the
server buffering its body. Handlers read ``self.json_body()`` as before.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
from typing import Any, Callable

from tornado.web import HTTPError, RequestHandler, StaticFileHandler, stream_request_body

from bizra_nb.errors import BadGateway, BizraError, InvalidInput, Unavailable

log = logging.getLogger("bizra.server")
MAX_BODY_SIZE = 1 << 20  # a JSON request body; handlers that take more say so (CMDB import: 10 MiB)
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


def _without_nul(value: Any) -> Any:
    """``value`` with each NUL character in its strings replaced by U+FFFD (PostgreSQL refuses NUL in text)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


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


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


HOST_HEADER = re.compile(r"^(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::\d{1,5})?$")


def host_name(host: str) -> str:
    """The name in a Host header or netloc: ``[::1]:8080`` → ``::1``, ``Example.org:80`` → ``example.org``.

    Anything that is not a plain name or address, with an optional port, gives ``""``.
    """
    match = HOST_HEADER.match(host.strip().lower())
    return (match.group("ipv6") or match.group("name")) if match else ""


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """Whether a request's Host header names this server (DNS rebinding defence).

    IP addresses always pass: a page cannot make a browser send another
    address than the one it connected to, so only names can be rebound.
    ``names`` holding ``*`` lets every Host through.
    """
    name = host_name(host)
    return "*" in names or (bool(name) and (name in names or is_ip_address(name)))


@stream_request_body
class BaseHandler(RequestHandler):
    """Every API handler's base: state-changing verbs need the bearer token; errors are JSON.

    ``max_body_size`` bounds the request body; a body declared larger is a 413
    before any of it is read.
    """

    STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
    max_body_size = MAX_BODY_SIZE
    dependency_down = False  # set when the answer is a 503 because the store (or Redis) is down, or a 502
    _refusal: ApiError | None = None
    _closing = False  # answered before the body was read: the connection closes after the answer

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
            raise InvalidInput(f"query parameter {name!r} must be a whole number from {low} to {high}",
                               field=name) from None
        if not low <= value <= high:
            raise InvalidInput(f"query parameter {name!r} must be from {low} to {high}, got {value}", field=name)
        return value

    def choice_argument(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.get_query_argument(name, default)
        if value is not None and value not in allowed:
            raise InvalidInput(f"query parameter {name!r} must be one of {', '.join(allowed)}, got {value[:60]!r}",
                               field=name)
        return value

    def prepare(self) -> None:
        """Runs once the headers are in, before the body: :meth:`check_request`, then get ready for the body.

        A refused request with no body, or a small one, is answered once its body
        is read into nothing: answering now would close the connection (Tornado
        does when a response ends before its request), and with bytes unread the
        close resets it, so the client would lose the answer. A refused request
        with a body over ``max_body_size`` (or of unknown size) is answered now,
        closing the connection without reading the body.
        """
        size = self.declared_body_size()
        try:
            self.check_request(size)
        except ApiError as refusal:
            unbounded = size is None and "Transfer-Encoding" in self.request.headers
            if refusal.status_code == 413 or unbounded or (size or 0) > self.max_body_size:
                self._closing = True
                raise
            self._refusal = refusal
            setattr(self, self.request.method.lower(), self._refuse)
        self.request.body = bytearray()
        self.request.connection.set_max_body_size(self.max_body_size)  # past it (chunked), Tornado answers 400

    def check_request(self, size: int | None) -> None:
        """Refuse what needs no body to refuse: a method the route lacks, a missing token, a body too large."""
        method = self.request.method.lower()
        if getattr(type(self), method, None) is getattr(RequestHandler, method, None):
            raise ApiError(405, f"{self.request.method} is not allowed on {self.request.path}")
        if self.request.method in self.STATE_CHANGING:
            self.require_token()
        if size is not None and size > self.max_body_size:
            raise ApiError(413, f"the request body may be {self.max_body_size} bytes at most "
                                f"({self.max_body_size / 2**20:g} MiB), got {size}")

    def declared_body_size(self) -> int | None:
        """The Content-Length, or None when the request does not say (no body, or a chunked one)."""
        declared = self.request.headers.get("Content-Length")
        if declared is None:
            return None
        try:
            return int(declared)
        except ValueError:
            raise ApiError(400, "the Content-Length header must be a number of bytes") from None

    def data_received(self, chunk: bytes) -> None:
        if self._finished or self._refusal is not None:
            return  # refused: the body is dropped as it arrives
        if len(self.request.body) + len(chunk) > self.max_body_size:
            self.send_error(413, exc_info=(None, ApiError(
                413, f"the request body may be {self.max_body_size} bytes at most"), None))
            return
        self.request.body += chunk

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise self._refusal

    def require_token(self) -> None:
        if not token_matches(bearer_token(self), self.services.api_token):
            self.set_header("WWW-Authenticate", 'Bearer realm="bizra"')
            raise ApiError(401, "this endpoint needs 'Authorization: Bearer <API token>'")

    def compute_etag(self) -> None:
        return None  # API answers are live state; hashing every body buys nothing

    def check_etag_header(self) -> bool:
        # Tornado's If-None-Match check, run only when an Etag was set: without one nothing can match
        # (its answer is False then too), and parsing the header on every answer costs /health's throughput
        return "Etag" in self._headers and super().check_etag_header()

    def json_body(self, *, required: bool = True) -> Any:
        """The request body parsed as JSON, or a 400 saying why it is not."""
        if not self.request.body.strip():
            if required:
                raise ApiError(400, "a JSON request body is required")
            return None
        try:
            value = json.loads(self.request.body)
            return _without_nul(value) if b"\\u0000" in self.request.body else value
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ApiError(400, "request body is nested too deeply") from None

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
            if isinstance(exc, Unavailable):  # the store (or another dependency) is down: retry later
                self.dependency_down = True  # scored once by the controller's check, not once per request
                self.set_header("Retry-After", "5")
            elif isinstance(exc, BadGateway):  # a service we call for the user (Alertmanager) failed, not us
                self.dependency_down = True  # a 502 that the score does not count
        elif isinstance(exc, HTTPError) and exc.log_message and status_code < 500:
            code, message = ERROR_CODES.get(status_code, "error"), exc.log_message % exc.args
        else:
            code, message = ERROR_CODES.get(status_code, "error"), self._reason
        if self._closing or self.request.method not in self.SUPPORTED_METHODS:
            # answered before the body was read (Tornado refuses unknown methods before prepare()):
            # the connection closes after this answer, so say so, or a client reusing it gets a reset
            self.set_header("Connection", "close")
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="bizra"')
        send_json_error(self, status_code, message, code=code,
                        field=exc.field if isinstance(exc, BizraError) else None)


class StaticFiles(StaticFileHandler):
    """Files served as they are; their errors are JSON like the API's."""

    def parse_url_path(self, url_path: str) -> str:
        if any(ch < " " or ch == "\x7f" for ch in url_path):  # NUL and other control characters name no file
            raise HTTPError(400, "the path may not contain control characters")
        return super().parse_url_path(url_path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, HTTPError) and exc.log_message and status_code == 400 else None
        send_json_error(self, status_code, message or ("no such file" if status_code == 404 else self._reason))


class UnknownHostHandler(BaseHandler):
    """Answers a request whose Host header is not one of the server's names (see the allowed_hosts setting)."""

    def check_request(self, size: int | None) -> None:
        raise ApiError(400, f"this server does not answer to the host {host_name(self.request.host)!r}; "
                            "add it to the allowed_hosts setting", code="unknown_host")


class NotFoundHandler(BaseHandler):
    """Answers every path no route matches."""

    def check_request(self, size: int | None) -> None:
        raise ApiError(404, f"no such endpoint: {self.request.path}")
