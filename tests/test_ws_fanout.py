"""Broadcasts framed once: the bytes, subscriptions, bursts past the socket buffers, slow and closing clients, the metric."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import select
import socket
import struct
import threading
from types import SimpleNamespace

from tornado.iostream import IOStream
from tornado.websocket import WebSocketProtocol13, websocket_connect

from bizra_server import hub as hub_module
from bizra_server.hub import Hub, text_frame
from bizra_server.live import LiveUpdatesHandler
from tests.conftest import wait_until

QUIET = {"heartbeat_interval": 3600, "controller_interval": 3600}  # no pings, heartbeats or cycles during a test


# -- a raw client: it reads (or not) when the test says so -------------------------------------------------


def raw_client(port: int, *, subscribe: list[str] | None = None, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket client on a plain socket (``rcvbuf``: a small receive buffer), subscribed to ``subscribe``."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws/live-updates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: what follows the headers stays in the socket
    assert b" 101 " in head.split(b"\r\n")[0]
    if subscribe is not None:
        payload = json.dumps({"subscribe": subscribe}).encode()
        mask = os.urandom(4)
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while json.loads(next_frame(sock)[1])["type"] != "subscribed":
            pass  # the server's startup messages (a cycle, a heartbeat) may come first
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return data


def next_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next frame from the server: (opcode, payload); the server's frames are never masked."""
    b0, b1 = recv_exactly(sock, 2)
    assert b1 & 0x80 == 0 and b0 & 0x70 == 0, "masked or compressed frame from the server"
    size = b1 & 0x7F
    if size == 126:
        size = struct.unpack("!H", recv_exactly(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", recv_exactly(sock, 8))[0]
    return b0 & 0x0F, recv_exactly(sock, size)


def up_to_the_marker(sock: socket.socket) -> list[tuple[int, bytes]]:
    """The alert and run frames up to the first run message (the test's marker); the server's own
    startup messages (a cycle, a heartbeat) that an unsubscribed client also gets are left out."""
    frames = []
    while not frames or json.loads(frames[-1][1])["type"] != "run":
        opcode, payload = next_frame(sock)
        if json.loads(payload)["type"] in ("alert", "run"):
            frames.append((opcode, payload))
    return frames


def complete_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Every complete frame in ``data`` (a cut-off last one is left out)."""
    frames, pos = [], 0
    while len(data) - pos >= 2:
        size, head = data[pos + 1] & 0x7F, 2
        if size == 126:
            size, head = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif size == 127:
            size, head = struct.unpack_from("!Q", data, pos + 2)[0], 10
        if len(data) - pos < head + size:
            break
        frames.append((data[pos] & 0x0F, data[pos + head:pos + head + size]))
        pos += head + size
    return frames


def read_to_eof(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except ConnectionError:
        pass
    return data


async def subscribed(conn) -> dict:
    """Read a Tornado client's messages up to the server's ``subscribed`` reply (startup messages may come first)."""
    while (message := json.loads(await conn.read_message()))["type"] != "subscribed":
        pass
    return message


def sent_count(running, type_: str) -> float:
    return running.services.metrics.registry.get_sample_value("bizra_ws_messages_sent_total", {"type": type_}) or 0.0


# -- the frame bytes ----------------------------------------------------------------------------------------


def test_text_frame_is_byte_for_byte_what_tornado_writes_for_the_same_text():
    class Captured:
        data = b""

        def write(self, frame: bytes):
            self.data += frame
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    async def tornado_frame(text: str) -> bytes:
        protocol = WebSocketProtocol13.__new__(WebSocketProtocol13)  # a server connection, no permessage-deflate
        protocol.stream, protocol.mask_outgoing, protocol._compressor = Captured(), False, None
        protocol._message_bytes_out = protocol._wire_bytes_out = 0
        await protocol.write_message(text)
        return protocol.stream.data

    # every length form: 7-bit (< 126), 16-bit (126..65535), 64-bit; multi-byte UTF-8 counted in bytes
    for text in ["", "x", "x" * 125, "x" * 126, "é" * 63, "é" * 64, "x" * 65535, "x" * 65536, "€" * 40000]:
        assert text_frame(text) == asyncio.run(tornado_frame(text)), len(text)


# -- on a real server ---------------------------------------------------------------------------------------


def test_a_broadcast_reaches_each_subscribed_client_once_unchanged_and_no_other(make_server, monkeypatch):
    running = make_server(**QUIET)
    hub, port = running.services.hub, running.ports["http"]
    alerts = [raw_client(port, subscribe=["alert", "run"]) for _ in range(3)]
    everything = raw_client(port)  # no subscription: every type
    runs_only = [raw_client(port, subscribe=["run"]) for _ in range(2)]
    wait_until(lambda: len(hub.clients) == 6)
    # framed once per broadcast, the same bytes for every handler, never the per-client text path
    framed: list[str] = []

    def counting_text_frame(text: str) -> bytes:
        framed.append(json.loads(text)["type"])
        return text_frame(text)

    monkeypatch.setattr(hub_module, "text_frame", counting_text_frame)
    as_text: list[str] = []
    for handler, deliver_frame in list(hub.clients.items()):
        assert type(handler) is LiveUpdatesHandler and deliver_frame == handler.deliver_frame
        monkeypatch.setattr(handler, "deliver",
                            lambda text, h=handler: as_text.append(text) or LiveUpdatesHandler.deliver(h, text))
    text = json.dumps({"type": "alert", "ts": 1.5, "data": {"summary": "Wärme ↑", "n": list(range(50))}},
                      ensure_ascii=False)
    before = sent_count(running, "alert")
    took = running.call(hub.deliver_local, "alert", text)
    published = running.call(hub.publish, "alert", {"status": "firing", "group_key": "g1"})
    running.call(hub.publish, "run", {"marker": True})  # the last message: reading up to it shows what came before

    assert took == published == 4 and sent_count(running, "alert") - before == 8
    assert [t for t in framed if t in ("alert", "run")] == ["alert", "alert", "run"] and as_text == []
    for sock in alerts + [everything]:
        first, second, marker = up_to_the_marker(sock)
        assert first == (0x1, text.encode())  # the very bytes published
        message = json.loads(second[1])
        assert set(message) == {"type", "ts", "data"} and message["type"] == "alert"
        assert message["data"] == {"status": "firing", "group_key": "g1"}
        assert json.loads(marker[1])["data"] == {"marker": True}
    for sock in runs_only:
        opcode, payload = next_frame(sock)
        assert json.loads(payload)["type"] == "run"  # the alerts never reached it
    for sock in alerts + [everything] + runs_only:
        sock.close()


def test_messages_of_every_length_form_decode_in_a_tornado_client(make_server):
    running = make_server(**QUIET)
    hub = running.services.hub
    sizes = [10, 125, 126, 300, 65535, 65536, 200_000]

    async def receive() -> list[str]:
        conn = await websocket_connect(running.ws_url)
        await conn.write_message(json.dumps({"subscribe": ["incident"]}))
        await subscribed(conn)
        texts = [json.dumps({"type": "incident", "ts": 2.0, "data": "y" * size}) for size in sizes]
        for text in texts:
            assert running.call(hub.deliver_local, "incident", text) == 1
        got = [await conn.read_message() for _ in texts]
        conn.close()
        return [g == t for g, t in zip(got, texts)]

    assert asyncio.run(receive()) == [True] * len(sizes)


def test_the_stream_never_negotiates_compression(make_server):
    running = make_server(**QUIET)

    async def connect() -> tuple[str | None, dict]:
        conn = await websocket_connect(running.ws_url, compression_options={})  # offers permessage-deflate
        extensions = conn.headers.get("Sec-WebSocket-Extensions")
        await conn.write_message(json.dumps({"subscribe": ["run"]}))
        reply = await subscribed(conn)
        conn.close()
        return extensions, reply

    extensions, reply = asyncio.run(connect())
    assert extensions is None and reply["data"] == {"types": ["run"]}


def test_a_burst_past_the_socket_buffers_arrives_complete_and_in_order(make_server):
    running = make_server(ws_max_buffer=32 << 20, **QUIET)
    hub = running.services.hub
    sock = raw_client(running.ports["http"], subscribe=["alert"], rcvbuf=4096)  # does not read during the burst
    wait_until(lambda: len(hub.clients) == 1)
    handler = next(iter(hub.clients))
    blob = "z" * 4000
    read_some = threading.Event()

    async def burst_then_more_while_queued() -> tuple[bool, bool]:
        for seq in range(2000):  # 8 MB in one IOLoop callback: more than the socket buffers take
            assert hub.publish("alert", {"seq": seq, "blob": blob}) == 1
        queued = handler.ws_connection.stream.writing()
        # the loop runs while this waits: the stream writes its queue as the client reads; what is published
        # after that must still arrive behind the burst (the rule itself: ..._behind_a_half_sent_one_...)
        assert await asyncio.get_running_loop().run_in_executor(None, read_some.wait, 30)
        for seq in range(2000, 2005):
            hub.publish("alert", {"seq": seq, "blob": blob})
        return queued, handler.ws_connection.stream.writing()

    held = asyncio.run_coroutine_threadsafe(burst_then_more_while_queued(), running.loop)
    seqs = []
    while len(seqs) < 200:
        seqs.append(json.loads(next_frame(sock)[1])["data"]["seq"])
    read_some.set()
    queued, still_queued = held.result(timeout=60)
    assert queued and still_queued, "the burst did not outgrow the socket buffers: the queue path was not tested"
    while len(seqs) < 2005:
        seqs.append(json.loads(next_frame(sock)[1])["data"]["seq"])
    assert seqs == list(range(2005))
    wait_until(lambda: not running.call(handler.ws_connection.stream.writing))
    running.call(hub.publish, "alert", {"seq": 2005})  # the queue drained: straight to the socket again
    assert json.loads(next_frame(sock)[1])["data"]["seq"] == 2005
    sock.close()


def test_a_frame_goes_behind_a_half_sent_one_even_when_the_socket_has_room():
    """While part of a frame still waits in the stream, the next one must not go straight to the socket."""

    async def scenario() -> tuple[bytes, bytes, bytes]:
        ours, peer = socket.socketpair()  # AF_UNIX: what the peer reads frees the sender's buffer at once
        hub = Hub()
        handler = LiveUpdatesHandler.__new__(LiveUpdatesHandler)  # no request: only what deliver_frame uses
        handler.application = SimpleNamespace(settings={"services": SimpleNamespace(hub=hub)})
        stream = IOStream(ours)
        stream.max_write_buffer_size = 64 << 20  # as open() sets it
        handler.ws_connection = SimpleNamespace(stream=stream, client_terminated=False, server_terminated=False)
        hub.add(handler)
        first = json.dumps({"type": "alert", "ts": 1.0, "data": "a" * (4 << 20)})  # more than the socket buffers take
        second = json.dumps({"type": "alert", "ts": 2.0, "data": "b"})
        # no await from here to the second frame: the IOLoop does not run, the stream keeps what it holds
        assert hub.deliver_local("alert", first) == 1
        assert stream.writing(), "the first frame fit in the socket: nothing was left half-sent"
        head = b""
        peer.settimeout(30)  # a failure, not a hang, if the socket never gets room
        while not select.select([], [ours], [], 0)[1]:  # the peer reads until the socket has room again
            head += peer.recv(1 << 16)
        assert stream.writing() and len(head) < len(text_frame(first))  # still half-sent, and the socket has room
        assert hub.deliver_local("alert", second) == 1
        peer.setblocking(False)
        reader = IOStream(peer)
        rest = await reader.read_bytes(len(text_frame(first)) + len(text_frame(second)) - len(head))
        stream.close()
        reader.close()
        return head + rest, text_frame(first), text_frame(second)

    received, first, second = asyncio.run(scenario())
    assert received == first + second, f"the second frame arrived at byte {received.find(second)}, inside the first"


def test_a_slow_client_is_dropped_without_a_close_frame_while_the_others_get_everything(make_server, caplog):
    running = make_server(ws_max_buffer=64 << 10, **QUIET)
    hub, port = running.services.hub, running.ports["http"]
    slow = raw_client(port, subscribe=["alert"], rcvbuf=4096)
    readers = [raw_client(port, subscribe=["alert"]) for _ in range(2)]
    wait_until(lambda: len(hub.clients) == 3)
    received: list[list[int]] = [[], []]

    def read(sock: socket.socket, into: list[int]) -> None:
        while True:
            data = json.loads(next_frame(sock)[1])["data"]
            into.append(data["seq"])
            if data.get("last"):
                return

    threads = [threading.Thread(target=read, args=(s, r), daemon=True) for s, r in zip(readers, received)]
    for thread in threads:
        thread.start()
    before = sent_count(running, "alert")
    taken, seq = 0, 0
    with caplog.at_level(logging.WARNING, logger="bizra.live"):
        while len(hub.clients) == 3:
            assert seq < 2000, "the slow client was never dropped"
            # 6 messages of 8 kB a step (under the 64 KiB bound), then the readers catch up before the next
            taken += sum(running.call(lambda s=s: hub.publish("alert", {"seq": s, "blob": "x" * 8000}))
                         for s in range(seq, seq + 6))
            seq += 6
            wait_until(lambda: all(len(r) == seq for r in received), timeout=30)
        taken += running.call(hub.publish, "alert", {"seq": seq, "last": True})
        for thread in threads:
            thread.join(timeout=30)
    assert [r == list(range(seq + 1)) for r in received] == [True, True]  # everything, in order
    assert 2 * (seq + 1) <= taken < 3 * (seq + 1) and sent_count(running, "alert") - before == taken
    assert any("stopped reading" in r.getMessage() for r in caplog.records if r.name == "bizra.live")
    frames = complete_frames(read_to_eof(slow))  # the server closed the socket: EOF after what was in flight
    assert frames and all(opcode == 0x1 for opcode, _ in frames)  # text frames only: no close frame
    for sock in readers + [slow]:
        sock.close()


def test_closing_clients_are_skipped_removed_and_not_counted(make_server):
    running = make_server(**QUIET)
    hub, port = running.services.hub, running.ports["http"]
    socks = [raw_client(port, subscribe=["alert"]) for _ in range(4)]
    wait_until(lambda: len(hub.clients) == 4)

    def close_two_then_publish() -> tuple[int, int]:
        by_handler, by_protocol = list(hub.clients)[:2]
        by_handler.close(1000, "bye")  # the handler lets go of its connection at once
        by_protocol.ws_connection.close(1000, "bye")  # as a ping timeout does: the connection stays, closing
        return hub.publish("alert", {"after": "close"}), len(hub.clients)

    assert running.call(close_two_then_publish) == (2, 2)
    firsts = [next_frame(sock) for sock in socks]
    assert sorted(opcode for opcode, _ in firsts) == [0x1, 0x1, 0x8, 0x8]  # two got the alert, two a close frame
    for sock, (opcode, _) in zip(socks, firsts):
        if opcode == 0x8:
            sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # the client's half of the close handshake
            assert read_to_eof(sock) == b""  # and nothing after the close frame
        sock.close()
