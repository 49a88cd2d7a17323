"""The WebSocket hub: fans `{"type","ts","data"}` messages out to subscribed clients, never waiting on one.

Publishing goes through :class:`Hub.publish` only. With ``--redis-url`` a
:class:`~bizra_server.redis_bus.RedisBus` attached by :meth:`Hub.attach_bus`
carries the platform's events (:data:`SHARED_TYPES`) between the replicas:
the hub then hands them to the bus, and the bus gives every replica's events
back to :meth:`Hub.deliver_local`, once each, in order per publisher. The
replica's own status messages (:data:`LOCAL_TYPES`: heartbeats, controller
cycles, its score, the stream's state) stay local.
A client's :meth:`Client.deliver` never waits: each client has a bounded
write buffer, and a client that stops reading is dropped when it overflows
(see ``server/live.py``), so it never delays the others.

A broadcast is framed once: :meth:`Hub.deliver_local` builds the WebSocket
frame (:func:`text_frame`) and hands the same bytes to every subscribed client
that has a ``deliver_frame`` (the live stream's handlers); other clients
(tests, bridges) get the text through :meth:`Client.deliver`.
"""
from __future__ import annotations

import json
import logging
import struct
import time
from typing import Any, Callable, Protocol

log = logging.getLogger("bizra.hub")

MESSAGE_TYPES = ("score", "cycle", "heartbeat", "incident", "rca", "run", "alert", "stream")
LOCAL_TYPES = frozenset({"score", "cycle", "heartbeat", "stream"})  # about this replica: never through the bus
SHARED_TYPES = tuple(t for t in MESSAGE_TYPES if t not in LOCAL_TYPES)  # the platform's events: every replica's clients
_KNOWN = frozenset(MESSAGE_TYPES)


class Client(Protocol):
    """A connected client. One may also have ``deliver_frame(frame: bytes) -> bool``, which the hub then uses
    for broadcasts instead of :meth:`deliver`: the same :func:`text_frame` bytes for every client."""

    subscriptions: frozenset[str] | None

    def deliver(self, text: str) -> bool:
        """Queue ``text`` without waiting; False when the client is gone (or was just dropped)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


def text_frame(text: str) -> bytes:
    """The WebSocket frame a server sends for ``text``: FIN, text opcode, unmasked, uncompressed (RFC 6455 5.2).

    Byte for byte what Tornado's ``write_message(text)`` writes on a connection without
    permessage-deflate (the live stream never negotiates it: see ``LiveUpdatesHandler``).
    """
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


class Hub:
    """In-process publisher to the connected WebSocket clients (IOLoop thread only)."""

    def __init__(self, *, metrics=None) -> None:
        self.clients: dict[Client, Callable[[bytes], bool] | None] = {}  # client -> its deliver_frame, if any
        self._metrics = metrics
        self._loop = None
        self._bus = None
        self.listeners: list[Callable[[str, Any], None]] = []  # hear each event published here (notifications)
        self.stream: dict = {"shared": False, "replica": None, "reason": "this process alone (no --redis-url)"}

    def attach_bus(self, bus) -> None:
        """Carry :data:`SHARED_TYPES` through ``bus`` (a :class:`~bizra_server.redis_bus.RedisBus` built with
        ``on_message=hub.deliver_local, on_state=hub.stream_changed``) instead of delivering them here at once."""
        self._bus = bus
        self.stream = {"shared": False, "replica": bus.replica, "reason": bus.reason}

    def stream_changed(self, shared: bool, reason: str) -> None:
        """Tell this replica's clients (a ``stream`` message) that events are shared again, or local only."""
        self.stream = {"shared": shared, "replica": self._bus.replica if self._bus else None, "reason": reason}
        self.deliver_local("stream", self._encode("stream", self.stream))

    def bind_loop(self, loop) -> None:
        """Remember the IOLoop so that other threads can publish with :meth:`publish_threadsafe`."""
        self._loop = loop

    def add(self, client: Client) -> None:
        self.clients[client] = getattr(client, "deliver_frame", None)
        self._set_gauge()

    def remove(self, client: Client) -> None:
        self.clients.pop(client, None)
        self._set_gauge()

    def _set_gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.ws_connections.set(len(self.clients))

    def publish(self, type_: str, data: Any) -> int:
        """Send one message to every client subscribed to ``type_``; returns how many took it here and now
        (0 for a shared type while a bus is attached: it arrives through the bus)."""
        if type_ not in MESSAGE_TYPES:
            raise ValueError(f"unknown message type {type_!r}; known: {', '.join(MESSAGE_TYPES)}")
        for listener in self.listeners:  # this replica's own events only: those of others come through the bus
            try:
                listener(type_, data)
            except Exception:  # noqa: BLE001 - a listener never stops an event
                log.exception("a hub listener failed on a %s event", type_)
        text = self._encode(type_, data)
        if self._bus is not None and type_ not in LOCAL_TYPES:
            self._bus.publish(type_, text)  # delivered here when the bus hands it back (or at once, disconnected)
            return 0
        return self.deliver_local(type_, text)

    @staticmethod
    def _encode(type_: str, data: Any) -> str:
        return json.dumps({"type": type_, "ts": time.time(), "data": data}, ensure_ascii=False, default=str)

    def deliver_local(self, type_: str, text: str) -> int:
        """Send an encoded message of ``type_`` to this process's clients subscribed to it; returns how many took it."""
        if type_ not in _KNOWN:
            return 0  # from a replica of another version: not a type these clients can subscribe to
        sent = 0
        frame = None  # built once, for the first client that takes frames
        for client, deliver_frame in list(self.clients.items()):
            subscriptions = client.subscriptions
            if subscriptions is not None and type_ not in subscriptions:
                continue
            if deliver_frame is None:
                took = client.deliver(text)
            else:
                if frame is None:
                    frame = text_frame(text)
                took = deliver_frame(frame)
            if took:
                sent += 1
        if sent and self._metrics is not None:
            self._metrics.ws_messages_sent.labels(type_).inc(sent)
        return sent

    def publish_threadsafe(self, type_: str, data: Any) -> None:
        """:meth:`publish` from any thread (runner workers, executors); dropped before the server starts."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, type_, data)

    def close_all(self, code: int = 1001, reason: str = "server shutting down") -> list[Client]:
        """Send every client a close frame; returns them so the caller can wait for the handshakes."""
        closing = list(self.clients)
        for client in closing:
            client.close(code, reason)
        self.clients.clear()
        self._set_gauge()
        return closing
