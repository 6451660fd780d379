"""Protocols other than HTTP on a listen address: ``protocol echo`` and ``protocol MODULE:CLASS``.

A server block may say which protocol its listen addresses speak::

    server { host 127.0.0.1; port 7007; protocol echo }         # RFC 862
    server { port 7008; protocol upper:Upper }                   # upper.py next to the config

Without ``protocol`` (or with ``protocol http``) a block speaks HTTP/1.1.
The worker's acceptor asks ``protocol_factory(server)`` for each accepted
connection: None means HTTP; otherwise it calls the factory (no
arguments), makes a ``SocketTransport`` with the protocol it returns, and
installs ``wrap_idle_timeout(transport, protocol, server.timeouts.keepalive)``.

The interface a user's class implements is asyncio's ``Protocol``: the
transport calls ``connection_made(transport)``, ``data_received(data)``,
``eof_received()``, ``pause_writing()``/``resume_writing()`` and finally
``connection_lost(exc)``; the class uses ``transport.write``, ``close``,
``abort``, ``write_eof``, ``pause_reading``/``resume_reading`` and
``get_extra_info("peername" | "sockname" | "socket")``. So any
``asyncio.Protocol`` subclass works unchanged, and ``localhost.Protocol``
(``localhost.io.protocol``) gives every method a default plus the worker's
extras (``is_idle``, ``shutdown``, ``hangup_received``). One object is made
per connection, with no arguments. An exception raised by any callback (or
by the constructor) is logged with its traceback and closes that
connection only. ``transport.set_timeout`` belongs to the idle limit below.

The idle limit of a non-HTTP connection is its block's ``keepalive_timeout``
(75 s by default): the connection is closed once no byte has gone in either
direction for that long (received bytes are counted as they are handed to
the protocol; sent ones by the kernel's ``TCP_INFO``). If the peer left
bytes unread in that time, what is queued is dropped (``abort``) rather than
waiting for a reader that is not there.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from localhost.io.protocol import Protocol
from localhost.limits import LIMITS

if TYPE_CHECKING:
    import asyncio

    from localhost.config.model import ServerBlock
    from localhost.io.transport import Transport

    AnyProtocol: TypeAlias = Protocol | asyncio.Protocol

__all__ = ["EchoProtocol", "IdleTimeout", "protocol_factory", "wrap_idle_timeout"]

log = logging.getLogger("localhost")

# struct tcp_info (linux/tcp.h): eight one-byte fields, nine __u32, then
# tcpi_last_data_sent, in milliseconds. A stable ABI since Linux 2.6.
_LAST_DATA_SENT = struct.Struct("=44xI")
# A timer may fire a little before its time by the monotonic clock (the loop
# schedules from the time it last woke up): within this, it is due.
_SLACK = LIMITS.timer_slack_seconds


def protocol_factory(server: ServerBlock) -> Callable[[], AnyProtocol] | None:
    """The zero-argument factory of ``server``'s connections, or None for HTTP.

    ``protocol echo`` gives ``EchoProtocol``; ``protocol MODULE:CLASS`` the
    class that the config loader imported (``ServerBlock.protocol_class``),
    guarded so that a constructor that raises is logged and gives a
    protocol that closes its connection at once. Raises ``ValueError`` for a
    ``ServerBlock`` that names a class the loader did not import (made by
    hand, not by ``localhost.config.load``).
    """
    name = server.protocol
    if name is None:
        return None
    if name == "echo":
        return EchoProtocol
    cls = server.protocol_class
    if cls is None:
        raise ValueError(f"protocol {name!r}: no class (the configuration loader imports it)")
    return _guarded(cls, name)


def _guarded(cls: Callable[[], Any], name: str) -> Callable[[], AnyProtocol]:
    def make() -> AnyProtocol:
        try:
            protocol: AnyProtocol = cls()
        except Exception:
            log.exception("protocol %s: the constructor failed; closing the connection", name)
            return _Refused()
        return protocol

    return make


class _Refused(Protocol):
    """Stands in for a protocol whose constructor failed: closes at once."""

    __slots__ = ()

    def connection_made(self, transport: Transport) -> None:
        transport.abort()


class EchoProtocol(Protocol):
    """RFC 862 Echo: every byte received is sent back, in order, until the peer closes.

    Back-pressure: when the transport's write buffer passes its high-water
    mark (256 KiB), reading stops until it drains to the low-water mark, so
    a peer that sends without reading holds at most about the high-water
    mark plus one read (64 KiB) of the worker's memory, and then TCP's own
    flow control stops it. When the peer half-closes, what is queued is
    sent and the connection closed.
    """

    __slots__ = ("_write",)

    # The transport hands over a view of its receive buffer: write() copies
    # only what the socket does not take at once.
    accepts_memoryview = True

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self._write = transport.write

    def data_received(self, data: bytes) -> None:
        self._write(data)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def is_idle(self) -> bool:
        """Idle when every byte received has been sent back."""
        transport = self.transport
        return transport is None or not transport.get_write_buffer_size()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._write = _dropped


def _dropped(data: object) -> None:
    pass


def wrap_idle_timeout(transport: Transport, protocol: AnyProtocol, seconds: float) -> Protocol:
    """Close ``transport`` once no byte has gone in either direction for ``seconds``.

    Call it right after the transport is made with ``protocol`` (whose
    ``connection_made`` has run): it puts an ``IdleTimeout`` between the
    two (``transport.set_protocol``), arms the deadline, and returns it.
    ``protocol`` keeps the transport it was given; every callback reaches it
    unchanged. ``seconds`` must be positive.
    """
    wrapper = IdleTimeout(transport, protocol, seconds)
    transport.set_protocol(wrapper)
    transport.set_timeout(seconds, wrapper.expire)
    return wrapper


class IdleTimeout(Protocol):
    """A protocol that passes every callback to ``inner`` and watches for idleness.

    Received bytes restart the clock as they arrive (``time.monotonic``, no
    timer reset per read); bytes sent are read from the socket's
    ``TCP_INFO`` when the deadline comes, so writing costs nothing extra.
    A transport without a TCP socket counts received bytes only.
    """

    __slots__ = (
        "inner",
        "seconds",
        "last",
        "accepts_memoryview",
        "_data",
        "_socket",
    )

    def __init__(self, transport: Transport, inner: AnyProtocol, seconds: float) -> None:
        super().__init__()
        self.transport = transport
        self.inner = inner
        self.seconds = seconds
        self.last = time.monotonic()
        self.accepts_memoryview = bool(getattr(inner, "accepts_memoryview", False))
        self._data: Callable[[Any], None] = inner.data_received
        sock = transport.get_extra_info("socket")
        self._socket: socket.socket | None = (
            sock
            if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6)
            else None
        )

    def data_received(self, data: bytes) -> None:
        self.last = time.monotonic()
        self._data(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._socket = None
        self.inner.connection_lost(exc)

    def is_idle(self) -> bool:
        is_idle = getattr(self.inner, "is_idle", None)
        return True if is_idle is None else bool(is_idle())

    def shutdown(self) -> None:
        shutdown = getattr(self.inner, "shutdown", None)
        if shutdown is not None:
            shutdown()
        elif self.transport is not None:
            self.transport.close()

    def hangup_received(self) -> None:
        hangup = getattr(self.inner, "hangup_received", None)
        if hangup is not None:
            hangup()
        elif self.transport is not None:
            self.transport.abort()

    def idle_for(self) -> float:
        """Seconds since the last byte in either direction."""
        idle = time.monotonic() - self.last
        sent = _since_sent(self._socket) if self._socket is not None else None
        return idle if sent is None else min(idle, sent)

    def expire(self) -> None:
        """The deadline: close if idle for ``seconds``, else wait for the rest."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        idle = self.idle_for()
        if idle + _SLACK < self.seconds:
            transport.set_timeout(self.seconds - idle, self.expire)
            return
        if transport.get_write_buffer_size():
            transport.abort()  # the peer has read nothing for `seconds`
        else:
            transport.close()


def _since_sent(sock: socket.socket) -> float | None:
    """Seconds since ``sock`` last sent data (``TCP_INFO``), or None if unknown."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _LAST_DATA_SENT.size)
    except OSError:
        return None
    if len(info) < _LAST_DATA_SENT.size:
        return None
    return float(_LAST_DATA_SENT.unpack_from(info)[0]) / 1000.0


#: NGINX's page for a plain-HTTP request on a TLS address (its wording, our name).
_PLAIN_HTTP_PAGE = b"".join(
    [
        b"<html>\r\n",
        b"<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n",
        b"<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n",
        b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n",
        b"<hr><center>localhost</center>\r\n</body>\r\n</html>\r\n",
    ]
)


def plain_http_reply() -> bytes:
    """The whole answer to a client that speaks plain HTTP to a TLS address:
    400 with NGINX's text "The plain HTTP request was sent to HTTPS port",
    then the connection closes (``Connection: close``)."""
    from localhost.http.message import Response
    from localhost.http.writer import response_head

    response = Response(400, [("Content-Type", "text/html")], _PLAIN_HTTP_PAGE)
    return response_head(response, keep_alive=False, http10=False) + _PLAIN_HTTP_PAGE
