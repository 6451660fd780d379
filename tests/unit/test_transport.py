"""Transports on real sockets and pipes in a real event loop (localhost.io)."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localhost.io import FileBody, PipeTransport, Protocol, SocketTransport, Transport, connect
from localhost.io.loop import EventLoop
from tests.fakes import FakeTransport

MiB = 1024 * 1024


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    loop = EventLoop()
    yield loop
    loop.close()


def run_until(loop: EventLoop, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run ``loop`` until ``done()`` holds (checked every few milliseconds)."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        if done() or time.monotonic() > deadline:
            loop.stop()
        else:
            loop.call_at(time.monotonic() + 0.002, check)

    loop.call_at(0.0, check)
    loop.run()
    assert done(), "condition not reached in time"


def run_iterations(loop: EventLoop, count: int) -> None:
    """Run ``count`` loop iterations (each polls without waiting)."""
    left = count

    def step() -> None:
        nonlocal left
        left -= 1
        if left <= 0:
            loop.stop()
        else:
            loop.call_soon(step)

    loop.call_soon(step)
    loop.run()


def tcp_pair(
    sndbuf: int | None = None, rcvbuf: int | None = None
) -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair: (the transport's side, the peer).

    ``sndbuf`` (ours) and ``rcvbuf`` (the peer's) are set before the handshake:
    shrinking a receive buffer afterwards stalls TCP in retransmissions.
    """
    with socket.socket() as listener:
        if sndbuf is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        peer = socket.socket()
        if rcvbuf is not None:
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        peer.connect(listener.getsockname())
        ours, _ = listener.accept()
    return ours, peer


class Peer:
    """The other end of a transport's socket, read by the same loop."""

    def __init__(self, loop: EventLoop, sock: socket.socket, *, reading: bool = True) -> None:
        self.loop = loop
        self.sock = sock
        sock.setblocking(False)
        self.data = bytearray()
        self.eof = False
        self.error: OSError | None = None
        self.registered = False
        if reading:
            self.start()

    def start(self) -> None:
        if not self.registered:
            self.registered = True
            self.loop.register(self.sock.fileno(), select.EPOLLIN, self._on_event)

    def stop(self) -> None:
        if self.registered:
            self.registered = False
            self.loop.unregister(self.sock.fileno())

    def _on_event(self, _mask: int) -> None:
        try:
            chunk = self.sock.recv(256 * 1024)
        except BlockingIOError:
            return
        except OSError as exc:
            self.error = exc
            self.stop()
            return
        if chunk:
            self.data += chunk
        else:
            self.eof = True
            self.stop()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data) if self.sock.gettimeout() else _send_all(self.sock, data)

    def close(self) -> None:
        self.stop()
        self.sock.close()


def _send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            select.select([], [sock], [], 5)


class Recorder(Protocol):
    """Records every callback."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.types: list[type] = []
        self.events: list[str] = []
        self.lost: list[Exception | None] = []
        self.keep_open_on_eof = False

    def connection_made(self, transport: Transport) -> None:
        super().connection_made(transport)
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.types.append(type(data))
        self.data += data

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return self.keep_open_on_eof

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost.append(exc)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")


class MemoryviewRecorder(Recorder):
    accepts_memoryview = True

    def data_received(self, data: bytes) -> None:
        self.types.append(type(data))
        self.data += data  # copied: the view is only valid during the call


def big_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    content = os.urandom(size)
    path = tmp_path / "body.bin"
    path.write_bytes(content)
    return path, content


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# -- reading -------------------------------------------------------------------


@pytest.mark.parametrize("protocol_class", [Recorder, MemoryviewRecorder])
def test_reads_reach_the_protocol_as_bytes_or_as_a_memoryview(
    loop: EventLoop, protocol_class: type[Recorder]
) -> None:
    ours, theirs = tcp_pair()
    protocol = protocol_class()
    transport = SocketTransport(loop, ours, protocol)
    assert protocol.transport is transport and protocol.events == ["made"]
    theirs.sendall(b"hello, ")
    run_until(loop, lambda: len(protocol.data) == 7)
    theirs.sendall(b"world")
    run_until(loop, lambda: len(protocol.data) == 12)
    assert bytes(protocol.data) == b"hello, world"
    expected = memoryview if protocol.accepts_memoryview else bytes
    assert set(protocol.types) == {expected}
    transport.abort()
    theirs.close()
    run_until(loop, lambda: protocol.events[-1:] == ["lost"])


def test_peer_eof_calls_eof_received_then_closes(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    protocol = Recorder()
    SocketTransport(loop, ours, protocol)
    theirs.sendall(b"last words")
    theirs.shutdown(socket.SHUT_WR)
    run_until(loop, lambda: "lost" in protocol.events)
    assert protocol.events == ["made", "eof", "lost"]
    assert protocol.lost == [None]
    assert bytes(protocol.data) == b"last words"
    theirs.settimeout(5)
    assert theirs.recv(10) == b""  # the transport closed its side too
    theirs.close()


def test_eof_received_true_keeps_the_write_side_open(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    protocol = Recorder()
    protocol.keep_open_on_eof = True
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs)
    theirs.shutdown(socket.SHUT_WR)
    run_until(loop, lambda: "eof" in protocol.events)
    assert not transport.is_closing()
    transport.write(b"an answer after the half-close")
    transport.close()
    run_until(loop, lambda: peer.eof and "lost" in protocol.events)
    assert bytes(peer.data) == b"an answer after the half-close"
    assert protocol.lost == [None]
    peer.close()


def test_pause_reading_stops_delivery_until_resume(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    control_ours, control_theirs = tcp_pair()
    control = Recorder()
    SocketTransport(loop, control_ours, control)

    transport.pause_reading()
    assert not transport.is_reading()
    theirs.sendall(b"held back")
    control_theirs.sendall(b"x")
    # The control connection's byte arrives, and the loop runs on: none of
    # the paused connection's bytes are delivered meanwhile.
    run_until(loop, lambda: control.data == b"x")
    run_iterations(loop, 20)
    assert protocol.data == b""
    transport.resume_reading()
    assert transport.is_reading()
    run_until(loop, lambda: protocol.data == b"held back")
    for sock in (theirs, control_theirs):
        sock.close()


def test_pausing_from_data_received_holds_the_rest(loop: EventLoop) -> None:
    class PauseAfterFirst(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            assert self.transport is not None
            self.transport.pause_reading()

    ours, theirs = tcp_pair()
    protocol = PauseAfterFirst()
    transport = SocketTransport(loop, ours, protocol)
    theirs.sendall(b"first")
    run_until(loop, lambda: protocol.data == b"first")
    theirs.sendall(b"second")
    run_iterations(loop, 20)
    assert protocol.data == b"first"
    transport.resume_reading()
    run_until(loop, lambda: protocol.data == b"firstsecond")
    theirs.close()


# -- writing -------------------------------------------------------------------


def test_a_write_that_leaves_at_once_costs_no_epoll_modify(loop: EventLoop) -> None:
    # The keep-alive path: read a request, write the answer, all in one event.
    class Echo(Protocol):
        def data_received(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(data)

    modifies: list[tuple[int, int]] = []
    real_modify = loop.modify

    def counting_modify(fd: int, mask: int) -> None:
        modifies.append((fd, mask))
        real_modify(fd, mask)

    loop.modify = counting_modify  # type: ignore[method-assign]
    ours, theirs = tcp_pair()
    SocketTransport(loop, ours, Echo())
    peer = Peer(loop, theirs)
    for i in range(200):
        message = b"request %d\n" % i
        theirs.send(message)
        size = len(message)
        run_until(loop, lambda: len(peer.data) >= size)  # noqa: B023 (run at once)
        assert bytes(peer.data) == message
        peer.data.clear()
    assert modifies == []
    peer.close()


def test_partial_writes_are_queued_and_all_bytes_arrive_in_order(loop: EventLoop) -> None:
    ours, theirs = tcp_pair(sndbuf=4096, rcvbuf=4096)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs, reading=False)
    payload = os.urandom(2 * MiB)
    pieces = [payload[i : i + 300_000] for i in range(0, len(payload), 300_000)]
    transport.write(pieces[0])
    # The kernel took only part of it: the rest waits in the transport.
    assert 0 < transport.get_write_buffer_size() < len(pieces[0])
    for piece in pieces[1:]:
        transport.write(bytearray(piece))  # copied when queued: reusing it is safe
    assert transport.get_write_buffer_size() > len(payload) - 300_000
    peer.start()
    run_until(loop, lambda: len(peer.data) == len(payload))
    assert bytes(peer.data) == payload
    assert transport.get_write_buffer_size() == 0
    peer.close()


def test_a_queued_bytearray_or_memoryview_is_copied(loop: EventLoop) -> None:
    ours, theirs = tcp_pair(sndbuf=4096)
    transport = SocketTransport(loop, ours, Recorder())
    peer = Peer(loop, theirs, reading=False)
    filler = b"f" * MiB
    transport.write(filler)  # the queue is not empty after this
    buffer = bytearray(b"original")
    transport.write(buffer)
    transport.write(memoryview(buffer))
    buffer[:] = b"OVERWRIT"
    peer.start()
    run_until(loop, lambda: len(peer.data) == len(filler) + 16)
    assert bytes(peer.data[len(filler) :]) == b"originaloriginal"
    peer.close()


def test_watermarks_pause_and_resume_the_protocol(loop: EventLoop) -> None:
    ours, theirs = tcp_pair(sndbuf=4096, rcvbuf=4096)
    sizes: list[int] = []

    class Sizes(Recorder):
        def resume_writing(self) -> None:
            super().resume_writing()
            assert self.transport is not None
            sizes.append(self.transport.get_write_buffer_size())

    protocol = Sizes()
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs, reading=False)
    transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
    assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
    for _ in range(40):
        transport.write(b"x" * 8192)
    assert protocol.events == ["made", "pause"]  # once, however many writes follow
    peer.start()
    run_until(loop, lambda: len(peer.data) == 40 * 8192)
    assert protocol.events == ["made", "pause", "resume"]
    assert len(sizes) == 1 and sizes[0] <= 16 * 1024
    peer.close()


def test_write_buffer_limits_follow_asyncio_defaults(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    transport = SocketTransport(loop, ours, Recorder())
    assert transport.get_write_buffer_limits() == (64 * 1024, 256 * 1024)
    transport.set_write_buffer_limits(low=1000)
    assert transport.get_write_buffer_limits() == (1000, 4000)
    transport.set_write_buffer_limits(high=0)
    assert transport.get_write_buffer_limits() == (0, 0)
    with pytest.raises(ValueError):
        transport.set_write_buffer_limits(high=10, low=20)
    transport.abort()
    theirs.close()


def test_high_water_zero_signals_every_drain(loop: EventLoop) -> None:
    # The asyncio idiom for "tell me when everything has gone": a 0 high mark.
    ours, theirs = tcp_pair(sndbuf=4096)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    transport.set_write_buffer_limits(high=0)
    peer = Peer(loop, theirs, reading=False)
    transport.write(b"y" * MiB)
    assert protocol.events[-1] == "pause"
    peer.start()
    run_until(loop, lambda: protocol.events[-1] == "resume")
    assert transport.get_write_buffer_size() == 0
    peer.close()


def test_writelines_sends_bytes_and_file_regions_in_order(loop: EventLoop, tmp_path: Path) -> None:
    path, content = big_file(tmp_path, 100_000)
    ours, theirs = tcp_pair()
    transport = SocketTransport(loop, ours, Recorder())
    peer = Peer(loop, theirs)
    fd = os.open(path, os.O_RDONLY)
    transport.writelines([b"head ", bytearray(b"more "), FileBody(fd, 10, 50_000), b" tail"])
    expected = b"head more " + content[10:50_010] + b" tail"
    run_until(loop, lambda: len(peer.data) == len(expected))
    assert bytes(peer.data) == expected
    assert not fd_is_open(fd)
    peer.close()


# -- files ---------------------------------------------------------------------


@pytest.mark.parametrize("can_sendfile", [True, False], ids=["sendfile", "pread"])
def test_file_bodies_arrive_whole_and_their_descriptors_are_closed(
    loop: EventLoop, tmp_path: Path, can_sendfile: bool
) -> None:
    path, content = big_file(tmp_path, 3 * MiB + 12345)
    # (A smaller send buffer makes Linux's sendfile crawl on loopback.)
    ours, theirs = tcp_pair(sndbuf=65536)
    transport = SocketTransport(loop, ours, Recorder(), can_sendfile=can_sendfile)
    peer = Peer(loop, theirs)
    first = os.open(path, os.O_RDONLY)
    second = os.open(path, os.O_RDONLY)
    transport.write(b"HEAD\r\n")
    transport.write(FileBody(first, 0, len(content)))
    transport.write(b"--")
    transport.write(FileBody(second, 1000, 70_000))
    transport.write(FileBody(os.open(path, os.O_RDONLY), 5, 0))  # empty: just closed
    transport.write(b"END")
    expected = b"HEAD\r\n" + content + b"--" + content[1000:71_000] + b"END"
    run_until(loop, lambda: len(peer.data) >= len(expected))
    assert bytes(peer.data) == expected
    assert not fd_is_open(first) and not fd_is_open(second)
    assert transport.get_write_buffer_size() == 0
    peer.close()


def test_file_body_counts_against_the_watermarks(loop: EventLoop, tmp_path: Path) -> None:
    path, content = big_file(tmp_path, 4 * MiB)
    ours, theirs = tcp_pair(sndbuf=65536)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs, reading=False)
    transport.write(FileBody(os.open(path, os.O_RDONLY), 0, len(content)))
    assert transport.get_write_buffer_size() > 256 * 1024
    assert protocol.events == ["made", "pause"]
    peer.start()
    run_until(loop, lambda: len(peer.data) == len(content))
    assert protocol.events == ["made", "pause", "resume"]
    peer.close()


def test_without_sendfile_a_file_is_read_one_chunk_at_a_time(
    loop: EventLoop, tmp_path: Path
) -> None:
    # A peer that does not read: the transport must not read the file ahead
    # of what the socket takes.
    path, content = big_file(tmp_path, 32 * MiB)
    ours, theirs = tcp_pair(sndbuf=16384, rcvbuf=16384)
    transport = SocketTransport(loop, ours, Recorder(), can_sendfile=False)
    tracemalloc.start()
    try:
        transport.write(FileBody(os.open(path, os.O_RDONLY), 0, len(content)))
        last = -1
        while transport.get_write_buffer_size() != last:  # until the socket stops taking
            last = transport.get_write_buffer_size()
            run_iterations(loop, 5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert transport.get_write_buffer_size() > 30 * MiB
    assert peak < MiB
    transport.abort()
    theirs.close()


def test_a_file_that_shrinks_while_sent_ends_the_connection(
    loop: EventLoop, tmp_path: Path
) -> None:
    path, content = big_file(tmp_path, 1000)
    ours, theirs = tcp_pair()
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    fd = os.open(path, os.O_RDONLY)
    transport.write(FileBody(fd, 0, 5000))  # more than the file holds
    run_until(loop, lambda: "lost" in protocol.events)
    assert isinstance(protocol.lost[0], OSError)
    assert not fd_is_open(fd)
    theirs.close()


# -- closing -------------------------------------------------------------------


def test_write_eof_half_closes_after_the_queue(loop: EventLoop) -> None:
    ours, theirs = tcp_pair(sndbuf=4096)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs, reading=False)
    assert transport.can_write_eof()
    payload = os.urandom(MiB)
    transport.write(payload)
    transport.write_eof()
    with pytest.raises(RuntimeError):
        transport.write(b"too late")
    peer.start()
    run_until(loop, lambda: peer.eof)
    assert bytes(peer.data) == payload
    # Only the write side is shut: the protocol still reads.
    theirs.setblocking(True)
    theirs.sendall(b"reply")
    run_until(loop, lambda: protocol.data == b"reply")
    assert not transport.is_closing()
    transport.close()
    peer.close()
    run_until(loop, lambda: "lost" in protocol.events)


def test_lingering_close_lets_the_peer_read_everything(loop: EventLoop) -> None:
    # The protocol answers and closes while the peer is still sending: a plain
    # close() of a socket with unread bytes sends a reset, and the peer loses
    # the end of the answer still in flight.
    answer = os.urandom(4 * MiB)

    class AnswerAndClose(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            assert self.transport is not None
            if len(self.data) >= 1000:
                self.transport.write(answer)
                self.transport.close()

    ours, theirs = tcp_pair(rcvbuf=16384)
    protocol = AnswerAndClose()
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs, reading=False)
    peer.send(b"r" * 1000)
    run_until(loop, lambda: transport.is_closing())
    peer.send(b"unread" * 10_000)  # never read by the protocol
    run_iterations(loop, 10)
    peer.start()
    run_until(loop, lambda: peer.eof or peer.error is not None)
    assert peer.error is None
    assert len(peer.data) == len(answer) and bytes(peer.data) == answer
    peer.close()
    run_until(loop, lambda: "lost" in protocol.events)
    assert protocol.lost == [None]
    assert protocol.data == b"r" * 1000


def test_lingering_ends_after_five_seconds(loop: EventLoop) -> None:
    # README: the server reads and discards what the client still sends for up to 5 seconds.
    ours, theirs = tcp_pair()
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    transport.close()
    started = time.monotonic()
    loop.now = started
    run_until(loop, lambda: "lost" in protocol.events, timeout=15)
    assert 4.5 <= time.monotonic() - started < 8
    theirs.close()


def test_abort_drops_the_queue_and_closes_file_bodies(loop: EventLoop, tmp_path: Path) -> None:
    path, _ = big_file(tmp_path, 1000)
    ours, theirs = tcp_pair(sndbuf=4096)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    transport.write(b"z" * MiB)
    fd = os.open(path, os.O_RDONLY)
    transport.write(FileBody(fd, 0, 1000))
    transport.abort()
    assert transport.is_closing()
    assert not fd_is_open(fd)
    assert transport.get_write_buffer_size() == 0
    late = os.open(path, os.O_RDONLY)
    transport.write(FileBody(late, 0, 1000))  # after the end: dropped, and closed
    transport.write(b"ignored")
    assert not fd_is_open(late)
    assert "lost" not in protocol.events  # connection_lost comes from the loop
    run_until(loop, lambda: "lost" in protocol.events)
    transport.abort()
    transport.close()
    run_iterations(loop, 5)
    assert protocol.events.count("lost") == 1 and protocol.lost == [None]
    assert protocol.transport is None
    theirs.close()


def test_a_reset_ends_the_connection_once_with_the_error(loop: EventLoop, tmp_path: Path) -> None:
    path, _ = big_file(tmp_path, 1000)
    ours, theirs = tcp_pair(sndbuf=4096, rcvbuf=4096)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    transport.write(b"q" * MiB)
    fd = os.open(path, os.O_RDONLY)
    transport.write(FileBody(fd, 0, 1000))
    # SO_LINGER 0: close sends a reset.
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    theirs.close()
    run_until(loop, lambda: "lost" in protocol.events)
    run_iterations(loop, 5)
    transport.close()
    transport.abort()
    run_iterations(loop, 5)
    assert protocol.events.count("lost") == 1
    assert isinstance(protocol.lost[0], (ConnectionResetError, BrokenPipeError))
    assert not fd_is_open(fd)


def test_close_while_queued_sends_everything_first(loop: EventLoop) -> None:
    ours, theirs = tcp_pair(sndbuf=4096)
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    peer = Peer(loop, theirs, reading=False)
    payload = os.urandom(MiB)
    transport.write(payload)
    transport.close()
    transport.write(b"after close: dropped")
    assert transport.is_closing()
    peer.start()
    run_until(loop, lambda: peer.eof)
    assert bytes(peer.data) == payload
    peer.close()
    run_until(loop, lambda: "lost" in protocol.events)


# -- protocol errors -----------------------------------------------------------


def test_an_exception_in_data_received_closes_only_that_connection(
    loop: EventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise ValueError("bug in the protocol")

    class Echo(Recorder):
        def data_received(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(data)

    broken_ours, broken_theirs = tcp_pair()
    good_ours, good_theirs = tcp_pair()
    broken = Broken()
    good = Echo()
    SocketTransport(loop, broken_ours, broken)
    SocketTransport(loop, good_ours, good)
    good_peer = Peer(loop, good_theirs)
    with caplog.at_level(logging.ERROR, logger="localhost"):
        broken_theirs.sendall(b"boom")
        run_until(loop, lambda: "lost" in broken.events)
    assert isinstance(broken.lost[0], ValueError)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info is not None
    assert "data_received" in errors[0].getMessage()
    good_theirs.sendall(b"still here")
    run_until(loop, lambda: good_peer.data == b"still here")
    assert good.events == ["made"]
    broken_theirs.settimeout(5)
    assert broken_theirs.recv(10) == b""
    for sock in (broken_theirs, good_theirs):
        sock.close()


def test_an_exception_in_connection_made_or_a_timeout_callback_is_contained(
    loop: EventLoop,
) -> None:
    class BrokenStart(Recorder):
        def connection_made(self, transport: Transport) -> None:
            raise RuntimeError("cannot start")

    ours, theirs = tcp_pair()
    protocol = BrokenStart()
    SocketTransport(loop, ours, protocol)
    run_until(loop, lambda: "lost" in protocol.events)
    assert isinstance(protocol.lost[0], RuntimeError)

    ours, theirs2 = tcp_pair()
    other = Recorder()
    transport = SocketTransport(loop, ours, other)

    def explode() -> None:
        raise KeyError("in a timeout")

    transport.set_timeout(0.0, explode)
    run_until(loop, lambda: "lost" in other.events)
    assert isinstance(other.lost[0], KeyError)
    theirs.close()
    theirs2.close()


# -- deadlines, hang-ups, protocol switch, extra info ------------------------------


def test_set_timeout_calls_back_once_and_can_move_or_cancel(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    transport = SocketTransport(loop, ours, Recorder())
    fired: list[str] = []
    loop.now = time.monotonic()
    transport.set_timeout(0.05, lambda: fired.append("a"))
    transport.set_timeout(0.01, lambda: fired.append("b"))  # replaces it, earlier
    run_until(loop, lambda: fired == ["b"])
    transport.set_timeout(0.01, lambda: fired.append("c"))
    transport.set_timeout(None)
    transport.set_timeout(0.03, lambda: fired.append("d"))
    run_until(loop, lambda: len(fired) == 2)
    run_iterations(loop, 5)
    assert fired == ["b", "d"]
    transport.abort()
    theirs.close()


def test_watch_hangup_notices_a_peer_that_goes_away(loop: EventLoop) -> None:
    class Working(Recorder):
        def hangup_received(self) -> None:
            self.events.append("hangup")
            super().hangup_received()

    ours, theirs = tcp_pair()
    protocol = Working()
    transport = SocketTransport(loop, ours, protocol)
    transport.pause_reading()
    transport.watch_hangup(True)
    run_iterations(loop, 3)
    theirs.close()
    run_until(loop, lambda: "lost" in protocol.events)
    assert protocol.events == ["made", "hangup", "lost"]


def test_a_half_close_with_pending_bytes_is_not_a_hangup(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    protocol = Recorder()
    transport = SocketTransport(loop, ours, protocol)
    transport.pause_reading()
    transport.watch_hangup(True)
    run_iterations(loop, 3)
    theirs.sendall(b"pipelined")
    theirs.shutdown(socket.SHUT_WR)
    calls = 0
    real = transport._on_event

    def counting(mask: int) -> None:
        nonlocal calls
        calls += 1
        real(mask)

    loop._callbacks[ours.fileno()] = counting
    run_iterations(loop, 50)
    assert calls <= 2  # the hang-up is looked at once, not on every iteration
    assert protocol.events == ["made"] and not transport.is_closing()
    transport.watch_hangup(False)
    transport.resume_reading()
    run_until(loop, lambda: "lost" in protocol.events)
    assert bytes(protocol.data) == b"pipelined"
    assert protocol.events == ["made", "eof", "lost"]
    theirs.close()


def test_an_asyncio_protocol_works_unchanged(loop: EventLoop) -> None:
    class AsyncioEcho(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: Any = None
            self.peer: Any = None
            self.lost: list[Exception | None] = []

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.peer = transport.get_extra_info("peername")

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.append(exc)

    ours, theirs = tcp_pair()
    protocol = AsyncioEcho()
    transport = SocketTransport(loop, ours, protocol)
    assert protocol.peer == theirs.getsockname()
    assert transport.is_idle()  # the worker's extras have defaults
    peer = Peer(loop, theirs)
    theirs.send(b"shout")
    run_until(loop, lambda: peer.data == b"SHOUT")
    transport.shutdown()  # default: close
    run_until(loop, lambda: peer.eof)
    peer.close()
    run_until(loop, lambda: protocol.lost == [None])


def test_shutdown_and_is_idle_reach_a_protocol_that_has_them(loop: EventLoop) -> None:
    class Busy(Recorder):
        def is_idle(self) -> bool:
            return False

        def shutdown(self) -> None:
            self.events.append("shutdown")

    ours, theirs = tcp_pair()
    protocol = Busy()
    transport = SocketTransport(loop, ours, protocol)
    assert not transport.is_idle()
    transport.shutdown()
    assert protocol.events == ["made", "shutdown"] and not transport.is_closing()
    transport.abort()
    theirs.close()


def test_set_protocol_hands_over_the_connection(loop: EventLoop) -> None:
    class Upgrade(Recorder):
        def __init__(self, successor: Recorder) -> None:
            super().__init__()
            self.successor = successor

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            assert self.transport is not None
            self.transport.set_protocol(self.successor)
            self.successor.connection_made(self.transport)

    ours, theirs = tcp_pair()
    successor = MemoryviewRecorder()
    first = Upgrade(successor)
    transport = SocketTransport(loop, ours, first)
    theirs.sendall(b"upgrade")
    run_until(loop, lambda: first.data == b"upgrade")
    assert transport.get_protocol() is successor
    theirs.sendall(b"frames")
    run_until(loop, lambda: successor.data == b"frames")
    assert successor.types == [memoryview]
    theirs.close()
    run_until(loop, lambda: "lost" in successor.events)
    assert "lost" not in first.events


def test_extra_info(loop: EventLoop) -> None:
    ours, theirs = tcp_pair()
    transport = SocketTransport(loop, ours, Recorder())
    assert transport.get_extra_info("peername") == theirs.getsockname()
    assert transport.get_extra_info("sockname") == theirs.getpeername()
    assert transport.get_extra_info("socket") is ours
    assert transport.get_extra_info("ssl_object") is None
    assert transport.get_extra_info("nothing", "default") == "default"
    given = SocketTransport(loop, tcp_pair()[0], Recorder(), peername=("192.0.2.1", 4242))
    assert given.get_extra_info("peername") == ("192.0.2.1", 4242)
    transport.abort()
    given.abort()
    theirs.close()


def test_on_lost_runs_after_connection_lost(loop: EventLoop) -> None:
    order: list[str] = []

    class Lost(Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            order.append("connection_lost")

    ours, theirs = tcp_pair()
    transport = SocketTransport(
        loop, ours, Lost(), on_lost=lambda t: order.append(f"on_lost {t is transport}")
    )
    transport.abort()
    run_until(loop, lambda: len(order) == 2)
    assert order == ["connection_lost", "on_lost True"]
    theirs.close()


# -- connect() ------------------------------------------------------------------


def test_connect_to_a_listening_socket(loop: EventLoop) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        protocol = Recorder()
        transport = connect(
            loop, "127.0.0.1", listener.getsockname()[1], lambda: protocol, timeout=5
        )
        transport.write(b"sent before the connection is up")
        assert protocol.events == []
        run_until(loop, lambda: "made" in protocol.events)
        assert transport.get_extra_info("peername") == listener.getsockname()
        accepted, _ = listener.accept()
        accepted.settimeout(5)
        received = b""
        while len(received) < 32:
            received += accepted.recv(100)
        assert received == b"sent before the connection is up"
        accepted.sendall(b"answer")
        run_until(loop, lambda: protocol.data == b"answer")
        transport.close()
        assert accepted.recv(100) == b""
        accepted.close()
        run_until(loop, lambda: "lost" in protocol.events)
        assert protocol.lost == [None]


def test_close_before_the_connection_is_up_sends_first(loop: EventLoop) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        protocol = Recorder()
        transport = connect(loop, *listener.getsockname(), lambda: protocol, timeout=5)
        transport.write(b"request")
        transport.close()
        assert transport.is_closing()
        accepted, _ = listener.accept()
        accepted.setblocking(False)
        peer = Peer(loop, accepted)
        run_until(loop, lambda: peer.eof)
        assert bytes(peer.data) == b"request"
        peer.close()
        run_until(loop, lambda: "lost" in protocol.events)
        assert protocol.events == ["made", "lost"] and protocol.lost == [None]


def test_abort_before_the_connection_is_up(loop: EventLoop) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        protocol = Recorder()
        transport = connect(loop, *listener.getsockname(), lambda: protocol, timeout=5)
        transport.abort()
        run_until(loop, lambda: "lost" in protocol.events)
        run_iterations(loop, 5)
        assert protocol.events == ["lost"] and protocol.lost == [None]


def test_connect_to_a_closed_port_is_refused(loop: EventLoop) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        protocol = Recorder()
        connect(loop, "127.0.0.1", port, lambda: protocol, timeout=5)
        run_until(loop, lambda: "lost" in protocol.events)
    assert protocol.events == ["lost"]  # never made
    assert isinstance(protocol.lost[0], ConnectionRefusedError)


def test_connect_times_out(loop: EventLoop) -> None:
    # A listener that never accepts, with a full queue: the handshake never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        protocol = Recorder()
        started = time.monotonic()
        transport = connect(loop, *address, lambda: protocol, timeout=0.3)
        run_until(loop, lambda: "lost" in protocol.events)
        elapsed = time.monotonic() - started
        for filler in fillers:
            filler.close()
    assert protocol.events == ["lost"]
    assert isinstance(protocol.lost[0], TimeoutError)
    assert 0.25 <= elapsed < 3
    assert transport.is_closing()


def test_connect_resolves_localhost_and_tries_each_address(loop: EventLoop) -> None:
    # "localhost" may resolve to ::1 first; the listener is on 127.0.0.1 only.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        protocol = Recorder()
        connect(loop, "localhost", listener.getsockname()[1], lambda: protocol, timeout=5)
        run_until(loop, lambda: bool(protocol.events))
        assert protocol.events == ["made"]
        accepted, _ = listener.accept()
        accepted.close()
        run_until(loop, lambda: "lost" in protocol.events)


# -- pipes ----------------------------------------------------------------------


def test_a_read_pipe_delivers_data_then_eof(loop: EventLoop) -> None:
    read_end, write_end = os.pipe()
    protocol = Recorder()
    transport = PipeTransport(loop, read_end, protocol, mode="r")
    assert not transport.can_write_eof()
    with pytest.raises(RuntimeError):
        transport.write(b"a read pipe")
    os.write(write_end, b"script output")
    run_until(loop, lambda: protocol.data == b"script output")
    os.close(write_end)
    run_until(loop, lambda: "lost" in protocol.events)
    assert protocol.events == ["made", "eof", "lost"] and protocol.lost == [None]
    assert not fd_is_open(read_end)


def test_a_paused_read_pipe_keeps_its_last_bytes_without_spinning(loop: EventLoop) -> None:
    read_end, write_end = os.pipe()
    protocol = Recorder()
    transport = PipeTransport(loop, read_end, protocol, mode="r")
    transport.pause_reading()
    run_iterations(loop, 2)
    os.write(write_end, b"the end of the output")
    os.close(write_end)  # the writer is gone: a hang-up that cannot be masked
    calls = 0
    real = transport._on_event

    def counting(mask: int) -> None:
        nonlocal calls
        calls += 1
        real(mask)

    loop._callbacks[read_end] = counting
    run_iterations(loop, 50)
    assert calls <= 1
    assert protocol.data == b"" and protocol.events == ["made"]
    transport.resume_reading()
    run_until(loop, lambda: "lost" in protocol.events)
    assert protocol.data == b"the end of the output"


def test_a_write_pipe_with_watermarks_and_write_eof(loop: EventLoop) -> None:
    read_end, write_end = os.pipe()
    protocol = Recorder()
    transport = PipeTransport(loop, write_end, protocol, mode="w")
    transport.set_write_buffer_limits(high=128 * 1024)
    payload = os.urandom(2 * MiB)  # far more than a pipe holds
    transport.write(payload)
    assert protocol.events == ["made", "pause"]
    transport.write_eof()
    assert transport.can_write_eof()
    reader = Recorder()
    PipeTransport(loop, read_end, reader, mode="r")
    run_until(loop, lambda: "lost" in reader.events)
    assert bytes(reader.data) == payload
    assert protocol.events == ["made", "pause", "resume", "lost"]
    assert not fd_is_open(write_end)


def test_a_file_body_through_a_pipe(loop: EventLoop, tmp_path: Path) -> None:
    path, content = big_file(tmp_path, 300_000)
    read_end, write_end = os.pipe()
    transport = PipeTransport(loop, write_end, Recorder(), mode="w")
    fd = os.open(path, os.O_RDONLY)
    transport.write(b"<")
    transport.write(FileBody(fd, 7, 200_000))
    transport.write(b">")
    transport.close()
    reader = Recorder()
    PipeTransport(loop, read_end, reader, mode="r")
    run_until(loop, lambda: "lost" in reader.events)
    assert bytes(reader.data) == b"<" + content[7:200_007] + b">"
    assert not fd_is_open(fd)


def test_a_write_pipe_whose_reader_is_gone(loop: EventLoop) -> None:
    read_end, write_end = os.pipe()
    protocol = Recorder()
    transport = PipeTransport(loop, write_end, protocol, mode="w")
    transport.write(b"x" * MiB)
    os.close(read_end)
    run_until(loop, lambda: "lost" in protocol.events)
    assert isinstance(protocol.lost[0], BrokenPipeError)


def test_a_pipe_file_object_is_closed_by_its_transport(loop: EventLoop) -> None:
    read_end, write_end = os.pipe()
    stream = os.fdopen(read_end, "rb")
    protocol = Recorder()
    transport = PipeTransport(loop, stream, protocol, mode="r")
    assert transport.get_extra_info("pipe") is stream
    os.close(write_end)
    run_until(loop, lambda: "lost" in protocol.events)
    assert stream.closed


# -- the fake transport -----------------------------------------------------------


def test_fake_transport_for_protocol_tests() -> None:
    class Echo(Protocol):
        def data_received(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(data)
            if data == b"bye":
                self.transport.close()

    protocol = Echo()
    fake = FakeTransport(protocol)
    fake.feed(b"hi")
    assert fake.take() == b"hi"
    fake.pause_reading()
    fake.feed(b"held")
    assert fake.take() == b""
    fake.resume_reading()
    assert fake.take() == b"held"
    fake.block()
    fake.set_write_buffer_limits(high=4)
    fake.feed(b"12345")
    assert fake.get_write_buffer_size() == 5
    fake.unblock()
    assert fake.take() == b"12345"
    fake.feed(b"bye")
    assert fake.take() == b"bye" and fake.is_closing() and fake.lost == [None]
    assert protocol.transport is None


def test_fake_transport_signals_watermarks() -> None:
    protocol = Recorder()
    fake = FakeTransport(protocol, high=10, low=2)
    fake.block()
    fake.write(b"x" * 11)
    assert protocol.events == ["made", "pause"]
    fake.unblock()
    assert protocol.events == ["made", "pause", "resume"]
    fake.feed_eof()
    assert protocol.events == ["made", "pause", "resume", "eof", "lost"]
