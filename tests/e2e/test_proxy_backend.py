"""A tiny HTTP/1.1 backend for the proxy tests, run as a script in a subprocess.

``python tests/e2e/test_proxy_backend.py PORT NAME`` serves until killed.
Every response carries ``X-Backend: NAME`` and ``X-Conn: N`` (the serial
number of the TCP connection it came on, counting accepts). Paths:

With a third argument, each request is noted in that file as ``METHOD
TARGET BODY_LENGTH``.

- ``/echo...`` (any method): a JSON body with what arrived: method, target,
  headers (as received, in order), body (Latin-1 text), conn;
- ``/big?size=N``: N bytes (``Content-Length``), written 64 KiB at a time;
- ``/chunked``: a chunked body of three pieces; ``/close``: a body ended by
  closing the connection (HTTP/1.0 style);
- ``/status/NNN``: that status; ``/hang``: never answers; ``/bad``: a
  malformed status line; ``/ws``: a 101 and an echo of every byte after it.

Request bodies are read by Content-Length or chunked (decoded), as sent by
the proxy. Pytest collects no test here (the name only places it among the
proxy tests).
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time

_SERIAL = itertools.count(1)
_LOG: str | None = None  # where each request is noted (argv[3])


class _Conn:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.conn = next(_SERIAL)
        self.buf = b""

    def recv_more(self) -> bool:
        piece = self.sock.recv(65536)
        if not piece:
            return False
        self.buf += piece
        return True

    def read_until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self.recv_more():
                return None
        index = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:index], self.buf[index:]
        return data

    def read_exact(self, size: int) -> bytes | None:
        while len(self.buf) < size:
            if not self.recv_more():
                return None
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def read_body(self, headers: list[tuple[str, str]]) -> bytes | None:
        fields = {k.lower(): v for k, v in headers}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                line = self.read_until(b"\r\n")
                if line is None:
                    return None
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    if self.read_until(b"\r\n") is None:
                        return None
                    return body
                piece = self.read_exact(size + 2)
                if piece is None:
                    return None
                body += piece[:-2]
        length = int(fields.get("content-length", "0") or 0)
        return self.read_exact(length)

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        lines = [f"HTTP/1.1 {status} X"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [f"X-Backend: {self.name}", f"X-Conn: {self.conn}"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def serve(self) -> None:
        while True:
            head = self.read_until(b"\r\n\r\n")
            if head is None:
                return
            text = head.decode("latin-1")
            request_line, *field_lines = text.split("\r\n")[:-2]
            method, target, _ = request_line.split(" ")
            headers = [tuple(f.split(": ", 1)) for f in field_lines]
            headers2 = [(k, v) for k, v in headers]  # type: ignore[misc]
            body = self.read_body(headers2)
            if body is None:
                return
            close = any(k.lower() == "connection" and "close" in v.lower() for k, v in headers2)
            if not self.answer(method, target, headers2, body):
                return
            if close:
                return

    def answer(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bool:
        if _LOG is not None:
            with open(_LOG, "a") as log:
                log.write(f"{method} {target} {len(body)}\n")
        path, _, query = target.partition("?")
        if path == "/hang":
            time.sleep(120)
            return False
        if path == "/bad":
            self.sock.sendall(b"HTTP/1.1 2x0 Nope\r\n\r\n")
            return False
        if path == "/ws":
            self.send(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")])
            while True:
                piece = self.buf or self.sock.recv(65536)
                self.buf = b""
                if not piece:
                    return False
                self.sock.sendall(piece)
        if path == "/big":
            size = int(query.split("=")[1])
            self.send(
                200, [("Content-Length", str(size)), ("Content-Type", "application/octet-stream")]
            )
            block = b"x" * 65536
            left = size
            while left:
                piece = block[: min(left, len(block))]
                self.sock.sendall(piece)
                left -= len(piece)
            return True
        if path == "/chunked":
            self.send(200, [("Transfer-Encoding", "chunked")])
            self.sock.sendall(b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
            return True
        if path == "/close":
            self.sock.sendall(
                b"HTTP/1.0 200 OK\r\nX-Backend: %s\r\n\r\nuntil the end" % self.name.encode()
            )
            return False
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            self.send(status, [("Content-Length", "2")], b"s!")
            return True
        payload = json.dumps(
            {
                "method": method,
                "target": target,
                "headers": headers,
                "body": body.decode("latin-1"),
                "conn": self.conn,
                "backend": self.name,
            }
        ).encode()
        extra = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "dropped"),
            ("Keep-Alive", "timeout=5"),
            ("Server", "backend"),
        ]
        self.send(200, extra, payload if method != "HEAD" else b"")
        return True


def main() -> None:
    global _LOG
    port, name = int(sys.argv[1]), sys.argv[2]
    _LOG = sys.argv[3] if len(sys.argv) > 3 else None
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    while True:
        sock, _ = listener.accept()
        conn = _Conn(sock, name)

        def run(conn: _Conn = conn) -> None:
            try:
                conn.serve()
            except OSError:
                pass
            finally:
                conn.sock.close()

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
