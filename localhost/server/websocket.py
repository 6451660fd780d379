"""WebSocket (RFC 6455) over a transport: the opening handshake and the connection.

The opening handshake is ours (``accept``): it checks the client's request
(RFC 6455 §4.2.1), the Origin against ``websocket_origins``, negotiates the
subprotocol and, with ``websocket_deflate on``, permessage-deflate (RFC 7692),
and builds the 101 response. ``Exchange.upgrade`` then hands the HTTP/1.1
connection's transport to a ``WebSocket``, which is both the protocol on the
transport and the object applications hold (``ws``). Framing, masking, UTF-8
checks and the deflate extension are the ``wsproto`` library's.

A ``WebSocket`` calls its *endpoint* (see ``Endpoint``) on the loop:
``on_connect(ws)``, ``on_message(ws, message)`` with a whole message (``str``
for text, ``bytes`` for binary), ``on_writable(ws)`` when the queue of
outgoing bytes drained below the low-water mark after ``send`` said False,
and ``on_close(ws, code, reason)`` exactly once at the end (``code`` is what
the peer sent, 1005 for a close frame without a code, 1006 when the
connection ended without a close frame).

Limits (``Settings``): a message over ``max_message`` bytes closes with 1009;
``idle_timeout`` seconds without a frame from the client (a pong counts) close
the connection with 1011, a ping going out at half of it. Frames the RFC
forbids close with 1002, invalid UTF-8 in a text message with 1007. Graceful
stop closes with 1001. Sending never blocks: ``send`` queues and returns False
above ``HIGH_WATER`` bytes queued; a client that lets more than ``HARD_LIMIT``
bytes pile up is disconnected, so a slow reader cannot exhaust memory.
"""

from __future__ import annotations

import array
import base64
import enum
import fcntl
import hashlib
import logging
import termios
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError

from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response
from localhost.io import Protocol, Transport
from localhost.limits import LIMITS

if TYPE_CHECKING:
    from localhost.io.loop import EventLoop

log = logging.getLogger("localhost")

#: RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Bytes queued for the client above which ``send`` returns False.
HIGH_WATER = LIMITS.websocket_high_water_bytes
#: Bytes queued below which ``on_writable`` is called again.
LOW_WATER = LIMITS.websocket_low_water_bytes
#: Bytes queued beyond which the client is disconnected (it does not read).
HARD_LIMIT = LIMITS.websocket_hard_limit_bytes
#: Seconds a closing connection has to send what is queued before it is dropped.
CLOSE_DRAIN_SECONDS = LIMITS.linger_timeout_seconds
#: A client still reading what came before our close frame gets this many
#: closing deadlines (each min(idle timeout, 5 s)) in all.
CLOSE_WAIT_PERIODS = LIMITS.websocket_close_periods


class Close(enum.IntEnum):
    """Close codes (RFC 6455 §7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005
    ABNORMAL = 1006
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011


NORMAL = Close.NORMAL
GOING_AWAY = Close.GOING_AWAY
NO_STATUS = Close.NO_STATUS
ABNORMAL = Close.ABNORMAL
TOO_BIG = Close.TOO_BIG
INTERNAL_ERROR = Close.INTERNAL_ERROR


@dataclass(frozen=True, slots=True)
class Settings:
    """A location's WebSocket directives: ``max_message`` bytes,
    ``idle_timeout`` seconds, ``origins`` (None: the request's own host only;
    ``("*",)``: any), ``deflate`` (permessage-deflate offered)."""

    max_message: int = 1024 * 1024
    idle_timeout: float = 60.0
    origins: tuple[str, ...] | None = None
    deflate: bool = False


DEFAULT_SETTINGS = Settings()


class Endpoint(TypingProtocol):
    """What a ``WebSocket`` calls (every method is optional)."""

    def on_connect(self, ws: WebSocket) -> None: ...
    def on_message(self, ws: WebSocket, message: str | bytes) -> None: ...
    def on_writable(self, ws: WebSocket) -> None: ...
    def on_close(self, ws: WebSocket, code: int, reason: str) -> None: ...


def _tokens(request: Request, name: str) -> list[str]:
    """The comma-separated tokens of every ``name`` field, lower-cased."""
    return [
        part.strip().lower()
        for value in request.headers.get_all(name)
        for part in value.split(",")
        if part.strip()
    ]


def is_websocket(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket (an ``Upgrade: websocket`` field)."""
    upgrade = request.headers.get("upgrade")
    return upgrade is not None and "websocket" in _tokens(request, "upgrade")


def upgrade_required() -> HTTPError:
    """426 for a plain request to a WebSocket endpoint (RFC 9110 §15.5.22)."""
    return HTTPError(
        426,
        "this resource is a WebSocket endpoint",
        [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")],
    )


def refusal(exc: HTTPError) -> Response:
    """The answer to a refused handshake: its status and fields, and the
    reason as text, for the developer whose client it is (RFC 6455 §4.2.2)."""
    body = f"Failed to open a WebSocket connection: {exc.detail}.\n".encode()
    headers = [*(exc.headers or ()), ("Content-Type", "text/plain; charset=utf-8")]
    return Response(exc.status, headers, body)


@dataclass(slots=True)
class Accepted:
    """An accepted opening handshake: the 101 ``response``, the negotiated
    ``subprotocol`` (None: none) and the ``extensions`` to run."""

    response: Response
    subprotocol: str | None
    extensions: list[Extension]


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()  # noqa: S324 - the RFC's hash
    return base64.b64encode(digest).decode("ascii")


def _origin_allowed(request: Request, settings: Settings, scheme: str) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser: Origin protects browsers' users (RFC 6455 §10.2)
    origin = origin.strip().lower().rstrip("/")
    allowed = settings.origins
    if allowed is None:
        host = (request.host or "").lower()
        if not host:
            return False
        # The page's own site, over either scheme (a page on https may open wss).
        return origin in (f"http://{host}", f"https://{host}") or origin == f"{scheme}://{host}"
    return "*" in allowed or origin in allowed


def accept(
    request: Request,
    settings: Settings = DEFAULT_SETTINGS,
    subprotocols: Iterable[str] = (),
    scheme: str = "http",
) -> Accepted:
    """Check the opening handshake in ``request`` and build the 101 answer.

    Raises ``HTTPError``: 405 for a method other than GET, 400 for a missing
    or malformed field (Upgrade, Connection, Sec-WebSocket-Key) or a request
    with a body, 426 with ``Sec-WebSocket-Version: 13`` for another version
    (RFC 6455 §4.4), 403 for an Origin that is not allowed.
    """
    if request.method != "GET":
        raise HTTPError(405, "a WebSocket handshake is a GET", [("Allow", "GET")])
    if request.version != "HTTP/1.1":
        raise HTTPError(400, "a WebSocket handshake needs HTTP/1.1")
    if request.has_body:
        raise HTTPError(400, "a WebSocket handshake has no body")
    if "websocket" not in _tokens(request, "upgrade"):
        raise HTTPError(400, 'the Upgrade field does not name "websocket"')
    if "upgrade" not in _tokens(request, "connection"):
        raise HTTPError(400, 'the Connection field does not name "upgrade"')
    versions = request.headers.get_all("sec-websocket-version")
    if versions != ["13"]:
        raise HTTPError(426, "unsupported WebSocket version", [("Sec-WebSocket-Version", "13")])
    keys = request.headers.get_all("sec-websocket-key")
    key = keys[0].strip() if len(keys) == 1 else ""
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        raise HTTPError(400, "missing or malformed Sec-WebSocket-Key")
    if not _origin_allowed(request, settings, scheme):
        raise HTTPError(403, "WebSocket origin not allowed")
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    chosen = None
    offered = [
        part.strip()
        for value in request.headers.get_all("sec-websocket-protocol")
        for part in value.split(",")
        if part.strip()
    ]
    if offered:
        ours = list(subprotocols)
        # The server's preference among those the client offers.
        chosen = next((name for name in ours if name in offered), None)
        if chosen is not None:
            headers.append(("Sec-WebSocket-Protocol", chosen))
    extensions: list[Extension] = []
    if settings.deflate and _DEFLATE_USABLE:
        requested = [
            part.strip()
            for value in request.headers.get_all("sec-websocket-extensions")
            for part in value.split(",")
            if part.strip()
        ]
        if requested:
            deflate = BoundedDeflate(settings.max_message)
            agreed = server_extensions_handshake(requested, [deflate])
            if agreed is not None:
                headers.append(("Sec-WebSocket-Extensions", agreed.decode("ascii")))
                extensions.append(deflate)
    return Accepted(Response(101, headers), chosen, extensions)


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate (RFC 7692) that inflates at most ``limit`` bytes of a message.

    wsproto inflates each compressed payload whole, so a frame of a few KiB
    could become gigabytes before ``websocket_max_message`` is checked (a
    compression bomb). Here inflation stops one byte past what the message
    may still hold, and the connection is closed with 1009 (RFC 6455
    §7.4.1). The decompressor is wsproto's (its private state, pinned to
    wsproto 1.x); ``usable()`` is False when that state is not where it is
    expected, and then the extension is not offered at all.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.inflated = 0  # bytes of the current message so far

    @staticmethod
    def usable() -> bool:
        """Whether wsproto's deflate keeps the state this class relies on."""
        probe = PerMessageDeflate()
        return all(
            hasattr(probe, name)
            for name in ("_inbound_compressed", "_inbound_is_compressible", "_decompressor")
        )

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        room = self.limit - self.inflated
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            out: bytes = decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        self.inflated += len(out)
        return out

    def frame_inbound_payload_data(
        self, proto: Any, data: bytes | bytearray
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return bytes(data)
        return self._inflate(bytes(data))

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if not fin:
            return None
        if not self._inbound_is_compressible or not self._inbound_compressed:
            self._inbound_compressed = None
            self.inflated = 0
            return None
        # The end of a message: the empty block the sender removed (RFC 7692 §7.2.2).
        tail = self._inflate(b"\x00\x00\xff\xff")
        if isinstance(tail, CloseReason):
            return tail
        if self.client_no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        self.inflated = 0
        return tail


_DEFLATE_USABLE = BoundedDeflate.usable()


def _nothing(*_args: Any) -> None:
    return None


def _unsent(transport: Transport) -> int:
    """Bytes written to ``transport`` that the client has not acknowledged:
    the transport's queue and the kernel's send queue (``TIOCOUTQ``, Linux).
    """
    queued = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is None:
        return queued
    found = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, found)
    except (OSError, ValueError):
        return queued
    return queued + found[0]


def _decoder_idle(connection: Connection) -> bool:
    """Whether wsproto holds no partial frame or message (so bytes may bypass it).

    It reads wsproto's private state (pinned to wsproto 1.x); if that state
    is not where it is expected, the answer is False: everything goes
    through wsproto, which is always correct, only slower.
    """
    try:
        proto = connection._proto
        decoder = proto._frame_decoder
        return (
            decoder.header is None
            and not len(decoder.buffer)
            and proto._message_decoder.opcode is None
        )
    except AttributeError:
        return False


class WebSocket(Protocol):
    """One WebSocket connection: the protocol on its transport and the ``ws``
    object of the application.

    Attributes for applications: ``request`` (the handshake's ``Request``),
    ``params`` (the route's parameters), ``subprotocol``, ``close_code`` and
    ``close_reason`` (what the peer's close frame said; None before),
    ``closed`` (no more messages can be sent), ``remote_address``.
    """

    def __init__(
        self,
        loop: EventLoop,
        endpoint: Any,
        request: Request,
        accepted: Accepted,
        settings: Settings = DEFAULT_SETTINGS,
        params: dict[str, str] | None = None,
        peer: tuple[str, int] = ("", 0),
    ) -> None:
        super().__init__()
        self.loop = loop
        self.request = request
        self.params = params if params is not None else {}
        self.subprotocol = accepted.subprotocol
        self.remote_address = peer
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = False
        self.settings = settings
        self._connection = Connection(ConnectionType.SERVER, accepted.extensions)
        #: No extension: whole data frames are read and written without wsproto.
        self._fast = not accepted.extensions
        self._endpoint = endpoint
        self._on_message: Callable[[WebSocket, str | bytes], Any] = getattr(
            endpoint, "on_message", _nothing
        )
        self._parts: list[Any] = []
        self._size = 0
        self._blocked = False  # send() said False; on_writable when drained
        self._ended = False  # on_close was called
        self._last_seen = 0.0
        self._pinged = False
        self._close_after_send = False
        self._unsent_at_close = 0  # bytes not yet taken by the client when we closed
        self._close_by = 0.0  # the latest a closing handshake may end (loop time)

    # -- the application's API ----------------------------------------------

    def send(self, message: str | bytes) -> bool:
        """Queue a text (``str``) or binary (``bytes``) message. Never blocks.

        Returns False when the queue to the client is above ``HIGH_WATER``
        bytes (``on_writable`` follows when it drains) or the socket is
        closed (the message is then dropped).
        """
        if self.closed:
            return False
        if not self._fast:
            event = (
                TextMessage(data=message)
                if isinstance(message, str)
                else BytesMessage(data=message)
            )
            return self._write(event)
        # Without extensions a server frame is a plain header and the payload
        # (RFC 6455 §5.2; a server never masks): no need for wsproto here.
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if isinstance(message, str):
            payload = message.encode("utf-8")
            first = 0x81
        else:
            payload = message
            first = 0x82
        length = len(payload)
        if length < 126:
            transport.write(bytes((first, length)) + payload)
        elif length < 65536:
            transport.write(bytes((first, 126, length >> 8, length & 0xFF)) + payload)
        else:
            transport.write(bytes((first, 127)) + length.to_bytes(8, "big"))
            transport.write(bytes(payload))
        return self._check_queue(transport, length)

    def ping(self, data: bytes = b"") -> None:
        """Send a ping (the client answers with a pong)."""
        if not self.closed:
            self._write(Ping(payload=data))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason`` (RFC 6455
        §7.1.2); the connection ends when the client answers, or at once if
        the client is gone."""
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        if transport is None or self._connection.state is not ConnectionState.OPEN:
            return
        self._write(CloseConnection(code=code, reason=reason))
        # A client that never answers the close is dropped at the idle
        # deadline, unless it is still taking what was queued before it.
        self._unsent_at_close = _unsent(transport)
        wait = min(self.settings.idle_timeout, 5.0)
        # However slowly it reads, a closing client gets at most this long.
        self._close_by = self.loop.now + wait * CLOSE_WAIT_PERIODS
        self._arm(wait)

    # -- protocol callbacks ---------------------------------------------------

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        self._last_seen = self.loop.now
        self._arm(self.settings.idle_timeout / 2)
        self._call("on_connect")

    def data_received(self, data: bytes) -> None:
        connection = self._connection
        if connection.state is ConnectionState.CLOSED:
            return
        self._last_seen = self.loop.now
        self._pinged = False
        if self._fast and not self._parts and _decoder_idle(connection):
            done = self._fast_frames(data)
            if done == len(data) or self._ended:
                return
            data = data[done:]
        connection.receive_data(bytes(data))
        for event in connection.events():
            if isinstance(event, Message):
                if self._message(event) is False:
                    return
            elif isinstance(event, Ping):
                self._write(event.response())
            elif isinstance(event, Pong):
                pass  # activity only
            elif isinstance(event, CloseConnection):
                self._peer_closed(event)
                return

    def _fast_frames(self, data: bytes) -> int:
        """Deliver the whole, unfragmented, masked text and binary frames at the
        start of ``data`` (what a client sends most); returns the bytes used.

        Anything else (control frames, fragments, reserved bits, a frame cut
        by the read, invalid UTF-8, a message over the limit) is left to
        wsproto, which applies the RFC to it. Used only while wsproto holds
        no partial frame and no extension is in use (see ``_decoder_idle``).
        """
        end = len(data)
        offset = 0
        limit = self.settings.max_message
        on_message = self._on_message
        while end - offset >= 6:
            first = data[offset]
            second = data[offset + 1]
            if (first != 0x81 and first != 0x82) or not second & 0x80:
                break  # not FIN + text/binary, or unmasked (wsproto fails it: 1002)
            length = second & 0x7F
            start = offset + 6
            if length == 126:
                if end - offset < 8:
                    break
                length = data[offset + 2] << 8 | data[offset + 3]
                start = offset + 8
            elif length == 127:
                break
            stop = start + length
            if stop > end or length > limit:
                break
            payload = bytes(data[start:stop])
            if length:
                mask = bytes(data[start - 4 : start])
                key = int.from_bytes((mask * (length // 4 + 1))[:length], "little")
                payload = (int.from_bytes(payload, "little") ^ key).to_bytes(length, "little")
            message: str | bytes
            if first == 0x81:
                try:
                    message = payload.decode("utf-8")
                except UnicodeDecodeError:
                    break  # wsproto closes with 1007
            else:
                message = payload
            offset = stop
            try:
                on_message(self, message)
            except Exception:
                log.exception("WebSocket %s: on_message failed", self.request.path)
                self._fail(INTERNAL_ERROR, "")
                return end
            if self.closed:
                break  # the rest (the client's close, say) goes to wsproto
        return offset

    def eof_received(self) -> bool | None:
        self._end(ABNORMAL, "")
        return None  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end(ABNORMAL, "")
        self.transport = None

    def pause_writing(self) -> None:
        self._blocked = True

    def resume_writing(self) -> None:
        if self._blocked:
            self._blocked = False
            if not self.closed:
                self._call("on_writable")

    def is_idle(self) -> bool:
        return False

    def shutdown(self) -> None:
        """Graceful stop: close with 1001 (going away)."""
        self.close(GOING_AWAY, "server shutting down")
        if self.transport is not None and self._connection.state is not ConnectionState.OPEN:
            self._arm(1.0)

    # -- inside -----------------------------------------------------------------

    def _message(self, event: Message[Any]) -> bool:
        parts = self._parts
        data = event.data
        parts.append(data)
        # The limit is in bytes as sent (UTF-8 for text), as on the fast path.
        self._size += len(data) if type(data) is not str or data.isascii() else len(data.encode())
        if self._size > self.settings.max_message:
            self._parts = []
            self._size = 0
            self._fail(TOO_BIG, "message too big")
            return False
        if not event.message_finished:
            return True
        message: str | bytes
        if len(parts) == 1:
            message = parts[0]
        elif isinstance(event, TextMessage):
            message = "".join(parts)
        else:
            message = b"".join(parts)
        self._parts = []
        self._size = 0
        if isinstance(message, bytearray):
            message = bytes(message)
        try:
            self._on_message(self, message)
        except Exception:
            log.exception("WebSocket %s: on_message failed", self.request.path)
            self._fail(INTERNAL_ERROR, "")
            return False
        return True

    def _peer_closed(self, event: CloseConnection) -> None:
        connection = self._connection
        transport = self.transport
        if connection.state is ConnectionState.REMOTE_CLOSING:
            # The client starts the closing handshake: echo its code.
            self.close_code, self.close_reason = event.code, event.reason or ""
            self.closed = True
            self._write(event.response())
        elif connection.state is ConnectionState.CLOSED:
            # The answer to our close.
            self.close_code, self.close_reason = event.code, event.reason or ""
        else:
            # wsproto found a protocol error (1002, 1007, 1009): fail the connection.
            self._fail(event.code, event.reason or "")
            return
        self._end(event.code, event.reason or "")
        if transport is not None:
            self._close_transport(transport)  # once the close frame is out

    def _fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (RFC 6455 §7.1.7): no more reading."""
        transport = self.transport
        was_closed = self.closed
        self.closed = True
        if not was_closed and self._connection.state is ConnectionState.OPEN:
            self._write(CloseConnection(code=code, reason=reason[:120]))
        self._end(code, reason)
        if transport is not None:
            self._close_transport(transport)

    def _close_transport(self, transport: Transport) -> None:
        """Close once what is queued is sent; a client that does not read it is
        dropped after a few seconds (the transport's own deadlines end with
        the connection's protocol)."""
        transport.close()
        self.loop.call_at(self.loop.now + CLOSE_DRAIN_SECONDS, transport.abort)

    def _write(self, event: Any) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        try:
            data = self._connection.send(event)
        except LocalProtocolError:
            return False
        transport.write(data)
        return self._check_queue(transport, len(data))

    def _check_queue(self, transport: Transport, written: int) -> bool:
        """False above ``HIGH_WATER`` queued; the client is dropped when what was
        queued before this message (``written`` bytes) passes ``HARD_LIMIT``:
        one large message to a client that reads is not a client that doesn't."""
        queued = transport.get_write_buffer_size()
        if queued > HIGH_WATER:
            if queued - written > HARD_LIMIT:
                log.warning(
                    "WebSocket %s from %s: client does not read (%d bytes queued); closed",
                    self.request.path,
                    self.remote_address[0],
                    queued,
                )
                self.closed = True
                self._end(ABNORMAL, "")
                transport.abort()
                return False
            self._blocked = True
            return False
        return True

    def _end(self, code: int, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.closed = True
        on_close = getattr(self._endpoint, "on_close", None)
        if on_close is not None:
            try:
                on_close(self, code, reason)
            except Exception:
                log.exception("WebSocket %s: on_close failed", self.request.path)

    def _call(self, name: str) -> None:
        method = getattr(self._endpoint, name, None)
        if method is None:
            return
        try:
            method(self)
        except Exception:
            log.exception("WebSocket %s: %s failed", self.request.path, name)
            self._fail(INTERNAL_ERROR, "")

    def _arm(self, seconds: float) -> None:
        transport = self.transport
        if transport is not None:
            transport.set_timeout(seconds, self._on_timer)

    def _on_timer(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._connection.state is not ConnectionState.OPEN:
            unsent = _unsent(transport)
            if 0 < unsent < self._unsent_at_close and self.loop.now < self._close_by:
                # A slow client still reading what came before the close
                # frame: it cannot answer until it has read that.
                self._unsent_at_close = unsent
                self._arm(min(self.settings.idle_timeout, 5.0))
                return
            # The closing handshake took too long.
            self._end(ABNORMAL, "")
            transport.abort()
            return
        idle = self.settings.idle_timeout
        quiet = self.loop.now - self._last_seen
        if quiet >= idle - 0.001:
            log.info(
                "WebSocket %s from %s: idle for %.0f s; closed",
                self.request.path,
                self.remote_address[0],
                quiet,
            )
            self._fail(INTERNAL_ERROR, "idle timeout")
            return
        if quiet >= idle / 2 - 0.001 and not self._pinged:
            self._pinged = True
            self._write(Ping(payload=b"localhost"))
            self._arm(idle - quiet)
            return
        self._arm(max(idle / 2 - quiet, 0.01) if not self._pinged else idle - quiet)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<WebSocket {self.request.path} {self.remote_address[0]} {state}>"
