"""`ws /ws/live-updates`: the live stream of `{"type","ts","data"}` messages, with type subscriptions."""
from __future__ import annotations

import json
import time
import logging
from urllib.parse import urlparse

from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from bizra_server.base import ApiError, bearer_token, host_name, is_ip_address, send_json_error, token_matches
from bizra_server.hub import MESSAGE_TYPES

log = logging.getLogger("bizra.live")


class LiveUpdatesHandler(WebSocketHandler):
    """One connected client; the hub writes to it through :meth:`deliver`."""

    subscriptions: frozenset[str] | None = None

    @property
    def services(self):
        return self.settings["services"]

    def prepare(self) -> None:
        if self.services.settings.ws_require_token:
            given = bearer_token(self) or self.get_query_argument("token", None)
            if not token_matches(given, self.services.api_token):
                raise ApiError(401, "the live stream needs the API token (bearer header or ?token=)")

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        send_json_error(self, status_code, getattr(exc, "message", None) or self._reason)

    def check_origin(self, origin: str) -> bool:
        """A browser page may connect when it is one of the server's own (its names and ports) or a --ws-origins one.

        The Host header is not trusted for this: under DNS rebinding it carries the
        attacker's name, the same as the Origin. A page served from an IP address
        (which cannot be rebound) may connect to that same address.
        """
        origin = origin.lower()
        allowed = {o.lower().rstrip("/") for o in self.services.settings.ws_origins}
        if "*" in allowed or origin in allowed or origin in self.services.public_origins:
            return True
        parsed = urlparse(origin)
        return (parsed.scheme in ("http", "https") and is_ip_address(host_name(parsed.netloc))
                and parsed.netloc == self.request.host.lower())

    def get_compression_options(self) -> None:
        """No permessage-deflate, whatever the client offers (Tornado's default, kept on purpose).

        A broadcast is framed once for every client (:func:`~bizra_server.hub.text_frame`), which
        needs uncompressed frames; per-client deflate would also cost a compressor's CPU per client
        per message and its zlib state (hundreds of KB) per connection. The messages are small JSON.
        """
        return None

    def open(self) -> None:
        self.set_nodelay(True)
        # bytes the kernel would not take yet; past this bound the client is too slow and dropped
        self.ws_connection.stream.max_write_buffer_size = self.services.settings.ws_max_buffer
        hub = self.services.hub
        hub.add(self)
        if hub.stream.get("replica"):  # several replicas: say at once whether this one shares their events
            self.deliver(json.dumps({"type": "stream", "ts": time.time(), "data": hub.stream}))

    def on_message(self, message: str | bytes) -> None:
        try:
            request = json.loads(message)
            types = request["subscribe"]
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
            self._reply_error('expected {"subscribe": [type, ...]}')
            return
        unknown = sorted(set(types) - set(MESSAGE_TYPES))
        if unknown:
            self._reply_error(f"unknown type(s) {', '.join(unknown)}; known: {', '.join(MESSAGE_TYPES)}")
            return
        self.subscriptions = frozenset(types) if types else None
        self.deliver(json.dumps({"type": "subscribed", "data": {"types": sorted(types) or list(MESSAGE_TYPES)}}))

    def _reply_error(self, message: str) -> None:
        self.deliver(json.dumps({"type": "error", "data": {"message": message}}))

    def deliver(self, text: str) -> bool:
        """Queue ``text`` to this client without waiting; False when it is gone."""
        try:
            future = self.write_message(text)
        except WebSocketClosedError:
            self.services.hub.remove(self)
            return False
        except StreamBufferFullError:
            self._drop_slow()
            return False
        future.add_done_callback(_seen)
        return True

    def deliver_frame(self, frame: bytes) -> bool:
        """Queue an already framed message (a :func:`~bizra_server.hub.text_frame`) without waiting; False when gone.

        Does what :meth:`deliver` does, with less per client: when nothing of this client's
        is queued yet, the frame goes straight to the socket (nothing is half-sent, so frames
        cannot interleave); whatever the socket does not take at once is queued on the stream
        behind it, in order, under the same bound and the same slow-client drop.
        """
        connection = self.ws_connection
        # connection.is_closing(), inlined: this runs once per client per broadcast
        if connection is None or connection.client_terminated or connection.server_terminated:
            self.services.hub.remove(self)
            return False
        stream = connection.stream
        sock = stream.socket  # None once the stream is closed
        if sock is None:
            self.services.hub.remove(self)
            return False
        size = len(frame)
        if not stream.writing() and type(stream) is IOStream and size <= stream.max_write_buffer_size:
            try:
                taken = sock.send(frame)
            except OSError:  # would block, or the peer is gone: the stream's own write below finds out and acts
                taken = 0
            if taken == size:
                return True
            frame = frame[taken:]
        try:
            stream.write(frame)  # its Future's exception is retrieved by the stream itself
        except StreamClosedError:
            self.services.hub.remove(self)
            return False
        except StreamBufferFullError:
            self._drop_slow()
            return False
        return True

    def _drop_slow(self) -> None:
        log.warning("dropping a WebSocket client that stopped reading (%s)", self.request.remote_ip)
        self.services.hub.remove(self)
        self.ws_connection.stream.close()  # no close frame: it would not be read either

    def on_close(self) -> None:
        self.services.hub.remove(self)


def _seen(future) -> None:
    if not future.cancelled():
        future.exception()  # a write to a client that has gone is expected; mark it retrieved


handlers = [(r"/ws/live-updates", LiveUpdatesHandler)]
