"""Transports: a file descriptor in the event loop, driving one protocol.

A transport owns its descriptor and everything queued on it. It reads when
the descriptor is readable and hands the bytes to ``protocol.data_received``;
``write`` tries the descriptor at once and queues only what it would not take,
so EPOLLOUT is watched only while something is queued (``epoll.modify`` runs
only when the watched mask changes, and a response that leaves at once costs
none). Each event reads once, and sends at most ``SENDFILE_CHUNK`` bytes of a
file, so that one busy peer cannot hog the loop.

Queued bytes (``FileBody`` regions included) count against the write-buffer
watermarks: above the high mark the protocol's ``pause_writing`` is called,
and ``resume_writing`` once a flush brings the queue down to the low mark.
A ``FileBody`` goes out with ``os.sendfile``; a transport that cannot use it
(``can_sendfile`` False: TLS without kernel TLS) reads the file itself, 64 KiB at a time,
and only once the chunk before has been sent, so at most one chunk per
connection is in memory.

Closing is graceful: ``close`` sends what is queued, then (on a socket)
half-closes and reads and drops what the peer still sends for up to
``LINGER_TIMEOUT`` seconds, so that the peer reads the whole answer rather
than a reset caused by unread bytes (NGINX's lingering close). ``abort``
drops everything now. However a transport ends (close, abort, error), the
protocol's ``connection_lost`` is called exactly once, from the loop
(``call_soon``) and never from inside another protocol callback, and every
queued ``FileBody`` is closed.

An exception raised by a protocol callback is logged with its traceback and
closes that connection only (``connection_lost`` gets the exception).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias

from localhost.io.body import FileBody

if TYPE_CHECKING:
    import asyncio

    from localhost.io.loop import EventLoop, Timer
    from localhost.io.protocol import Protocol

    AnyProtocol: TypeAlias = Protocol | asyncio.Protocol
    Writable: TypeAlias = bytes | bytearray | memoryview | FileBody

log = logging.getLogger("localhost")

RECV_SIZE = 64 * 1024  # bytes read per event
SENDFILE_CHUNK = 8 * 1024 * 1024  # bytes of a file per event, so one peer cannot hog the loop
FILE_CHUNK = 64 * 1024  # bytes per pread when the transport cannot sendfile
LINGER_TIMEOUT = 5.0  # seconds to drain a half-closed socket (NGINX lingering_timeout)
HIGH_WATER = 256 * 1024  # default high-water mark of the write buffer, bytes
LOW_WATER = 64 * 1024  # default low-water mark, bytes

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLRDHUP = select.EPOLLRDHUP
_HUPERR = select.EPOLLHUP | select.EPOLLERR
_READABLE = EPOLLIN | _HUPERR

# One receive buffer for every transport of the process that is not given
# its own: a protocol copies what it keeps, so no 64 KiB object is allocated
# per read.
_BUFFER = bytearray(RECV_SIZE)
_VIEW = memoryview(_BUFFER)

# States of a transport.
_OPEN = 0
_CLOSING = 1  # close() called: sending what is queued
_LINGER = 2  # half-closed, dropping what the peer still sends
_CLOSED = 3

# States of the write side.
_W_OPEN = 0
_W_CONNECTING = 1  # connect() in progress: writes are queued
_W_EOF = 2  # write_eof() called: shut down once the queue is sent
_W_SHUT = 3  # shut down (or a read-only pipe)
_W_CLOSED = 4  # close() or abort(): later writes are dropped

_PARKED = -1  # ``_mask`` of a descriptor taken out of epoll (see ``_park``)


def _nothing(*_args: Any) -> None:
    pass


def _always_idle() -> bool:
    return True


class FileShrankError(OSError):
    """A queued ``FileBody`` reached the end of its file before ``count`` bytes."""


class Transport:
    """A bidirectional byte channel driven by the event loop (asyncio.Transport's interface).

    This class states the interface; ``SocketTransport`` and ``PipeTransport``
    implement it (and ``localhost.io.tls.TLSTransport``). ``scheme`` is the
    URL scheme of what it carries: ``"https"`` over TLS.
    """

    __slots__ = ()

    scheme = "http"

    def write(self, data: Writable) -> None:
        """Send ``data`` (bytes-like, or a ``FileBody`` whose descriptor the transport
        then owns), after whatever is queued. Never blocks.

        Ignored once the transport is closing; raises ``RuntimeError`` after
        ``write_eof``.
        """
        raise NotImplementedError

    def writelines(self, items: Iterable[Writable]) -> None:
        """``write`` each item in order (adjacent bytes are sent in one call)."""
        raise NotImplementedError

    def write_eof(self) -> None:
        """Shut down the write side once the queue is sent (TCP FIN; a pipe is closed)."""
        raise NotImplementedError

    def can_write_eof(self) -> bool:
        """Whether ``write_eof`` is supported."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop reading, send what is queued, then close (a socket lingers first).

        Idempotent. ``connection_lost(None)`` follows.
        """
        raise NotImplementedError

    def abort(self) -> None:
        """Close now, dropping whatever is queued. ``connection_lost(None)`` follows."""
        raise NotImplementedError

    def is_closing(self) -> bool:
        """Whether ``close`` or ``abort`` was called or the connection was lost."""
        raise NotImplementedError

    def pause_reading(self) -> None:
        """Stop calling ``data_received`` until ``resume_reading``."""
        raise NotImplementedError

    def resume_reading(self) -> None:
        """Call ``data_received`` again."""
        raise NotImplementedError

    def is_reading(self) -> bool:
        """Whether ``data_received`` can be called."""
        raise NotImplementedError

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the watermarks (bytes) for ``pause_writing``/``resume_writing``.

        As in asyncio: ``high`` defaults to 4 × ``low``, ``low`` to ``high`` / 4,
        both unset to 256 KiB and 64 KiB. ``high=0`` pauses on anything queued
        and resumes when the queue is empty. Raises ``ValueError`` unless
        ``high >= low >= 0``.
        """
        raise NotImplementedError

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)`` in bytes."""
        raise NotImplementedError

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet handed to the kernel, ``FileBody`` regions included."""
        raise NotImplementedError

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname``, ``socket``, ``pipe``; over TLS also ``ssl_object``
        (None without TLS), ``sslcontext``, ``peercert``, ``cipher``, ``ssl_version``,
        ``alpn_protocol``, ``server_hostname``."""
        raise NotImplementedError

    def set_protocol(self, protocol: AnyProtocol) -> None:
        """Hand the connection to ``protocol`` (its ``connection_made`` is not called)."""
        raise NotImplementedError

    def get_protocol(self) -> AnyProtocol | None:
        """The current protocol (None once the connection is lost)."""
        raise NotImplementedError

    # -- extras: not in asyncio -------------------------------------------

    def watch_hangup(self, on: bool) -> None:
        """While ``on`` and not reading, notice a peer that goes away and call the
        protocol's ``hangup_received`` (default: ``abort``).

        For a protocol that has stopped reading while it works (a CGI script
        runs). A half-close with bytes still unread (a pipelined request) is
        not a hang-up: those bytes are delivered when reading resumes.
        """
        raise NotImplementedError

    def set_timeout(
        self, seconds: float | None, callback: Callable[[], None] | None = None
    ) -> None:
        """Call ``callback`` once, ``seconds`` after the loop's latest wake-up; None cancels.

        One deadline per transport (setting it again replaces it, cheaply).
        Ignored once the transport is closing: it then keeps its own deadlines.
        """
        raise NotImplementedError

    def is_idle(self) -> bool:
        """The protocol's ``is_idle()`` (True for protocols without one)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """The protocol's ``shutdown()`` (``close`` for protocols without one)."""
        raise NotImplementedError


class _FdTransport(Transport):
    """What socket and pipe transports share: the protocol, the write queue, the
    epoll interest, the deadline and the end of the connection."""

    __slots__ = (
        "_loop",
        "_fd",
        "_protocol",
        "_state",
        "_wstate",
        "_out",
        "_size",
        "_high",
        "_low",
        "_wpaused",
        "_mask",
        "_paused",
        "_reading",
        "_eof",
        "_hangup",
        "_hangup_seen",
        "_dirty",
        "_sendfile",
        "_send",
        "_recv",
        "_recv_into",
        "_buffer",
        "_view",
        "_timer",
        "_timeout_callback",
        "_exc",
        "_on_lost",
        "_mv",
        "_data_received",
        "_eof_received",
        "_connection_lost",
        "_pause_writing",
        "_resume_writing",
        "_hangup_received",
        "_is_idle",
        "_shutdown",
    )

    _loop: EventLoop
    _fd: int
    _sendfile: bool
    _send: Callable[[bytes | bytearray | memoryview], int]
    _recv: Callable[[int], bytes]
    _recv_into: Callable[[bytearray], int]

    def _setup(
        self,
        loop: EventLoop,
        fd: int,
        protocol: AnyProtocol,
        recv_buffer: bytearray | None,
        on_lost: Callable[[Transport], None] | None,
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._state = _OPEN
        self._wstate = _W_OPEN
        self._out: deque[bytes | memoryview | FileBody] = deque()
        self._size = 0
        self._high = HIGH_WATER
        self._low = LOW_WATER
        self._wpaused = False
        self._mask = 0
        self._paused = False
        self._reading = True
        self._eof = False
        self._hangup = False
        self._hangup_seen = False
        self._dirty = False
        if recv_buffer is None:
            self._buffer = _BUFFER
            self._view = _VIEW
        else:
            self._buffer = recv_buffer
            self._view = memoryview(recv_buffer)
        self._timer: Timer | None = None
        self._timeout_callback: Callable[[], None] = _nothing
        self._exc: Exception | None = None
        self._on_lost = on_lost
        self._attach(protocol)

    def _attach(self, protocol: AnyProtocol) -> None:
        # Every callback is looked up once here, so that an event costs no getattr,
        # and a protocol without the worker extras gets their defaults.
        self._protocol: AnyProtocol | None = protocol
        self._mv = bool(getattr(protocol, "accepts_memoryview", False))
        self._data_received: Callable[[Any], None] = protocol.data_received
        self._eof_received: Callable[[], bool | None] = protocol.eof_received
        self._connection_lost: Callable[[Exception | None], None] = protocol.connection_lost
        self._pause_writing: Callable[[], None] = protocol.pause_writing
        self._resume_writing: Callable[[], None] = protocol.resume_writing
        self._hangup_received: Callable[[], None] = (
            getattr(protocol, "hangup_received", None) or self.abort
        )
        self._is_idle: Callable[[], bool] = getattr(protocol, "is_idle", None) or _always_idle
        self._shutdown: Callable[[], None] = getattr(protocol, "shutdown", None) or self.close

    def _detach(self) -> None:
        # Break the transport → protocol references, so that both are freed by
        # reference counting once the connection is over.
        self._protocol = None
        self._data_received = self._connection_lost = _nothing
        self._eof_received = self._pause_writing = self._resume_writing = _nothing
        self._hangup_received = self._shutdown = _nothing
        self._is_idle = _always_idle
        self._timeout_callback = _nothing
        self._on_lost = None

    # -- events -------------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        if mask & EPOLLOUT or (mask & _HUPERR and self._out):
            self._flush()
            if self._state == _CLOSED:
                return
        if self._reading and mask & _READABLE:
            # The hot path: one read, handed over as it is.
            try:
                if self._mv:
                    received = self._recv_into(self._buffer)
                    data: bytes | memoryview = self._view[:received]
                else:
                    data = self._recv(RECV_SIZE)
                    received = len(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail(exc)
                return
            if received:
                try:
                    self._data_received(data)
                except Exception as exc:
                    self._protocol_failed(exc, "data_received")
                return
            self._on_eof()
        elif self._state == _LINGER:
            if mask & _READABLE:
                self._drain()
        elif mask & _HUPERR:
            self._on_hup(mask)
        elif mask & EPOLLRDHUP:
            self._check_hangup()

    def _on_eof(self) -> None:
        self._eof = True
        self._reading = False
        try:
            keep_open = self._eof_received()
        except Exception as exc:
            self._protocol_failed(exc, "eof_received")
            return
        if keep_open and self._state == _OPEN:
            self._update_interest()  # a level-triggered EOF would fire forever
        else:
            self.close()

    def _on_hup(self, mask: int) -> None:
        """Hang-up or error while not reading: subclasses decide."""
        raise NotImplementedError

    def _check_hangup(self) -> None:
        self._hangup_seen = True
        self._update_interest()

    def _drain(self) -> None:
        """Lingering: drop what the peer sends; end on its close."""
        raise NotImplementedError

    def _park(self) -> None:
        """Take the descriptor out of epoll until reading resumes.

        A hang-up cannot be masked: while the protocol is not reading, a
        descriptor whose peer is gone (a CGI script's stdout after it exits)
        would wake the loop again and again, with its last bytes unread.
        """
        self._loop.unregister(self._fd)
        self._mask = _PARKED

    def _update_interest(self) -> None:
        if self._state == _CLOSED:
            return
        self._dirty = False
        mask = EPOLLOUT if self._out or self._wstate == _W_CONNECTING else 0
        if self._reading or self._state == _LINGER:
            mask |= EPOLLIN
        elif self._hangup and not self._hangup_seen:
            mask |= EPOLLRDHUP
        if mask != self._mask:
            if self._mask == _PARKED:
                if not mask & (EPOLLIN | EPOLLOUT):
                    return
                self._loop.register(self._fd, mask, self._on_event)
            else:
                self._loop.modify(self._fd, mask)
            self._mask = mask

    def _update_soon(self) -> None:
        # Reading and hang-up interest change together when a protocol starts
        # or ends a piece of work: one epoll.modify at the end of the iteration.
        if not self._dirty:
            self._dirty = True
            self._loop.call_soon(self._update_interest)

    # -- writing ------------------------------------------------------------

    def write(self, data: Writable) -> None:
        if self._wstate or type(data) is FileBody:
            self._write_queued(data)
            return
        out = self._out
        if not out:
            # Try at once: most answers leave here, and cost no epoll.modify.
            try:
                sent = self._send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return
            if sent == len(data):
                return
            if type(data) is bytes:
                item: bytes | memoryview = memoryview(data)[sent:]
            else:
                item = bytes(data[sent:])  # the caller may reuse its buffer
        elif type(data) is bytes:
            if not data:
                return
            item = data
        else:
            item = bytes(data)
            if not item:
                return
        out.append(item)
        self._queued(len(item))

    def _write_queued(self, data: Writable) -> None:
        """``write`` when the queue or the state is not the simple case."""
        wstate = self._wstate
        if wstate == _W_CLOSED or self._state != _OPEN:
            if type(data) is FileBody:
                data.close()
            return
        if wstate in (_W_EOF, _W_SHUT):
            if type(data) is FileBody:
                data.close()
            raise RuntimeError("write() after write_eof(), or on a read-only transport")
        if type(data) is FileBody:
            if data.count <= 0:
                data.close()
                return
            item: bytes | memoryview | FileBody = data
            size = data.count
        else:
            item = data if type(data) is bytes else bytes(data)
            size = len(item)
            if not size:
                return
        out = self._out
        out.append(item)
        if wstate == _W_OPEN and len(out) == 1:
            self._size += size
            self._flush()
            if self._state != _CLOSED and self._size > self._high:
                self._pause_protocol()
            return
        self._queued(size)

    def _queued(self, size: int) -> None:
        self._size += size
        if len(self._out) == 1:
            self._update_interest()
        if self._size > self._high and not self._wpaused:
            self._pause_protocol()

    def _pause_protocol(self) -> None:
        if self._wpaused:
            return
        self._wpaused = True
        try:
            self._pause_writing()
        except Exception as exc:
            self._protocol_failed(exc, "pause_writing")

    def writelines(self, items: Iterable[Writable]) -> None:
        run: list[bytes | bytearray | memoryview] = []
        for item in items:
            if type(item) is FileBody:
                if run:
                    self.write(b"".join(run))
                    run.clear()
                self.write(item)
            else:
                run.append(item)
        if len(run) == 1:
            self.write(run[0])
        elif run:
            self.write(b"".join(run))

    def _flush(self) -> None:
        out = self._out
        send = self._send
        budget = SENDFILE_CHUNK
        try:
            while out:
                item = out[0]
                if type(item) is FileBody:
                    count = item.count
                    if not count:
                        item.close()
                        out.popleft()
                        continue
                    if budget <= 0:
                        break  # the next EPOLLOUT goes on; other peers first
                    if self._sendfile:
                        sent = os.sendfile(self._fd, item.fd, item.offset, min(count, budget))
                        if not sent:
                            raise FileShrankError(errno.EIO, "file shrank while being sent")
                        item.offset += sent
                        item.count = count - sent
                        self._size -= sent
                        budget -= sent
                        # A partial send: try again at once; EAGAIN ends the
                        # loop (the socket buffer often drains meanwhile, and
                        # waiting for EPOLLOUT costs a poll round trip).
                    else:
                        # Only when the chunk before it has gone: one chunk in memory.
                        chunk = os.pread(item.fd, min(count, FILE_CHUNK), item.offset)
                        if not chunk:
                            raise FileShrankError(errno.EIO, "file shrank while being sent")
                        item.offset += len(chunk)
                        item.count = count - len(chunk)
                        budget -= len(chunk)
                        out.appendleft(chunk)
                else:
                    sent = send(item)
                    self._size -= sent
                    if sent == len(item):
                        out.popleft()
                    else:
                        out[0] = memoryview(item)[sent:]
                        break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._fail(exc)
            return
        if self._wpaused and self._size <= self._low:
            self._wpaused = False
            try:
                self._resume_writing()
            except Exception as exc:
                self._protocol_failed(exc, "resume_writing")
                return
        if not out:
            state = self._state
            if state == _CLOSING:
                self._closed_queue()
                return
            if state == _CLOSED:
                return
            if self._wstate == _W_EOF:
                self._shut_write()
        self._update_interest()

    def write_eof(self) -> None:
        if self._wstate == _W_OPEN or self._wstate == _W_CONNECTING:
            connecting = self._wstate == _W_CONNECTING
            self._wstate = _W_EOF
            if not self._out and not connecting:
                self._shut_write()

    def _shut_write(self) -> None:
        """Shut the write side down; the queue is empty."""
        raise NotImplementedError

    def can_write_eof(self) -> bool:
        return True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        if self._size > high and self._state != _CLOSED:
            self._pause_protocol()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        return self._size

    # -- reading ------------------------------------------------------------

    def pause_reading(self) -> None:
        if self._paused or self._state != _OPEN:
            return
        self._paused = True
        if self._reading:
            self._reading = False
            self._update_soon()

    def resume_reading(self) -> None:
        if not self._paused or self._state != _OPEN:
            return
        self._paused = False
        if not self._eof and self._wstate != _W_CONNECTING:
            self._reading = True
            self._update_soon()

    def is_reading(self) -> bool:
        return self._reading

    def watch_hangup(self, on: bool) -> None:
        if on != self._hangup:
            self._hangup = on
            if self._state == _OPEN:
                self._update_soon()

    # -- the protocol -------------------------------------------------------

    def set_protocol(self, protocol: AnyProtocol) -> None:
        self._attach(protocol)

    def get_protocol(self) -> AnyProtocol | None:
        return self._protocol

    def is_idle(self) -> bool:
        return self._is_idle()

    def shutdown(self) -> None:
        if self._state == _OPEN:
            try:
                self._shutdown()
            except Exception as exc:
                self._protocol_failed(exc, "shutdown")

    # -- deadline -----------------------------------------------------------

    def set_timeout(
        self, seconds: float | None, callback: Callable[[], None] | None = None
    ) -> None:
        if self._state != _OPEN:
            return
        timer = self._timer
        if seconds is None or callback is None:
            if timer is not None:
                self._loop.cancel(timer)
            return
        # Per request on the keep-alive path: _arm inlined.
        self._timeout_callback = callback
        loop = self._loop
        if timer is None:
            self._timer = loop.call_at(loop.now + seconds, self._on_timer)
        else:
            loop.reschedule(timer, loop.now + seconds)

    def _arm(self, when: float, callback: Callable[[], None]) -> None:
        self._timeout_callback = callback
        timer = self._timer
        if timer is None:
            self._timer = self._loop.call_at(when, self._on_timer)
        else:
            self._loop.reschedule(timer, when)

    def _on_timer(self) -> None:
        try:
            self._timeout_callback()
        except Exception as exc:
            self._protocol_failed(exc, "timeout callback")

    # -- the end ------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._state != _OPEN

    def close(self) -> None:
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._reading = False
        if self._wstate == _W_CONNECTING:
            return  # what is queued goes once connected, then the socket closes
        if self._wstate == _W_OPEN:
            self._wstate = _W_EOF
        if self._out:
            self._update_interest()
        else:
            self._closed_queue()

    def abort(self) -> None:
        self._finish(None)

    def _closed_queue(self) -> None:
        """``close`` was called and the queue is sent: end the connection."""
        raise NotImplementedError

    def _fail(self, exc: Exception) -> None:
        """The descriptor failed (reset, broken pipe): end with ``exc``."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s", self._describe(), exc)
        self._finish(exc)

    def _protocol_failed(self, exc: Exception, where: str) -> None:
        log.error("%s: %s failed; closing the connection", self._describe(), where, exc_info=exc)
        self._finish(exc)

    def _describe(self) -> str:
        return f"fd {self._fd}"

    def _finish(self, exc: Exception | None) -> None:
        """Release everything now; ``connection_lost(exc)`` follows from the loop."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._wstate = _W_CLOSED
        self._reading = False
        loop = self._loop
        loop.unregister(self._fd)
        if self._timer is not None:
            loop.cancel(self._timer, forget=True)
            self._timer = None
        for item in self._out:
            if type(item) is FileBody:
                item.close()
        self._out.clear()
        self._size = 0
        self._close_fd()
        self._exc = exc
        loop.call_soon(self._call_connection_lost)

    def _close_fd(self) -> None:
        raise NotImplementedError

    def _call_connection_lost(self) -> None:
        exc, self._exc = self._exc, None
        on_lost = self._on_lost
        try:
            self._connection_lost(exc)
        except Exception:
            log.exception("%s: connection_lost failed", self._describe())
        finally:
            self._detach()
            if on_lost is not None:
                on_lost(self)


class SocketTransport(_FdTransport):
    """A connected, non-blocking stream socket (TCP or Unix).

    ``SocketTransport(loop, sock, protocol)`` registers ``sock`` with ``loop``
    and calls ``protocol.connection_made(self)`` before it returns. The
    transport owns the socket from then on.

    ``recv_buffer``: the buffer reads go into (a per-worker one; by default
    one shared by the process). ``peername``/``sockname``: the addresses
    when the caller knows them already (``accept`` returns the peer's), so
    that ``get_extra_info`` costs no system call. ``on_lost(transport)``
    runs after the protocol's ``connection_lost`` (a worker forgets the
    connection there). ``can_sendfile``: False makes this transport read
    ``FileBody`` regions itself (the class attribute is the default).
    """

    __slots__ = ("_sock", "_peername", "_sockname", "_addresses")

    can_sendfile = True

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        protocol: AnyProtocol,
        *,
        recv_buffer: bytearray | None = None,
        peername: Any = None,
        sockname: Any = None,
        on_lost: Callable[[Transport], None] | None = None,
        can_sendfile: bool | None = None,
    ) -> None:
        sock.setblocking(False)
        self._use_socket(sock, can_sendfile)
        self._setup(loop, sock.fileno(), protocol, recv_buffer, on_lost)
        self._peername = peername
        self._sockname = sockname
        self._addresses: list[tuple[int, Any]] = []
        self._mask = EPOLLIN
        loop.register(self._fd, EPOLLIN, self._on_event)
        self._made()

    def _use_socket(self, sock: socket.socket, can_sendfile: bool | None) -> None:
        self._sock = sock
        self._send = sock.send
        self._recv = sock.recv
        self._recv_into = sock.recv_into
        self._sendfile = type(self).can_sendfile if can_sendfile is None else can_sendfile

    def _made(self) -> None:
        try:
            self._protocol.connection_made(self)  # type: ignore[union-attr, arg-type]
        except Exception as exc:
            self._protocol_failed(exc, "connection_made")

    def _describe(self) -> str:
        peer = self.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return f"fd {self._fd}"

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            if self._peername is None and self._state != _CLOSED:
                try:
                    self._peername = self._sock.getpeername()
                except OSError:
                    return default
            return default if self._peername is None else self._peername
        if name == "sockname":
            if self._sockname is None and self._state != _CLOSED:
                try:
                    self._sockname = self._sock.getsockname()
                except OSError:
                    return default
            return default if self._sockname is None else self._sockname
        if name == "socket":
            return self._sock
        return default

    def _check_hangup(self) -> None:
        """RDHUP while the protocol works: gone, unless it sent more first."""
        try:
            peek = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            peek = b""
        # Either way, stop watching: RDHUP is level-triggered and would fire again.
        self._hangup_seen = True
        self._update_interest()
        if not peek:
            try:
                self._hangup_received()
            except Exception as exc:
                self._protocol_failed(exc, "hangup_received")

    def _on_hup(self, mask: int) -> None:
        if self._out:
            return  # the flush has failed, or will
        if mask & select.EPOLLERR:
            error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            code = error or errno.ECONNRESET
            self._fail(OSError(code, os.strerror(code)))
        else:
            self._park()

    def _shut_write(self) -> None:
        self._wstate = _W_SHUT
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._fail(exc)

    def _closed_queue(self) -> None:
        """Lingering close: half-close, then drop what the peer sends until it closes."""
        if self._eof:
            self._finish(None)  # the peer has closed its side: nothing can be unread
            return
        if self._wstate != _W_SHUT:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._finish(None)
                return
        self._wstate = _W_CLOSED
        self._state = _LINGER
        self._arm(self._loop.now + LINGER_TIMEOUT, self.abort)
        self._update_interest()

    def _drain(self) -> None:
        recv_into = self._recv_into
        buffer = self._buffer
        try:
            while recv_into(buffer):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish(None)

    def _close_fd(self) -> None:
        self._sock.close()

    # -- outbound connections -----------------------------------------------

    def _on_connect_event(self, mask: int) -> None:
        error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error == 0 and mask & select.EPOLLERR:
            error = errno.ECONNRESET
        if error:
            self._connect_failed(OSError(error, os.strerror(error)))
            return
        try:
            self._peername = self._sock.getpeername()
        except OSError as exc:
            self._connect_failed(exc)
            return
        loop = self._loop
        if self._timer is not None:
            loop.cancel(self._timer)
        if self._wstate == _W_CONNECTING:
            self._wstate = _W_OPEN
        self._reading = not self._paused and self._state == _OPEN
        # The event callback changes: register anew, with the mask it needs now.
        loop.unregister(self._fd)
        self._mask = (EPOLLIN if self._reading else 0) | (EPOLLOUT if self._out else 0)
        loop.register(self._fd, self._mask, self._on_event)
        self._made()
        if self._state == _CLOSED:
            return
        if self._out:
            self._flush()
        elif self._state == _CLOSING:
            self._closed_queue()
        elif self._wstate == _W_EOF:
            self._shut_write()

    def _connect_failed(self, exc: OSError) -> None:
        if self._state == _CLOSED:
            return
        if not self._addresses:
            self._finish(exc)
            return
        self._loop.unregister(self._fd)
        self._sock.close()
        self._fd = -1  # the number may be reused at once: never unregister it again
        try:
            self._connect_next()
        except OSError as error:
            self._finish(error)

    def _connect_timeout(self) -> None:
        self._finish(TimeoutError(errno.ETIMEDOUT, "connect timed out"))

    def _connect_next(self) -> None:
        """Start connecting to the next address.

        A failure known at once is reported from the loop, like a later one.
        Raises ``OSError`` when no socket can be made for any address left.
        """
        while True:
            family, address = self._addresses.pop(0)
            try:
                sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                break
            except OSError:  # that family is not available here (no IPv6)
                if not self._addresses:
                    raise
        if family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._use_socket(sock, self._sendfile)
        self._fd = sock.fileno()
        self._mask = EPOLLOUT
        self._loop.register(self._fd, EPOLLOUT, self._on_connect_event)
        error = sock.connect_ex(address)
        if error not in (0, errno.EINPROGRESS):
            failure = OSError(error, f"{os.strerror(error)} ({address!r})")
            self._loop.call_soon(lambda: self._connect_failed(failure))


def connect(
    loop: EventLoop,
    host: str,
    port: int,
    protocol_factory: Callable[[], AnyProtocol],
    *,
    timeout: float,
    recv_buffer: bytearray | None = None,
    on_lost: Callable[[Transport], None] | None = None,
) -> SocketTransport:
    """Open a TCP connection to ``host``:``port`` without blocking; returns its transport at once.

    ``protocol_factory()`` is called now. Once connected (EPOLLOUT, then
    ``SO_ERROR`` is 0), the protocol's ``connection_made`` is called and
    what was written in the meantime is sent (``close`` and ``write_eof``
    before then wait for it too). The addresses of ``host`` are tried in
    order, within ``timeout`` seconds in all. If none connects, the
    protocol's ``connection_lost`` is called with the last error
    (``ConnectionRefusedError``, ...), or with ``TimeoutError`` once
    ``timeout`` has run out, **without** ``connection_made`` before it; like
    every ``connection_lost``, from the loop, never from inside ``connect``.
    ``abort`` gives up at once (``connection_lost(None)``).

    ``host`` is resolved here with ``getaddrinfo``, which blocks for a name
    (an address literal costs nothing): resolve names once, at start-up.
    Raises ``socket.gaierror`` when it cannot be resolved, and ``OSError``
    when no socket can be made at all (out of descriptors).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    protocol = protocol_factory()
    transport = SocketTransport.__new__(SocketTransport)
    transport._addresses = [(info[0], info[4]) for info in infos]
    transport._peername = None
    transport._sockname = None
    transport._sendfile = SocketTransport.can_sendfile
    transport._setup(loop, -1, protocol, recv_buffer, on_lost)
    transport._wstate = _W_CONNECTING
    transport._reading = False
    transport._connect_next()
    transport._arm(time.monotonic() + timeout, transport._connect_timeout)
    return transport


class PipeTransport(_FdTransport):
    """One end of a pipe (a child process's stdin, stdout or stderr).

    ``mode="r"``: reads go to ``data_received``; the end of the pipe calls
    ``eof_received`` and closes the transport (its return value is ignored:
    a read-only pipe has nothing left to do). ``mode="w"``: ``write``,
    ``writelines``, watermarks; ``write_eof`` or ``close`` close the pipe
    once the queue is written (the reader sees its end).

    ``pipe`` is a descriptor or a file object (``Popen.stdout``); either way
    the transport owns it, makes it non-blocking and closes it. The
    protocol's ``connection_made`` is called before the constructor returns.
    """

    __slots__ = ("_pipe", "_readable")

    can_sendfile = True

    def __init__(
        self,
        loop: EventLoop,
        pipe: int | IO[bytes],
        protocol: AnyProtocol,
        *,
        mode: Literal["r", "w"],
        recv_buffer: bytearray | None = None,
        on_lost: Callable[[Transport], None] | None = None,
    ) -> None:
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")
        fd = pipe if isinstance(pipe, int) else pipe.fileno()
        os.set_blocking(fd, False)
        self._pipe = pipe
        self._readable = mode == "r"
        self._send = _pipe_writer(fd)
        self._recv = _pipe_reader(fd)
        self._recv_into = _pipe_reader_into(fd)
        self._sendfile = type(self).can_sendfile
        self._setup(loop, fd, protocol, recv_buffer, on_lost)
        if self._readable:
            self._wstate = _W_SHUT
            self._mask = EPOLLIN
        else:
            self._reading = False
            self._mask = 0
        loop.register(fd, self._mask, self._on_event)
        try:
            protocol.connection_made(self)  # type: ignore[arg-type]
        except Exception as exc:
            self._protocol_failed(exc, "connection_made")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "pipe":
            return self._pipe
        return default

    def can_write_eof(self) -> bool:
        return not self._readable

    def watch_hangup(self, on: bool) -> None:
        """A pipe's end is its EOF: nothing to watch."""

    def pause_reading(self) -> None:
        if self._readable:
            super().pause_reading()

    def resume_reading(self) -> None:
        if self._readable:
            super().resume_reading()

    def _on_eof(self) -> None:
        self._eof = True
        self._reading = False
        try:
            self._eof_received()
        except Exception as exc:
            self._protocol_failed(exc, "eof_received")
            return
        self._finish(None)

    def _on_hup(self, mask: int) -> None:
        if self._readable:
            self._park()  # not reading: its last bytes wait for resume_reading
        elif not self._out:
            self._finish(None)  # the reader is gone and nothing was lost
        # else: the flush before this failed (EPIPE) and ended the transport

    def _shut_write(self) -> None:
        self._wstate = _W_SHUT
        self._finish(None)

    def _closed_queue(self) -> None:
        self._finish(None)

    def _close_fd(self) -> None:
        pipe = self._pipe
        if isinstance(pipe, int):
            os.close(pipe)
        else:
            pipe.close()


def _pipe_writer(fd: int) -> Callable[[bytes | bytearray | memoryview], int]:
    def write(data: bytes | bytearray | memoryview) -> int:
        return os.write(fd, data)

    return write


def _pipe_reader(fd: int) -> Callable[[int], bytes]:
    def read(size: int) -> bytes:
        return os.read(fd, size)

    return read


def _pipe_reader_into(fd: int) -> Callable[[bytearray], int]:
    def read_into(buffer: bytearray) -> int:
        return os.readv(fd, (buffer,))

    return read_into
