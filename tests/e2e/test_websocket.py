"""WebSocket end to end: App API endpoints (event style and threaded) and
``websocket_exec`` programs, driven by the ``websockets`` client and by raw
sockets that send what a client library never would."""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import REPO, Server, free_port, recv_until
from tests.proc import children_of, rss_kib, wait_for

APP = '''
import os
from localhost import App

app = App(threads=4)

@app.websocket("/chat/:room", subprotocols=["chat.v2", "chat.v1"])
class Chat:
    def on_connect(self, ws, room):
        app.group(room).add(ws)
        ws.send(f"joined {room} {len(app.group(room))} {ws.subprotocol}")

    def on_message(self, ws, message):
        if message == "count":
            ws.send(str(len(app.group(ws.params["room"]))))
        elif message == "close-me":
            ws.close(4001, "asked")
        else:
            app.group(ws.params["room"]).broadcast(message)


@app.websocket("/echo")
class Echo:
    def on_message(self, ws, message):
        ws.send(message)

    def on_close(self, ws, code, reason):
        with open(os.path.join(os.path.dirname(__file__), "closes.log"), "a") as log:
            log.write(f"{code} {reason}\\n")


@app.websocket("/flood")
class Flood:
    """Sends 64 KiB messages while send() says yes, again on on_writable."""

    def on_connect(self, ws):
        self.sent = 0
        self.pump(ws)

    def pump(self, ws):
        while self.sent < 800:
            self.sent += 1
            if not ws.send(b"x" * 65536):
                return
        ws.close(1000, "done")

    def on_writable(self, ws):
        self.pump(ws)


@app.websocket("/drip")
class Drip(Flood):
    """4 MiB (64 x 64 KiB), then a close."""

    def pump(self, ws):
        while self.sent < 64:
            self.sent += 1
            if not ws.send(b"y" * 65536):
                return
        ws.close(1000, "done")


@app.websocket("/blocking", threaded=True)
def blocking(ws):
    for message in ws:
        if message == "bye":
            break
        ws.send(message[::-1] if isinstance(message, str) else message)
    ws.close(1000, "bye")


@app.route("GET", "/plain", inline=True)
def plain(req):
    return "plain"
'''

ECHO_PROGRAM = """#!/usr/bin/env python3
import os, sys
print(f"pid {os.getpid()}", flush=True)
print(f"query {os.environ.get('QUERY_STRING', '')} {os.environ.get('REMOTE_ADDR', '')}", flush=True)
for line in sys.stdin:
    line = line.rstrip("\\n")
    if line.startswith("exit "):
        sys.exit(int(line[5:]))
    print(line.upper(), flush=True)
"""

CONFIG = """
worker_shutdown_timeout 5s
server {
    host 127.0.0.1
    port {port0}
    websocket_idle_timeout 2s
    location / {
        app wsapp:app
        wsgi_path .
        websocket_max_message 64k
    }
    location /big {
        app wsapp:app
        wsgi_path .
        websocket_max_message 16m
        websocket_deflate on
    }
    location /strict {
        app wsapp:app
        wsgi_path .
        websocket_origins https://good.example
    }
    location /exec {
        websocket_exec ./upper.py
    }
    location /orphan {
        websocket_exec ./orphan.sh
    }
    location /patient {
        app wsapp:app
        wsgi_path .
        websocket_idle_timeout 60s
    }
}
"""


@pytest.fixture
def server(server_factory, tmp_path: Path) -> Server:
    (tmp_path / "wsapp.py").write_text(APP)
    program = tmp_path / "upper.py"
    program.write_text(ECHO_PROGRAM)
    program.chmod(0o755)
    orphan = tmp_path / "orphan.sh"
    orphan.write_text("#!/bin/sh\nsleep 300 &\necho child $!\n")  # exits, its child lives on
    orphan.chmod(0o755)
    return server_factory(CONFIG)


def ws_url(server: Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


# -- raw frames -----------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exactly(8))
    assert not second & 0x80, "a server never masks"
    return first & 0x0F, exactly(length)


def raw_handshake(server: Server, path: str, extra: str = "") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    # Byte by byte: frames may follow the head at once (an endpoint that
    # sends on connect), and they must stay in the socket for read_frame.
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return sock, head


def close_code(sock: socket.socket) -> int:
    """The code of the close frame the server sends next (other frames skipped)."""
    while True:
        opcode, payload = read_frame(sock)
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if payload else 1005


# -- App API --------------------------------------------------------------


def test_event_style_echo_and_groups(server: Server) -> None:
    with (
        connect(ws_url(server, "/chat/lobby"), subprotocols=["chat.v1"]) as one,
        connect(ws_url(server, "/chat/lobby")) as two,
    ):
        assert one.recv(timeout=5) == "joined lobby 1 chat.v1"
        assert one.subprotocol == "chat.v1"
        assert two.recv(timeout=5) == "joined lobby 2 None"
        one.send("hello, room")
        assert one.recv(timeout=5) == "hello, room"
        assert two.recv(timeout=5) == "hello, room"
        with connect(ws_url(server, "/chat/other")) as three:
            assert three.recv(timeout=5) == "joined other 1 None"
        two.close()
        # The group forgets a closed socket by itself.
        assert wait_for(lambda: (one.send("count"), one.recv(timeout=5))[1] == "1", 5)


def test_binary_and_text_and_fragmented_frames(server: Server) -> None:
    sock, head = raw_handshake(server, "/echo")
    assert head.startswith(b"HTTP/1.1 101 ")
    with sock:
        sock.sendall(frame(0x2, b"\x00\x01binary"))
        assert read_frame(sock) == (0x2, b"\x00\x01binary")
        # A text message in three fragments, a ping between them.
        sock.sendall(frame(0x1, "héllo ".encode(), fin=False))
        sock.sendall(frame(0x9, b"are you there"))
        assert read_frame(sock) == (0xA, b"are you there")
        sock.sendall(frame(0x0, b"wor", fin=False) + frame(0x0, b"ld"))
        assert read_frame(sock) == (0x1, "héllo world".encode())
        # The client closes: the server answers with the same code.
        sock.sendall(frame(0x8, struct.pack("!H", 1000) + b"done"))
        opcode, payload = read_frame(sock)
        assert opcode == 0x8 and payload[:2] == struct.pack("!H", 1000)
        assert sock.recv(10) == b""  # and closes the TCP connection


def test_the_message_limit_counts_utf8_bytes_of_text(server: Server) -> None:
    # 40,000 two-byte characters: 80,000 bytes, over the 64k limit in bytes.
    text = ("é" * 20000).encode()
    for frames in (
        [frame(0x1, text + text)],  # one frame (wsproto's path: over 65,535 bytes)
        [frame(0x1, text, fin=False), frame(0x0, text)],  # two fragments
    ):
        sock, _ = raw_handshake(server, "/echo")
        with sock:
            sock.sendall(b"".join(frames))
            assert close_code(sock) == 1009
    # Just under the limit in bytes still goes through.
    sock, _ = raw_handshake(server, "/echo")
    with sock:
        under = ("é" * 16000).encode()
        sock.sendall(frame(0x1, under, fin=False) + frame(0x0, under))
        opcode, payload = read_frame(sock)
        assert (opcode, payload) == (0x1, under + under)


def test_close_codes(server: Server, tmp_path: Path) -> None:
    # A message over websocket_max_message (64k here): 1009.
    with pytest.raises(ConnectionClosed) as closed, connect(ws_url(server, "/echo")) as ws:
        ws.send("x" * (64 * 1024 + 1))
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # Invalid UTF-8 in a text message: 1007.
    sock, _ = raw_handshake(server, "/echo")
    with sock:
        sock.sendall(frame(0x1, b"\xff\xfe"))
        assert close_code(sock) == 1007
    # An unmasked frame from a client: 1002.
    sock, _ = raw_handshake(server, "/echo")
    with sock:
        sock.sendall(frame(0x1, b"hi", mask=False))
        assert close_code(sock) == 1002
    # Reserved bits without an extension: 1002.
    sock, _ = raw_handshake(server, "/echo")
    with sock:
        sock.sendall(frame(0x1, b"hi", rsv=4))
        assert close_code(sock) == 1002
    # The endpoint closes with its own code.
    with connect(ws_url(server, "/chat/x")) as ws:
        ws.recv(timeout=5)
        ws.send("close-me")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "asked")
    # The endpoint's on_close heard the client's code and reason.
    with connect(ws_url(server, "/echo")) as ws:
        ws.close(4321, "client says bye")
    log = tmp_path / "closes.log"
    assert wait_for(lambda: log.exists() and "4321 client says bye" in log.read_text(), 5)
    # TCP closed without a close frame: 1006 for the endpoint.
    sock, _ = raw_handshake(server, "/echo")
    sock.close()
    assert wait_for(lambda: "1006" in log.read_text(), 5)


def test_ten_mib_message_with_deflate(server: Server) -> None:
    payload = os.urandom(5 * 1024 * 1024) + b"a" * (5 * 1024 * 1024)
    with connect(ws_url(server, "/big/echo"), max_size=None) as ws:
        # websockets offers permessage-deflate by default; the location accepts it.
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send(payload)
        assert ws.recv(timeout=30) == payload


def peak_rss_kib(pid: int) -> int:
    """The largest resident memory (VmHWM) of ``pid`` or any of its children, in KiB."""
    peaks = []
    for each in [pid, *(child for child, _ in children_of(pid))]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return max(peaks)


def test_a_compression_bomb_is_closed_with_1009_without_inflating_it(server: Server) -> None:
    # 256 MiB of zeros deflate to about 256 KiB; the location allows 16 MiB messages.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(256 * 1024 * 1024)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert bomb.endswith(b"\x00\x00\xff\xff")
    bomb = bomb[:-4]  # the sender removes the empty block's tail (RFC 7692 §7.2.1)
    before = peak_rss_kib(server.process.pid)
    sock, head = raw_handshake(
        server, "/big/echo", "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    )
    with sock:
        assert b"permessage-deflate" in head
        sock.sendall(frame(0x2, bomb, rsv=0b100))  # RSV1: a compressed message
        assert close_code(sock) == 1009
    # Inflating stopped near the 16 MiB limit: not 64 MiB per read, not 256 MiB.
    assert peak_rss_kib(server.process.pid) - before < 40 * 1024
    # A compressed message within the limit still goes through.
    with connect(ws_url(server, "/big/echo"), max_size=None) as ws:
        ws.send(b"a" * (8 * 1024 * 1024))
        assert ws.recv(timeout=30) == b"a" * (8 * 1024 * 1024)


def test_idle_timeout_pings_then_closes(server: Server) -> None:
    sock, _ = raw_handshake(server, "/echo")
    with sock:
        started = time.monotonic()
        opcode, _ = read_frame(sock)  # a ping at half the 2 s timeout
        assert opcode == 0x9
        assert 0.7 < time.monotonic() - started < 1.9
        assert close_code(sock) == 1011  # no pong came
        assert time.monotonic() - started < 3.5
    # A client that answers pings (websockets does) stays.
    with connect(ws_url(server, "/echo")) as ws:
        time.sleep(2.5)  # the point: idle time passes, answered pings keep it open
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


def test_threaded_endpoint(server: Server) -> None:
    with connect(ws_url(server, "/blocking")) as ws:
        for word in ("abc", "hello"):
            ws.send(word)
            assert ws.recv(timeout=5) == word[::-1]
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=5) == b"\x00\x01"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_slow_reader_keeps_memory_bounded(server: Server) -> None:
    sock, head = raw_handshake(server, "/patient/flood")
    assert head.startswith(b"HTTP/1.1 101 ")
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        before = rss_kib(server.process.pid)
        peak = before
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # the client reads nothing meanwhile
            peak = max(peak, rss_kib(server.process.pid))
            time.sleep(0.05)
        # 800 × 64 KiB = 50 MiB offered; the server holds about its high-water mark.
        assert (peak - before) < 8 * 1024, (before, peak)
        received = 0
        while True:
            opcode, payload = read_frame(sock)
            if opcode == 0x8:
                assert payload[2:] == b"done", payload  # the endpoint's own close
                break
            if opcode == 0x9:  # the idle ping: answer it
                sock.sendall(frame(0xA, payload))
            else:
                received += len(payload)
        assert received == 800 * 65536


def test_a_close_waits_for_a_slow_client_that_is_still_reading(server: Server) -> None:
    # The endpoint queues 4 MiB and closes at once; the client takes about 6 s
    # to read it, three times the 2 s idle timeout that bounds a closing
    # handshake. It keeps reading, so it gets every byte and the close frame.
    sock, head = raw_handshake(server, "/drip")
    assert head.startswith(b"HTTP/1.1 101 ")
    with sock:
        sock.settimeout(10)
        received = 0
        while True:
            opcode, payload = read_frame(sock)
            if opcode == 0x8:
                assert payload == struct.pack("!H", 1000) + b"done"
                break
            received += len(payload)
            time.sleep(0.1)  # 64 KiB per 0.1 s
        assert received == 64 * 65536
        sock.sendall(frame(0x8, payload))
        assert sock.recv(10) == b""


def test_plain_requests_and_unknown_paths(server: Server) -> None:
    assert requests.get(server.url("/plain"), timeout=5).text == "plain"
    refused = requests.get(server.url("/echo"), timeout=5)
    assert refused.status_code == 426
    assert refused.headers["Upgrade"] == "websocket"
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(server, "/nowhere"))
    assert caught.value.response.status_code == 404
    _, head = raw_handshake(server, "/echo", "Sec-WebSocket-Version: 8\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") or head.startswith(b"HTTP/1.1 426 ")


def test_origin_allow_list(server: Server) -> None:
    with connect(ws_url(server, "/strict/echo"), origin="https://good.example") as ws:
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(server, "/strict/echo"), origin="https://evil.example")
    assert caught.value.response.status_code == 403


def test_many_sockets_on_one_worker(server: Server) -> None:
    count = 1000
    socks = []
    try:
        before = rss_kib(server.process.pid)
        for _ in range(count):
            sock, head = raw_handshake(server, "/patient/echo")
            assert head.startswith(b"HTTP/1.1 101 ")
            socks.append(sock)
        for sock in socks:
            sock.sendall(frame(0x1, b"ping"))
        for sock in socks:
            assert read_frame(sock) == (0x1, b"ping")
        grown = rss_kib(server.process.pid) - before
        print(f"RSS for {count} open WebSockets: +{grown / 1024:.1f} MiB")
        assert grown < 64 * 1024
    finally:
        for sock in socks:
            sock.close()


def test_graceful_stop_closes_with_1001(server: Server) -> None:
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert server.process.wait(10) == 0


def test_a_handshake_that_arrives_during_a_graceful_stop_is_closed_with_1001(
    server: Server,
) -> None:
    # A keep-alive connection, idle when the stop begins, carries a handshake
    # within the grace the server gives requests already on their way.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with sock:
        sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        recv_until(sock, b"\r\n\r\n")
        server.process.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except OSError:
                return True
            return False

        assert wait_for(refused, 5)  # the worker is stopping
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        started = time.monotonic()
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        assert close_code(sock) == 1001
        assert time.monotonic() - started < 2  # not at worker_shutdown_timeout (5 s)
    assert server.process.wait(10) == 0


# -- websocket_exec -------------------------------------------------------


def test_exec_lines_are_messages(server: Server) -> None:
    with connect(ws_url(server, "/exec?room=7")) as ws:
        pid = int(str(ws.recv(timeout=5)).split()[1])
        assert ws.recv(timeout=5) == "query room=7 127.0.0.1"
        ws.send("hello")
        assert ws.recv(timeout=5) == "HELLO"
        ws.send("two")
        assert ws.recv(timeout=5) == "TWO"
    # The socket closed: the process is killed and reaped.
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5)


def test_exec_with_a_relative_config_path(tmp_path: Path) -> None:
    # As in `cd site && python -m localhost site.conf`: the program's path comes
    # out relative to the working directory, and the program runs in its folder.
    site = tmp_path / "site"
    (site / "apps").mkdir(parents=True)
    program = site / "apps" / "upper.py"
    program.write_text(ECHO_PROGRAM)
    program.chmod(0o755)
    port = free_port()
    (site / "site.conf").write_text(
        f"server {{\n host 127.0.0.1\n port {port}\n"
        "  location /exec { websocket_exec ./apps/upper.py }\n}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "localhost", "site.conf"],
        cwd=site,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: port_open(port), 15)
        with connect(f"ws://127.0.0.1:{port}/exec") as ws:
            assert str(ws.recv(timeout=5)).startswith("pid ")
            assert str(ws.recv(timeout=5)).startswith("query ")
            ws.send("relative")
            assert ws.recv(timeout=5) == "RELATIVE"
    finally:
        process.terminate()
        process.wait(10)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_exec_exit_status_is_the_close_code(server: Server) -> None:
    with connect(ws_url(server, "/exec")) as ws:
        ws.recv(timeout=5)
        ws.recv(timeout=5)
        ws.send("exit 0")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    with connect(ws_url(server, "/exec")) as ws:
        ws.recv(timeout=5)
        ws.recv(timeout=5)
        ws.send("exit 3")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


def test_exec_plain_request_is_426(server: Server) -> None:
    reply = requests.get(server.url("/exec"), timeout=5)
    assert reply.status_code == 426
    assert reply.headers["Sec-WebSocket-Version"] == "13"


def test_other_clients_are_served_meanwhile(server: Server) -> None:
    stop = threading.Event()

    def chatter() -> None:
        with connect(ws_url(server, "/echo")) as ws:
            while not stop.is_set():
                ws.send("x" * 1000)
                ws.recv(timeout=5)

    worker = threading.Thread(target=chatter)
    worker.start()
    try:
        for _ in range(20):
            assert requests.get(server.url("/plain"), timeout=5).text == "plain"
    finally:
        stop.set()
        worker.join(10)


def test_config_errors(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    conf = tmp_path / "bad.conf"
    conf.write_text(
        "server {\n    port 8080\n    location /ws { websocket_exec ./missing.py }\n}\n"
    )
    result = run_cli(["-t", str(conf)])
    assert result.returncode != 0
    assert f"{conf}:3:35:" in result.stderr and "missing.py" in result.stderr
    conf.write_text("server {\n    port 8080\n    websocket_origins example.com\n}\n")
    result = run_cli(["-t", str(conf)])
    assert result.returncode != 0
    assert f"{conf}:3:23:" in result.stderr and "invalid origin" in result.stderr


def test_frames_in_any_slicing(server: Server) -> None:
    # Small and 16-bit-length frames, a ping, a fragmented message, all in one
    # stream that arrives whole, byte by byte, and in odd-sized pieces.
    stream = (
        frame(0x1, b"one")
        + frame(0x2, b"\x00" * 300)
        + frame(0x9, b"p")
        + frame(0x1, b"fr", fin=False)
        + frame(0x0, b"ag")
        + frame(0x1, "ünï".encode())
        + frame(0x1, b"")
    )
    expected = [
        (0x1, b"one"),
        (0x2, b"\x00" * 300),
        (0xA, b"p"),
        (0x1, b"frag"),
        (0x1, "ünï".encode()),
        (0x1, b""),
    ]
    for size in (len(stream), 1, 7, 250):
        sock, _ = raw_handshake(server, "/echo")
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for index in range(0, len(stream), size):
                sock.sendall(stream[index : index + size])
                if size < 10:
                    time.sleep(0.001)  # separate reads on the server
            assert [read_frame(sock) for _ in expected] == expected, size


def test_bad_utf8_after_good_frames_in_one_read(server: Server) -> None:
    sock, _ = raw_handshake(server, "/echo")
    with sock:
        sock.sendall(frame(0x1, b"fine") + frame(0x1, b"\xc3\x28"))
        assert read_frame(sock) == (0x1, b"fine")
        assert close_code(sock) == 1007


def test_refused_handshakes_say_why(server: Server) -> None:
    for path in ("/exec", "/echo"):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = recv_until(sock, b"Sec-WebSocket-Key")
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert b"Content-Type: text/plain" in head
        assert b"missing or malformed Sec-WebSocket-Key" in head


def test_exec_kills_the_whole_group_even_after_the_program_exited(server: Server) -> None:
    with connect(ws_url(server, "/orphan")) as ws:
        pid = int(str(ws.recv(timeout=5)).split()[1])
        assert os.path.exists(f"/proc/{pid}")  # the child holds the output open
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5)
