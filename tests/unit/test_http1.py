"""The HTTP/1.1 protocol without sockets: bytes in and out through FakeTransport.

The protocol runs with the real router, pipeline and handlers of a small
configuration; a few requests go to test handlers installed in front of the
pipeline, to drive the handler interface (streamed bodies, late calls,
invalid fields).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localhost.config import loads
from localhost.handlers.base import BodyPolicy, Handler
from localhost.http.message import Request, Response
from localhost.io.loop import EventLoop
from localhost.routing import Router
from localhost.server.exchange import Exchange
from localhost.server.http1 import HTTP1Protocol
from localhost.server.pipeline import Pipeline
from localhost.services import Services
from tests.fakes import FakeTransport

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class SwitchPipeline(Pipeline):
    """The real pipeline, except paths under /test/ go to ``handlers[path]``."""

    __slots__ = ("handlers",)
    handlers: dict[str, Callable[[Any], Handler]]

    def start(self, exchange: Any) -> Handler:
        factory = self.handlers.get(exchange.request.path)
        if factory is not None:
            return factory(exchange)
        return super().start(exchange)


class Host:
    """What HTTP1Protocol needs of its worker."""

    def __init__(self, root: Path) -> None:
        config = loads(
            f"server {{\n host 127.0.0.1\n port 8080\n root {root}\n access_log off\n"
            f" body_limit 1000\n}}\n"
        )
        self.config = config
        self.loop = EventLoop()
        self.router = Router(config)
        self.services = Services(config, self.loop)
        self.switch = SwitchPipeline(self.router, self.services)
        self.switch.handlers = {}
        self.pipeline: Pipeline = self.switch
        self.parse_memo: dict[bytes, Request] = {}
        self.stopping = False

    def connect(self) -> tuple[FakeTransport, HTTP1Protocol]:
        protocol = HTTP1Protocol(self, self.config.servers[0])
        return FakeTransport(protocol), protocol

    def close(self) -> None:
        self.services.close()
        self.loop.close()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "b.txt").write_bytes(b"bravo!\n")
    made = Host(tmp_path)
    yield made
    made.close()


def responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split bytes holding Content-Length-framed responses into (head, body)."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        found.append((head, rest[:length]))
        data = rest[length:]
    return found


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


class Recorder(Handler):
    """Streams the body, then answers with what it got (Content-Length framed)."""

    __slots__ = ("pieces",)
    made: list[Recorder] = []

    def __init__(self, exchange: Any) -> None:
        super().__init__(exchange)
        self.pieces: list[bytes] = []
        Recorder.made.append(self)

    def on_head(self) -> BodyPolicy:
        return BodyPolicy.STREAM

    def on_body(self, data: bytes) -> bool:
        self.pieces.append(bytes(data))
        return True

    def on_body_end(self) -> None:
        self.exchange.send(Response(200, [("Content-Type", "text/plain")], b"".join(self.pieces)))


def install(host: Host, path: str, factory: Callable[[Any], Handler]) -> None:
    host.switch.handlers[path] = factory


def test_keep_alive_get_answers_and_stays_open(host: Host) -> None:
    transport, protocol = host.connect()
    transport.feed(get("/a.txt"))
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" not in head
    assert body == b"alpha\n"
    assert not transport.closing and protocol.is_idle()
    transport.feed(get("/b.txt"))
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"bravo!\n"
    assert not transport.closing


def test_pipelined_requests_are_answered_in_order(host: Host) -> None:
    transport, _ = host.connect()
    transport.feed(get("/b.txt") + get("/a.txt") + get("/missing") + get("/a.txt"))
    answers = responses(transport.take())
    assert [head.split(b"\r\n")[0] for head, _ in answers] == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 200 OK",
    ]
    assert [answers[0][1], answers[1][1], answers[3][1]] == [b"bravo!\n", b"alpha\n", b"alpha\n"]
    assert not transport.closing


def test_chunked_body_is_streamed_to_the_handler(host: Host) -> None:
    Recorder.made.clear()
    install(host, "/test/echo", Recorder)
    transport, _ = host.connect()
    transport.feed(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    transport.feed(b"5\r\nhello\r\n")
    assert Recorder.made[0].pieces == [b"hello"]  # delivered as it arrives
    transport.feed(b"6\r\n world\r\n0\r\n\r\n")
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"hello world"
    assert not transport.closing  # the whole body was read: kept alive


class Spooler(Handler):
    """Asks for the body spooled, answers with what it read from ``exchange.body``."""

    __slots__ = ()
    bodies: list[Any] = []

    def on_head(self) -> BodyPolicy:
        return BodyPolicy.SPOOL

    def on_body_end(self) -> None:
        body = self.exchange.body
        Spooler.bodies.append(body)
        self.exchange.send(Response(200, [("Content-Type", "text/plain")], body.read()))


def test_a_spooled_body_is_handed_over_and_closed_when_the_request_ends(host: Host) -> None:
    Spooler.bodies.clear()
    install(host, "/test/spool", Spooler)
    transport, _ = host.connect()
    transport.feed(b"POST /test/spool HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"hello world"
    (spool,) = Spooler.bodies
    assert spool.closed  # no descriptor left open until garbage collection


def test_malformed_request_gets_400_and_closes(host: Host) -> None:
    transport, _ = host.connect()
    transport.feed(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n" + get("/a.txt"))
    data = transport.take()
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close\r\n" in data
    assert data.count(b"HTTP/1.1 ") == 1  # the pipelined request is not answered
    assert transport.closing and transport.lost == [None]


def test_expect_100_continue_then_body(host: Host) -> None:
    install(host, "/test/echo", Recorder)
    transport, _ = host.connect()
    transport.feed(
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert transport.take() == CONTINUE
    transport.feed(b"abcd")
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"abcd"
    # Refused by Content-Length: the final status at once, without 100.
    transport.feed(
        b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    data = transport.take()
    assert data.startswith(b"HTTP/1.1 413 ") and CONTINUE not in data
    assert transport.closing


def test_early_answer_with_body_still_coming_closes(host: Host) -> None:
    transport, _ = host.connect()
    transport.feed(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"alpha\n"
    assert head.endswith(b"\r\nConnection: close")
    assert transport.closing


def test_answer_after_the_whole_body_keeps_the_connection(host: Host) -> None:
    transport, _ = host.connect()
    transport.feed(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")
    ((head, body),) = responses(transport.take())
    assert b"Connection: close" not in head and body == b"alpha\n"
    assert not transport.closing


class Keeper(Handler):
    """Answers at once and keeps its exchange, to act on it too late."""

    __slots__ = ()
    kept: list[Any] = []

    def on_body_end(self) -> None:
        Keeper.kept.append(self.exchange)
        self.exchange.start(Response(200, [("Content-Type", "text/plain")]), None)
        self.exchange.write(b"first")
        self.exchange.finish()


def test_exchange_is_inert_after_finish(host: Host) -> None:
    Keeper.kept.clear()
    install(host, "/test/keep", Keeper)
    transport, _ = host.connect()
    transport.feed(get("/test/keep"))
    data = transport.take()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding: chunked\r\n" in data
    assert data.endswith(b"5\r\nfirst\r\n0\r\n\r\n")
    late: Exchange = Keeper.kept[0]
    assert late.done
    late.write(b"late")
    late.finish()
    late.send(Response(500))
    late.abort()
    assert transport.take() == b"" and not transport.closing
    transport.feed(get("/a.txt"))
    ((head, body),) = responses(transport.take())
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"alpha\n"
    assert late.write(b"later") is False
    assert transport.take() == b""


class Forger(Handler):
    __slots__ = ()

    def on_body_end(self) -> None:
        self.exchange.send(Response(200, [("X-Note", "a\r\nSet-Cookie: evil=1")], b"hi"))


def test_field_with_crlf_from_a_handler_is_a_500(host: Host) -> None:
    install(host, "/test/forge", Forger)
    transport, _ = host.connect()
    transport.feed(get("/test/forge"))
    data = transport.take()
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in data
    assert b"Connection: close\r\n" in data
    assert transport.closing


class Slow(Handler):
    """Answers later, when the test says so (a CGI script at work)."""

    __slots__ = ()
    waiting: list[Any] = []

    def on_body_end(self) -> None:
        Slow.waiting.append(self.exchange)


def test_reading_pauses_while_a_handler_works_and_pipelined_requests_wait(host: Host) -> None:
    Slow.waiting.clear()
    install(host, "/test/slow", Slow)
    transport, _ = host.connect()
    transport.feed(get("/test/slow") + get("/a.txt"))
    assert transport.take() == b""
    assert not transport.reading and transport.hangup_watched
    (exchange,) = Slow.waiting
    exchange.send(Response(200, [], b"slow"))
    host.loop.run_pending()  # the pipelined request, at the end of the iteration
    answers = responses(transport.take())
    assert [body for _, body in answers] == [b"slow", b"alpha\n"]
    assert transport.reading and not transport.hangup_watched


def test_a_client_that_does_not_read_pauses_reading_until_the_response_is_out(
    host: Host, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 300_000)
    transport, _ = host.connect()
    transport.block()
    transport.feed(get("/big.bin"))
    assert not transport.reading  # the answer waits for its client
    transport.feed(get("/a.txt"))  # waits in the kernel meanwhile
    transport.unblock()
    host.loop.run_pending()
    answers = responses(transport.take())
    assert len(answers[0][1]) == 300_000 and answers[1][1] == b"alpha\n"
    assert transport.reading


def test_header_timeout_gives_408_and_idle_timeout_closes_quietly(host: Host) -> None:
    transport, _ = host.connect()
    transport.feed(b"GET /a.txt HTTP/1.1\r\nHo")
    transport.fire_timeout()
    data = transport.take()
    assert data.startswith(b"HTTP/1.1 408 ") and b"Connection: close\r\n" in data
    assert transport.closing
    transport, _ = host.connect()
    transport.feed(get("/a.txt"))
    transport.take()
    transport.fire_timeout()  # keepalive_timeout
    assert transport.take() == b"" and transport.closing


def test_client_gone_aborts_the_handler(host: Host) -> None:
    aborted: list[str] = []

    class Waiting(Handler):
        __slots__ = ()

        def on_abort(self, reason: str) -> None:
            aborted.append(reason)

    install(host, "/test/wait", Waiting)
    transport, protocol = host.connect()
    transport.feed(get("/test/wait"))
    protocol.hangup_received()
    assert transport.aborted and len(aborted) == 1


def test_shutdown_keeps_busy_connections_and_expires_idle_ones(host: Host) -> None:
    Slow.waiting.clear()
    install(host, "/test/slow", Slow)
    idle, idle_protocol = host.connect()
    busy, busy_protocol = host.connect()
    busy.feed(get("/test/slow"))
    host.stopping = True
    assert idle_protocol.is_idle() and not busy_protocol.is_idle()
    idle_protocol.shutdown()
    busy_protocol.shutdown()
    idle.fire_timeout()
    assert idle.closing and not busy.closing
    Slow.waiting[0].send(Response(200, [], b"done"))
    data = busy.take()
    assert b"Connection: close\r\n" in data and data.endswith(b"done")
    assert busy.closing
