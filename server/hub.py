"""The WebSocket hub: fans `{"type","ts","data"}` messages out to subscribed clients, never waiting on one.

Publishing goes through :class:`Hub.publish` only, so that a Redis pub/sub
can later carry events between several server processes behind the same call.
A client's :meth:`Client.deliver` never waits: each client has a bounded
write buffer, and a client that stops reading is dropped when it overflows
(see ``server/live.py``), so it never delays the others.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

log = logging.getLogger("bizra.hub")

MESSAGE_TYPES = ("score", "cycle", "heartbeat", "incident", "rca", "run", "alert")


class Client(Protocol):
    subscriptions: frozenset[str] | None

    def deliver(self, text: str) -> bool:
        """Queue ``text`` without waiting; False when the client is gone (or was just dropped)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Hub:
    """In-process publisher to the connected WebSocket clients (IOLoop thread only)."""

    def __init__(self, *, metrics=None) -> None:
        self.clients: set[Client] = set()
        self._metrics = metrics
        self._loop = None

    def bind_loop(self, loop) -> None:
        """Remember the IOLoop so that other threads can publish with :meth:`publish_threadsafe`."""
        self._loop = loop

    def add(self, client: Client) -> None:
        self.clients.add(client)
        self._set_gauge()

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self._set_gauge()

    def _set_gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.ws_connections.set(len(self.clients))

    def publish(self, type_: str, data: Any) -> int:
        """Send one message to every client subscribed to ``type_``; returns how many took it."""
        if type_ not in MESSAGE_TYPES:
            raise ValueError(f"unknown message type {type_!r}; known: {', '.join(MESSAGE_TYPES)}")
        text = json.dumps({"type": type_, "ts": time.time(), "data": data}, ensure_ascii=False, default=str)
        sent = 0
        for client in list(self.clients):
            if client.subscriptions is not None and type_ not in client.subscriptions:
                continue
            if client.deliver(text):
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
