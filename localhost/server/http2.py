"""HTTP/2 (RFC 9113) as a protocol over a transport: streams mapped to exchanges.

Frames, HPACK and the flow-control bookkeeping are the ``h2`` library's
(``h2.connection.H2Connection``, server side); the connection driving, the
stream scheduling, back-pressure and the mapping to the pipeline and its
handlers are here. Each request stream gets a ``Stream``, which plays for
its ``Exchange`` the part ``HTTP1Protocol`` plays for an HTTP/1.1 one
(``send``/``start``/``write``/``finish``/``abort``, internal redirects,
error pages), so every handler works unchanged over HTTP/2.

A connection starts on a port whose block has ``http2 on`` (or a ``port``/
``listen`` with the ``http2`` flag): over TLS when ALPN chose ``h2``, in
clear text when the client opens with the connection preface ("prior
knowledge", RFC 9113 §3.3; there is no h2c Upgrade, which RFC 9113
removed). ``PrefaceSniffer`` tells the two apart on a clear-text port.

Sending: a response's head is one HEADERS frame (CONTINUATION frames past
the peer's frame size): ``:status``, the handler's fields minus the
connection-specific ones of RFC 9113 §8.2.2, Date, Server, Content-Length
when known. Its body goes out in DATA frames no larger than the peer's
``SETTINGS_MAX_FRAME_SIZE`` and its stream and connection windows, file
bodies read in chunks (``os.pread``); a body in memory that the windows
allow goes out with its head at once. The frames are written into h2's
output by ``HTTP2Protocol.send_head``/``send_data``, with h2's state
machines and windows kept as its own methods keep them. While the
transport holds more than ``HIGH_WATER`` bytes no stream produces more; a
streamed body's ``write`` returns False past ``STREAM_HIGH_WATER`` bytes
queued for its stream, and ``on_writable`` follows when it drains.

Receiving: a request's header list is checked here rather than by h2
(``_parse_head``: RFC 9113 §8.2 field names and values, connection-specific
fields, TE; §8.3 pseudo-header fields; :authority and Host; split Cookie
fields joined, §8.2.3), once per distinct list on a connection, as is the
HPACK decoding of a block that only refers to the table (``_DecodeCache``).
A malformed request is a stream error (RST_STREAM PROTOCOL_ERROR, §8.1.1)
that counts towards the reset flood limit below. Request bodies are given
to the handler as DATA frames arrive; the flow-control window is given
back as the handler consumes them (a handler that pauses, ``on_body``
returning False, stops the client at its window). ``body_limit`` is
enforced as bytes arrive (413, then the stream is reset).

Limits and defences (``Limits2``): ``http2_max_concurrent_streams``
(SETTINGS_MAX_CONCURRENT_STREAMS; more is refused with REFUSED_STREAM),
``http2_max_field_size`` (SETTINGS_MAX_HEADER_LIST_SIZE for the decoded
header list; h2 caps CONTINUATION frames per block), ``http2_recv_timeout``
(a request whose head or body stalls), ``http2_idle_timeout`` (no stream
open). Floods close the connection with GOAWAY ENHANCE_YOUR_CALM: more than
``FLOOD_LIMIT`` RST_STREAM (rapid reset, CVE-2023-44487), PING or SETTINGS
frames from the client per second. A stream whose window stays at zero for
``send_timeout`` is reset. Graceful stop and reload send GOAWAY with the
last stream id and finish the streams in flight.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hpack.table
import hyperframe.frame

from localhost import SERVER_SOFTWARE
from localhost.accesslog import combined_line, write_access_logs
from localhost.config.model import ServerBlock
from localhost.handlers.error_pages import (
    ErrorPageRequest,
    ErrorResponse,
    error_page_answer,
    error_response,
)
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response
from localhost.http.methods import OPTIONS_STAR_ALLOW
from localhost.http.target import normalize_target
from localhost.io import Protocol, Transport
from localhost.io.body import FileBody
from localhost.limits import LIMITS
from localhost.modules.http2 import DEFAULT_LIMITS, Limits2
from localhost.server.error_page import error_page, redirected
from localhost.server.exchange import Exchange, filtered

if TYPE_CHECKING:
    from localhost.server.http1 import HTTPHost

log = logging.getLogger("localhost")

#: RFC 9113 §3.4: what a client sends first.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Bytes queued on the transport above which streams stop producing DATA.
HIGH_WATER = LIMITS.high_water_bytes
#: Bytes queued for one stream above which its ``write`` returns False.
STREAM_HIGH_WATER = LIMITS.high_water_bytes
#: Bytes read from a file per DATA frame batch.
FILE_CHUNK = LIMITS.file_chunk_bytes
#: Client RST_STREAM, PING or SETTINGS frames per second beyond which the
#: connection is closed with ENHANCE_YOUR_CALM.
FLOOD_LIMIT = LIMITS.http2_flood_frames
#: Stream-level flow-control window we grant (RFC 9113 §6.9.2); the
#: connection window is raised to match.
WINDOW = LIMITS.http2_window_bytes
#: Request body bytes kept in memory before the spool goes to disk.
SPOOL_MEMORY = LIMITS.body_spool_memory_bytes
#: Encoded response header blocks kept per connection.
BLOCK_CACHE = LIMITS.http2_header_block_cache
#: Request header blocks (decoded) and header lists (parsed) kept per connection.
REQUEST_CACHE = LIMITS.http2_request_cache
#: The largest request header list kept, decoded or parsed, in bytes as RFC
#: 9113 §6.5.2 counts them: what fits in the HPACK table of RFC 7541 §4.2
#: (4,096 bytes unless the client says otherwise), which is what a client
#: that repeats its requests keeps its fields in.
CACHED_HEAD_BYTES = hpack.table.HeaderTable.DEFAULT_SIZE
#: Internal redirects in a row before 500 (as HTTP/1.1).
MAX_INTERNAL_REDIRECTS = LIMITS.max_internal_redirects

# The frames of a response are written here rather than by h2's send_headers
# and send_data, which cost more than the rest of a small response together
# (field lists re-encoded to bytes and scanned, frame objects built and
# serialized, debug logging). h2 still owns the state: the same inputs go to
# its connection and stream state machines, the same flow-control windows
# are charged, and the frames go into its output buffer in order, so that
# what h2 checks and sends afterwards is what it would have been. These are
# h2's internals (the same in 4.1 to 4.4); without them h2's public methods
# are used.
try:
    from h2.connection import ConnectionInputs as _ConnectionInputs
    from h2.stream import StreamInputs as _StreamInputs

    _C_SEND_HEADERS = _ConnectionInputs.SEND_HEADERS
    _C_SEND_DATA = _ConnectionInputs.SEND_DATA
    _S_SEND_HEADERS = _StreamInputs.SEND_HEADERS
    _S_SEND_DATA = _StreamInputs.SEND_DATA
    _S_SEND_END_STREAM = _StreamInputs.SEND_END_STREAM
    FRAMES_HERE = True
except (ImportError, AttributeError):  # pragma: no cover - another h2
    FRAMES_HERE = False

#: A frame header (RFC 9113 §4.1): length (24 bits) and type, flags, stream.
_FRAME_HEADER = struct.Struct(">IBL")
_HEADERS = hyperframe.frame.HeadersFrame.type
_CONTINUATION = hyperframe.frame.ContinuationFrame.type
_DATA = hyperframe.frame.DataFrame.type
_FLAGS = {flag.name: flag.bit for flag in hyperframe.frame.HeadersFrame.defined_flags}
_END_STREAM = _FLAGS["END_STREAM"]
_END_HEADERS = _FLAGS["END_HEADERS"]

#: RFC 9113 §8.2.2: fields that have no meaning in HTTP/2 are not sent.
_CONNECTION_FIELDS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)


def limits_of(server: ServerBlock) -> Limits2:
    """The HTTP/2 limits of ``server`` (``localhost.modules.http2`` puts them
    in its ``options``; the defaults elsewhere)."""
    options = server.options
    if "http2_max_concurrent_streams" not in options:
        return DEFAULT_LIMITS
    return Limits2(
        options["http2_max_concurrent_streams"],
        options["http2_max_field_size"],
        options["http2_recv_timeout"],
        options["http2_idle_timeout"],
    )


def _nothing(*_args: Any) -> None:
    return None


#: Response fields left out: the connection-specific ones, and Content-Length,
#: which is the body's own.
_NOT_SENT = _CONNECTION_FIELDS | {"content-length"}
#: Characters no field name or value may carry (RFC 9113 §8.2.1, RFC 9110 §5.5).
_FORBIDDEN = frozenset("\r\n\0")


class _BlockCache(hpack.Encoder):
    """hpack's encoder with every response field sent as a literal that is never
    indexed, so that a field list always encodes to the same block, which is
    then kept (``BLOCK_CACHE`` lists per connection): a cached file answered
    again costs a dictionary look-up instead of an HPACK encoding. The
    dynamic table stays empty (a few bytes more per response, no state).
    A table size change from the peer is signalled by hpack as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: dict[tuple[tuple[str, str], ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        key = tuple(headers)
        found = self.blocks.get(key)
        if found is not None and not self.header_table.resized:
            return found
        block = super().encode([(name, value, True) for name, value in key], huffman)
        if len(self.blocks) >= BLOCK_CACHE:
            self.blocks.clear()
        if not block or block[0] & 0xE0 != 0x20:  # not behind a table size update
            self.blocks[key] = block
        return block


class _Table(hpack.table.HeaderTable):
    """hpack's header table, counting its changes (``generation``): an entry
    added (which may evict others) or a size change."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        hpack.table.HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class _DecodeCache(hpack.Decoder):
    """hpack's decoder, keeping the header lists of the blocks it decoded
    without changing its dynamic table (RFC 7541 §3.2: indexed fields and
    literals without indexing, no size update). Decoding such a block again
    gives the same list as long as the table has not changed since, so a
    client that repeats its requests (the same block, made of references to
    the table) costs a dictionary look-up each instead of an HPACK decoding.
    Any change of the table (``_Table.generation``) or of the limits the
    decoding checks empties the cache."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        table = self.header_table = _Table()
        self.max_allowed_table_size = table.maxsize
        self.blocks: dict[bytes, list[Any]] = {}
        self._state = (table.generation, max_header_list_size, self.max_allowed_table_size)

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self.header_table
        assert isinstance(table, _Table)
        state = (table.generation, self.max_header_list_size, self.max_allowed_table_size)
        if state == self._state and raw:
            found = self.blocks.get(data)
            if found is not None:
                return list(found)
        else:
            self.blocks.clear()
            self._state = state
        headers = super().decode(data, raw)
        if (
            table.generation == state[0]
            and raw
            and type(data) is bytes
            and sum(len(n) + len(v) + 32 for n, v in headers) <= CACHED_HEAD_BYTES
        ):
            if len(self.blocks) >= REQUEST_CACHE:
                self.blocks.clear()
            self.blocks[data] = list(headers)
        return headers


class _Head:
    """A request's header list (``Stream.on_request``), checked and parsed once
    for the identical lists that follow on the connection: pseudo-header
    fields, the regular fields as ``Headers`` takes them, the size RFC 9113
    §6.5.2 counts, and the target's path and query (or its error)."""

    __slots__ = (
        "method",
        "target",
        "scheme",
        "host",
        "fields",
        "index",
        "length",
        "size",
        "path",
        "query",
        "error",
    )

    def __init__(
        self,
        method: str,
        target: str,
        scheme: str,
        host: str,
        fields: list[tuple[str, str]],
        index: dict[str, str],
        length: int | None,
        size: int,
    ) -> None:
        self.method = method
        self.target = target
        self.scheme = scheme
        self.host = host
        self.fields = fields
        self.index = index
        self.length = length  # -1: a Content-Length that is not a number
        self.size = size
        self.path = self.query = ""
        self.error: HTTPError | None = None
        if target:
            try:
                self.path, self.query = normalize_target(target)
            except HTTPError as exc:
                self.error = exc


#: RFC 9113 §8.2.1: the bytes a regular field name may hold (visible ASCII
#: without upper case and the colon).
_NAME_BYTES = bytes(c for c in range(0x21, 0x7F) if not 0x41 <= c <= 0x5A and c != 0x3A)
#: RFC 9113 §8.3.1 (and :protocol, RFC 8441, for a CONNECT).
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
#: RFC 9113 §8.2.2.
_CONNECTION_NAMES = frozenset(name.encode() for name in _CONNECTION_FIELDS)


def _check_fields(fields: list[tuple[bytes, bytes]], trailers: bool = False) -> str | None:
    """Why the header (or trailer) list ``fields`` (names and values as
    bytes) is malformed per RFC 9113 §8.2 and §8.3, or None: a character a
    field may not hold, an empty or upper-case name, a connection-specific
    field, TE other than ``trailers``, a pseudo-header field unknown,
    repeated, after a regular one or in trailers. Whether the pseudo-header
    fields a request needs are there is ``_parse_head``'s."""
    regular = False
    seen: set[bytes] = set()
    for name, value in fields:
        if not name:
            return "an empty field name"
        if name[0] == 0x3A:
            if regular or trailers:
                return f"pseudo-header field {name!r} after the regular ones"
            if name not in _REQUEST_PSEUDO:
                return f"pseudo-header field {name!r}"
            if name in seen:
                return f"pseudo-header field {name!r} twice"
            seen.add(name)
        else:
            regular = True
            if name.translate(None, _NAME_BYTES):
                return f"field name {name!r}"
            if name in _CONNECTION_NAMES:
                return f"connection-specific field {name!r}"
            if name == b"te" and value.lower() != b"trailers":
                return "TE other than trailers"
        if value:
            if b"\r" in value or b"\n" in value or b"\0" in value:
                return f"CR, LF or NUL in the value of {name!r}"
            if value[0] in (0x20, 0x09) or value[-1] in (0x20, 0x09):
                return f"white space around the value of {name!r}"
    return None


def _parse_head(fields: list[tuple[bytes, bytes]]) -> _Head | str:
    """The request head of ``fields`` (a HEADERS block decoded to bytes), or
    why it is malformed (RFC 9113 §8.1.1: a stream error). Split Cookie
    fields are joined (RFC 9113 §8.2.3), last in the list."""
    problem = _check_fields(fields)
    if problem is not None:
        return problem
    pseudo: dict[bytes, str] = {}
    regular: list[tuple[str, str]] = []
    index: dict[str, str] = {}
    cookies: list[str] = []
    hosts = 0
    size = 0
    for raw_name, raw_value in fields:
        size += len(raw_name) + len(raw_value) + 32
        value = raw_value.decode("latin-1")
        if raw_name[0] == 0x3A:
            pseudo[raw_name] = value
            continue
        name = raw_name.decode("latin-1")
        if name == "cookie":
            cookies.append(value)
            continue
        if name == "host":
            hosts += 1
        regular.append((name, value))
        known = index.get(name)
        index[name] = value if known is None else f"{known}, {value}"
    if cookies:
        joined = "; ".join(cookies)
        regular.append(("cookie", joined))
        index["cookie"] = joined
    method = pseudo.get(b":method")
    if method is None:
        return "no :method"
    connect = method == "CONNECT"
    if b":protocol" in pseudo and not connect:
        return ":protocol without CONNECT"
    if connect and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            return "CONNECT with :scheme or :path"
    elif b":scheme" not in pseudo or not pseudo.get(b":path"):
        return "no :scheme or :path"
    else:
        path = pseudo[b":path"]
        # Origin form, or * for OPTIONS: never the absolute form (RFC 9113 §8.3.1).
        if path[0] != "/" and (path != "*" or method != "OPTIONS"):
            return ":path is neither a path nor * for OPTIONS"
    authority = pseudo.get(b":authority")
    host = index.get("host")
    if hosts > 1:
        return "more than one Host"
    if authority is None and host is None:
        return "no :authority nor Host"
    if authority is not None and host is not None and authority != host:
        return ":authority and Host differ"
    if host is None and authority:
        # What an HTTP/1.1 gateway would construct (RFC 9113 §8.3.1): CGI,
        # WSGI and $http_host read the Host field.
        regular.append(("host", authority))
        index["host"] = authority
    length_text = index.get("content-length")
    length = None
    if length_text is not None:
        length = int(length_text) if length_text.isdigit() else -1
    return _Head(
        method,
        pseudo.get(b":path", ""),
        pseudo.get(b":scheme", ""),
        authority or host or "",
        regular,
        index,
        length,
        size,
    )


class _H2Connection(h2.connection.H2Connection):
    """h2's connection, with two changes. A client that opens more streams than
    SETTINGS_MAX_CONCURRENT_STREAMS allows gets the extra ones refused
    (RST_STREAM REFUSED_STREAM), a stream error as RFC 9113 §5.1.2 requires,
    where h2 would end the whole connection. The header block is decoded
    anyway so that HPACK stays in step. This reaches into h2's internals
    (pinned to h2 4.x); should they move, h2's own behaviour (GOAWAY) holds.

    And h2 counts the open streams (``open_inbound_streams``, a walk over all
    the streams it holds that also drops the closed ones) at every new
    stream, to compare with SETTINGS_MAX_CONCURRENT_STREAMS: here the count
    is only made when the streams held, open or closed, reach that limit; below
    it, their number is the answer (a bound, never over the limit), and the
    closed ones are dropped a batch at a time.
    """

    @property
    def open_inbound_streams(self) -> int:
        held = len(self.streams)
        if held < self.local_settings.max_concurrent_streams:
            return held
        return self._open_streams(1)

    def _receive_headers_frame(self, frame: Any) -> Any:
        try:
            return super()._receive_headers_frame(frame)
        except h2.exceptions.TooManyStreamsError:
            try:
                from h2.connection import _decode_headers
                from h2.stream import StreamClosedBy
                from hyperframe.frame import RstStreamFrame

                _decode_headers(self.decoder, frame.data)
                stream_id = frame.stream_id
                self.highest_inbound_stream_id = max(self.highest_inbound_stream_id, stream_id)
                self._closed_streams[stream_id] = StreamClosedBy.SEND_RST_STREAM
                refusal = RstStreamFrame(stream_id)
                refusal.error_code = h2.errors.ErrorCodes.REFUSED_STREAM
            except (ImportError, AttributeError):
                raise h2.exceptions.TooManyStreamsError("too many streams") from None
            return [refusal], []


class Stream:
    """One request stream: the protocol side of its ``Exchange``."""

    __slots__ = (
        "conn",
        "stream_id",
        "peer",
        "local",
        "exchange",
        "handler",
        "policy",
        "pending",
        "body_seen",
        "body_limit",
        "spool",
        "body_paused",
        "unacked",
        "request_ended",
        "out",
        "out_size",
        "end_after",
        "ended",
        "blocked",
        "reset",
        "restarted",
        "logged",
        "heard_at",
        "stalled_since",
        "requests",
    )

    def __init__(self, conn: HTTP2Protocol, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        conn.requests += 1
        #: ``$connection_requests``: this request's number on its connection.
        self.requests = conn.requests
        self.peer = conn.peer
        self.local = conn.local
        self.exchange: Exchange | None = None
        self.handler: Any = None
        self.policy = 0  # BodyPolicy: IGNORE
        self.pending: Response | None = None
        self.body_seen = 0
        self.body_limit = 0
        self.spool: Any = None
        self.body_paused = False
        self.unacked = 0  # body bytes received and not yet given back to the window
        self.request_ended = False
        self.out: deque[Any] = deque()  # bytes, FileBody, or an encoding FilePump
        self.out_size = 0
        self.end_after = False  # END_STREAM once ``out`` is sent
        self.ended = False  # END_STREAM (or RST_STREAM) sent: the response is over
        self.blocked = False  # write() said False: on_writable when drained
        self.reset = False
        self.restarted = False  # an internal redirect replaced the request (no body)
        self.logged = False
        #: When the client last sent something of this request (head or body).
        self.heard_at = conn.loop.now
        self.stalled_since = 0.0

    @property
    def transport(self) -> Transport | None:
        """The connection's transport (what the TLS pipeline checks for 421)."""
        return self.conn.transport

    @property
    def number(self) -> int:
        """``$connection``: the connection's serial number in this worker."""
        return self.conn.number

    # -- the request ----------------------------------------------------------

    def on_request(self, head: _Head, ended: bool) -> None:
        conn = self.conn
        length = head.length
        if length == -1:
            conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self.on_reset()
            return
        method = head.method
        request = Request(
            method,
            head.target,
            "HTTP/2",
            Headers.parsed(list(head.fields), dict(head.index)),
            head.host,
            True,
            length,
            not ended and length is None,
            False,
        )
        self.request_ended = ended
        server = conn.host.router.select(conn.local, head.host)
        exchange = self.exchange = Exchange(
            self,  # type: ignore[arg-type]
            request,
            server,
            conn.host.services,
            conn.loop,
            conn.loop.now,
        )
        exchange.scheme = head.scheme or conn.scheme
        if method == "CONNECT":
            # No tunnels over HTTP/2 here (RFC 9113 §8.5; RFC 8441 not done).
            self._answer(exchange, error_response(501, server.error_pages))
            return
        if head.size > conn.limits.max_field_size:
            log.info("%s:%d: HTTP/2 header list over http2_max_field_size", *conn.peer)
            self._answer(exchange, error_response(431, server.error_pages))
            return
        if head.error is not None:
            self._answer(exchange, conn.host.pipeline.error_response(exchange, head.error))
            return
        request.path = head.path
        request.query = head.query
        if head.path == "*":
            # OPTIONS * asks about the server as a whole (RFC 9110 §9.3.7).
            self._answer(exchange, Response(200, [("Allow", OPTIONS_STAR_ALLOW)]))
            return
        handler = conn.host.pipeline.start(exchange)
        if exchange.done:
            return  # answered by the pipeline itself (an inline App route)
        self.handler = handler
        try:
            policy = handler.on_head()
            if self.handler is not handler or self.restarted:
                return  # an error page took over (an internal redirect)
            self.policy = policy
        except HTTPError as exc:
            self._drop_handler("error")
            self._answer(exchange, conn.host.pipeline.error_response(exchange, exc))
            return
        except Exception:
            log.exception("error starting %s %s", method, head.target)
            self._drop_handler("error")
            self._answer(exchange, conn.host.pipeline.internal_error(exchange))
            return
        if exchange.done:
            return
        if not ended:
            self.body_limit = conn.host.pipeline.body_limit(exchange)
            if self.policy == 3:  # SPOOL
                self.spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY)  # noqa: SIM115
        else:
            self._on_end()

    def on_data(self, data: bytes, flow: int) -> None:
        exchange = self.exchange
        conn = self.conn
        self.heard_at = conn.loop.now
        if exchange is None or exchange.done and self.handler is None:
            conn.acknowledge(self.stream_id, flow)
            return
        if self.restarted:
            conn.acknowledge(self.stream_id, flow)
            return
        self.body_seen += len(data)
        if self.body_limit and self.body_seen > self.body_limit:
            conn.acknowledge(self.stream_id, flow)
            self._drop_handler("body too large")
            self.pending = None
            self._answer(exchange, conn.host.pipeline.too_large(exchange))
            return
        if self.pending is not None:
            conn.acknowledge(self.stream_id, flow)
            return
        policy = self.policy
        if policy == 2:  # STREAM
            handler = self.handler
            try:
                more = handler.on_body(data)
            except HTTPError as exc:
                conn.acknowledge(self.stream_id, flow)
                self._drop_handler("error")
                self.pending = conn.host.pipeline.error_response(exchange, exc)
                return
            except Exception:
                conn.acknowledge(self.stream_id, flow)
                log.exception("error handling the body of %s", exchange.request)
                self._drop_handler("error")
                self.pending = conn.host.pipeline.internal_error(exchange)
                return
            if more is False and not exchange.done:
                # Keep the window: the client stops when it is used up.
                self.body_paused = True
                self.unacked += flow
                return
        elif policy == 3:  # SPOOL
            self.spool.write(data)
        conn.acknowledge(self.stream_id, flow)

    def on_request_end(self) -> None:
        self.request_ended = True
        exchange = self.exchange
        if exchange is None:
            return
        if self.ended:
            self.conn.forget(self)
            return
        self._on_end()

    def _on_end(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.done or self.restarted:
            return  # answered, or an error page's handler has the request
        pending = self.pending
        if pending is not None:
            self.pending = None
            self._answer(exchange, pending)
            return
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.seek(0)
            exchange.body = spool
        handler = self.handler
        if handler is None:
            return
        self._call(handler.on_body_end)

    def on_reset(self) -> None:
        """The client reset the stream: the handler stops."""
        self.reset = True
        self.ended = True
        exchange = self.exchange
        self._drop_handler("client reset the stream")
        if exchange is not None:
            if (exchange.started or exchange.done) and not self.logged:
                self._log(exchange)
            exchange.done = True
            self._cleanup(exchange)
        self._release_output()
        self.conn.forget(self)

    # -- the response API (called by Exchange) -------------------------------

    def send(self, exchange: Exchange, response: Response) -> None:
        if exchange is not self.exchange or self.reset:
            response.release()
            return
        if response.status >= 400 and type(response) is ErrorResponse:
            found = self._error_page(exchange, response)
            if found is None:
                return
            response = found
        self.handler = None
        request = exchange.request
        if type(request) is ErrorPageRequest:
            response = error_page_answer(request, response, self.conn.host.services.error_pages)
        status = exchange.log_status = response.status
        extra = exchange.extra_headers
        header_filter = exchange.header_filter
        pump = None
        if header_filter is not None:
            response, extra, pump, _ = filtered(
                exchange, response, extra, self.conn.host.pipeline.internal_error
            )
            status = exchange.log_status = response.status
        head_only = request.method == "HEAD" or status == 204 or status == 304
        length = None if status == 204 or status == 304 else response.content_length
        if pump is not None:
            length = None  # a file encoded as it goes
        try:
            fields = self._fields(response.headers, extra, status, length)
        except ValueError as exc:
            log.error("%s: %s", request, exc)
            response.release()
            response = self.conn.host.pipeline.internal_error(exchange)
            status = exchange.log_status = 500
            length = response.content_length
            fields = self._fields(response.headers, [], 500, length)
        exchange.response_headers = [*response.headers, *extra] if extra else response.headers
        if head_only:
            response.release()
            if pump is not None:
                pump.close()
            self._head(fields, True)
        elif pump is not None:
            self._head(fields, False)
            if self.reset:
                pump.close()
            else:
                self.out.append(pump)
                self.end_after = True
        elif response.file is not None:
            exchange.log_bytes = response.file.count
            self._head(fields, False)
            self._queue(response.file)
            self.end_after = True
        elif response.parts is not None:
            exchange.log_bytes = response.content_length
            self._head(fields, False)
            for part in response.parts:
                self._queue(part)
            self.end_after = True
        else:
            body = response.body
            exchange.log_bytes = len(body)
            conn = self.conn
            if body and not conn.write_blocked and len(body) <= conn.window(self.stream_id):
                # Head and body in one go (the windows allow it): nothing queued.
                self._head(fields, False)
                if not self.reset:
                    conn.send_data(self.stream_id, body, True)
                    self.ended = True
                    self._finished()
            else:
                self._head(fields, not body)
                if body:
                    self._queue(body)
                    self.end_after = True
        self.conn.pump()

    def start(self, exchange: Exchange, response: Response, length: int | None) -> None:
        if exchange is not self.exchange or self.reset:
            return
        request = exchange.request
        if type(request) is ErrorPageRequest:
            response = error_page_answer(request, response)
        status = exchange.log_status = response.status
        exchange.head_only = (
            request.method == "HEAD" or status < 200 or status == 204 or status == 304
        )
        extra = exchange.extra_headers
        header_filter = exchange.header_filter
        if header_filter is not None:
            exchange.response_headers = response.headers
            extra = header_filter(exchange, status, extra)
            compression = exchange.compression
            if compression is not None:
                exchange.compression = None
                response, length, encoder = compression.start(exchange, response, length)
                if encoder is not None and not exchange.head_only:
                    exchange.encoder = encoder
        try:
            fields = self._fields(response.headers, extra, status, length)
        except ValueError as exc:
            log.error("%s: %s", request, exc)
            exchange.started = False  # no head went out: a 500 still can
            self._drop_handler("invalid response")
            self._answer(exchange, self.conn.host.pipeline.internal_error(exchange))
            return
        exchange.response_headers = [*response.headers, *extra] if extra else response.headers
        self._head(fields, exchange.head_only)
        self.conn.pump()

    def write(self, exchange: Exchange, data: bytes) -> bool:
        if exchange is not self.exchange or self.reset:
            return False
        if data and not exchange.head_only:
            encoder = exchange.encoder
            if encoder is not None:
                data = encoder.compress(data)
            if data:
                exchange.log_bytes += len(data)
                self._queue(data)
                self.conn.pump()
        if self.out_size > STREAM_HIGH_WATER:
            self.blocked = True
            return False
        return not self.conn.closing

    def finish(self, exchange: Exchange) -> None:
        if exchange is not self.exchange or self.reset:
            return
        self.handler = None
        if exchange.head_only:
            self._done_if_sent()
            return
        encoder = exchange.encoder
        if encoder is not None:
            exchange.encoder = None
            tail = encoder.finish()
            if tail:
                exchange.log_bytes += len(tail)
                self._queue(tail)
        self.end_after = True
        self.conn.pump()

    def abort(self, exchange: Exchange, reason: str = "aborted") -> None:
        if exchange is not self.exchange:
            return
        self.handler = None
        if not self.ended:
            self.conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.on_reset()

    def internal_redirect(self, exchange: Exchange, target: str) -> None:
        if exchange is not self.exchange:
            return
        self._drop_handler("internal redirect")
        exchange.redirects += 1
        if exchange.redirects > MAX_INTERNAL_REDIRECTS:
            log.error("internal redirect cycle at %s", target)
            self._answer(exchange, self.conn.host.pipeline.internal_error(exchange))
            return
        new, exc = redirected(exchange.request, target)
        if exc is not None:
            exchange.request = new
            self._answer(exchange, self.conn.host.pipeline.error_response(exchange, exc))
            return
        self._restart(exchange, new)

    def resume_body(self, exchange: Exchange) -> None:
        if exchange is not self.exchange or not self.body_paused:
            return
        self.body_paused = False
        unacked, self.unacked = self.unacked, 0
        if unacked:
            self.conn.acknowledge(self.stream_id, unacked)
            self.conn.flush()

    def upgrade(self, exchange: Exchange, response: Response, protocol: Callable[[], Any]) -> bool:
        return False  # no protocol switch inside an HTTP/2 stream (RFC 9113 §8.6)

    # -- inside ---------------------------------------------------------------

    def _fields(
        self,
        headers: list[tuple[str, str]],
        extra: list[tuple[str, str]],
        status: int,
        length: int | None,
    ) -> list[tuple[str, str]]:
        fields = [(":status", str(status))]
        forbidden = _FORBIDDEN
        for source in (headers, extra) if extra else (headers,):
            for name, value in source:
                lower = name.lower()
                if lower in _NOT_SENT:
                    continue
                if not (forbidden.isdisjoint(value) and forbidden.isdisjoint(name)):
                    raise ValueError(f"response field {name!r} has CR, LF or NUL")
                fields.append((lower, value))
        fields.append(("date", self.conn.date()))
        fields.append(("server", SERVER_SOFTWARE))
        if length is not None and status >= 200:
            fields.append(("content-length", str(length)))
        return fields

    def _head(self, fields: list[tuple[str, str]], end: bool) -> None:
        exchange = self.exchange
        assert exchange is not None
        try:
            exchange.head_sent = self.conn.send_head(self.stream_id, fields, end)
        except (h2.exceptions.ProtocolError, ValueError, UnicodeError) as exc:
            log.error("%s: invalid response fields: %s", exchange.request, exc)
            self.conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.on_reset()
            return
        exchange.started = True
        if end:
            self.ended = True
            self._finished()

    def _queue(self, item: bytes | bytearray | FileBody) -> None:
        if self.reset:
            # The stream is gone (its head could not be sent): nothing is kept.
            if type(item) is FileBody:
                item.close()
            return
        if type(item) is bytearray:
            item = bytes(item)  # a handler's buffer: it may reuse it
        size = item.count if type(item) is FileBody else len(item)
        if size:
            self.out.append(item)
            self.out_size += size
        elif type(item) is FileBody:
            item.close()

    def send_some(self, budget: int) -> int:
        """Queue DATA frames for up to ``budget`` bytes within the stream's and
        the connection's windows; returns the bytes queued."""
        conn = self.conn
        sent = 0
        while self.out and sent < budget:
            window = min(conn.window(self.stream_id), budget - sent)
            if window < 0:
                # Closed on h2's side (reset by the client in the events
                # still to be handled): nothing more can go out.
                self.on_reset()
                return sent
            if window == 0:
                if not self.stalled_since:
                    self.stalled_since = conn.loop.now
                break
            self.stalled_since = 0.0
            item = self.out[0]
            if type(item) is not FileBody and not isinstance(item, (bytes, memoryview)):
                # A file encoded as it goes (compression's FilePump): its next
                # piece goes in front of it, only when the window allows.
                try:
                    piece = item.read()
                except OSError as exc:
                    log.error("%s: reading the file failed: %s", self.exchange, exc)
                    piece = None
                    self.conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    self.on_reset()
                    return sent
                if piece is None:
                    self.out.popleft()
                    item.close()
                elif piece:
                    assert self.exchange is not None
                    self.exchange.log_bytes += len(piece)
                    self.out.appendleft(piece)
                    self.out_size += len(piece)
                continue
            chunk: bytes | memoryview
            if type(item) is FileBody:
                try:
                    chunk = os.pread(item.fd, min(window, FILE_CHUNK), item.offset)
                except OSError as exc:
                    log.error("%s: reading the file failed: %s", self.exchange, exc)
                    chunk = b""
                if not chunk:
                    # The file shrank: the promised length cannot be kept.
                    self.conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    self.on_reset()
                    return sent
                item.offset += len(chunk)
                item.count -= len(chunk)
                if item.count <= 0:
                    self.out.popleft()
                    item.close()
            else:
                data = item
                if len(data) <= window:
                    chunk = data
                    self.out.popleft()
                else:
                    chunk = data[:window]
                    self.out[0] = data[window:]
            self.out_size -= len(chunk)
            last = not self.out and self.end_after
            conn.send_data(self.stream_id, chunk, last)
            sent += len(chunk)
            if last:
                self.ended = True
        if not self.out and self.end_after and not self.ended:
            conn.send_data(self.stream_id, b"", True)
            self.ended = True
        if self.ended:
            self._finished()
        elif self.blocked and self.out_size <= STREAM_HIGH_WATER // 4:
            self.blocked = False
            handler = self.handler
            if handler is not None:
                conn.loop.call_soon(lambda: self._call(handler.on_writable))
        return sent

    def _done_if_sent(self) -> None:
        if self.ended:
            self._finished()

    def _finished(self) -> None:
        """The response is out (END_STREAM queued)."""
        exchange = self.exchange
        if exchange is None:
            return
        exchange.done = True
        self.handler = None
        if not self.logged:
            self._log(exchange)
        self._cleanup(exchange)
        if not self.request_ended:
            # Answered before the request's end: stop the upload (RFC 9113 §8.1).
            self.conn.reset_stream(self.stream_id, h2.errors.ErrorCodes.NO_ERROR)
            self.request_ended = True
        self.conn.forget(self)

    def _cleanup(self, exchange: Exchange) -> None:
        cleanups = exchange.cleanups
        if cleanups is not None:
            exchange.cleanups = None
            for cleanup in cleanups:
                try:
                    cleanup()
                except Exception:
                    log.exception("request cleanup failed")
        body = exchange.body
        if body is not None:
            exchange.body = None
            body.close()
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.close()

    def _release_output(self) -> None:
        for item in self.out:
            if not isinstance(item, (bytes, memoryview)):
                item.close()
        self.out.clear()
        self.out_size = 0

    def _answer(self, exchange: Exchange, response: Response) -> None:
        if exchange.done or exchange.started:
            response.release()
            if not exchange.done:
                exchange.done = True
                self.abort(exchange)
            return
        exchange.done = True
        self.send(exchange, response)

    def _call(self, callback: Any, *args: Any) -> None:
        exchange = self.exchange
        try:
            callback(*args)
        except HTTPError as exc:
            if exchange is not None:
                self._drop_handler("error")
                self._answer(exchange, self.conn.host.pipeline.error_response(exchange, exc))
        except Exception:
            log.exception("handler failed")
            if exchange is not None:
                self._drop_handler("error")
                self._answer(exchange, self.conn.host.pipeline.internal_error(exchange))

    def _drop_handler(self, reason: str) -> None:
        handler = self.handler
        if handler is not None:
            self.handler = None
            try:
                handler.on_abort(reason)
            except Exception:
                log.exception("handler failed to abort")

    def _restart(self, exchange: Exchange, request: Request, named: str | None = None) -> None:
        exchange.request = request
        exchange.location = None
        exchange.captures = None
        exchange.header_filter = None
        if exchange.body is not None:
            exchange.body.close()
            exchange.body = None
        self.policy = 0
        self.pending = None
        # The new request has no body: what is left of the old one is dropped
        # (no limit, no spool, no second on_body_end at its end).
        self.body_limit = 0
        self.restarted = True
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.close()
        pipeline = self.conn.host.pipeline
        if named is None:
            handler = pipeline.start(exchange)
        else:
            from localhost.modules.rewrite import start_named

            handler = start_named(pipeline, exchange, named)
        if exchange.done:
            return  # answered by the pipeline itself (an inline App route)
        self.handler = handler
        self._call(handler.on_head)
        if not exchange.done and self.handler is handler:
            self._call(handler.on_body_end)

    def _error_page(self, exchange: Exchange, response: Response) -> Response | None:
        """As ``HTTP1Protocol._error_page``: the response to send, or None when an
        internal redirect serves the error page."""
        found = error_page(exchange, response)
        if type(found) is tuple:
            self.handler = None
            self._restart(exchange, *found)
            return None
        return found  # type: ignore[return-value]

    def _log(self, exchange: Exchange) -> None:
        self.logged = True
        owner = exchange.location if exchange.location is not None else exchange.server
        target = owner.access_log
        if target is None:
            return
        services = self.conn.host.services
        if isinstance(target, str):
            line = combined_line(
                self.peer[0],
                exchange.request,
                exchange.log_status,
                exchange.log_bytes,
                time.monotonic() - exchange.start_time,
            )
            services.access_logs.get(target).write(line)
        else:
            write_access_logs(target, exchange, False, services.access_logs)


class HTTP2Protocol(Protocol):
    """One HTTP/2 connection (RFC 9113): ``host`` is the worker, ``server`` the
    address's default block (its limits and timeouts apply to the connection)."""

    scheme = "http"

    def __init__(
        self, host: HTTPHost, server: ServerBlock, scheme: str = "http", number: int = 0
    ) -> None:
        super().__init__()
        self.host = host
        self.loop = host.loop
        self.server = server
        self.scheme = scheme
        self.limits = limits_of(server)
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        # Fields are checked here, not by h2: inbound ones once per distinct
        # header list (_parse_head, RFC 9113 §8.2, §8.3), outbound ones are
        # already lower-case and checked in Stream._fields.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = _H2Connection(config)
        self.h2.encoder = _BlockCache()
        self.frames_here = FRAMES_HERE and isinstance(
            getattr(self.h2, "_data_to_send", None), bytearray
        )
        self.h2.decoder = _DecodeCache(self.h2.decoder.max_header_list_size)
        self.heads: dict[tuple[tuple[bytes, bytes], ...], _Head] = {}
        self.streams: dict[int, Stream] = {}
        self.closing = False
        self.going_away = False
        self.write_blocked = False
        self._window = 0.0  # start of the current flood-counting second
        self._resets = self._pings = self._settings = 0
        self._date_second = -1
        self._date = ""
        self._timer_cb = self._on_timer
        self._idle_since: float | None = None
        self._last_queued = 0  # bytes queued on the transport at the last tick
        self._queue_since = 0.0  # since when the queue has not gone down
        self.batching = False  # handling the events of one read (see data_received)
        self.dirty = False  # a pump is due at the end of the batch
        self.number = number  # $connection
        self.requests = 0  # streams opened so far ($connection_requests)

    def date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            from email.utils import formatdate

            self._date_second = now
            self._date = formatdate(now, usegmt=True)
        return self._date

    # -- transport callbacks --------------------------------------------------

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        # pump() fills up to HIGH_WATER, past the high mark: a budget used up
        # always means pause_writing now and resume_writing once drained.
        transport.set_write_buffer_limits(HIGH_WATER // 2, HIGH_WATER // 8)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            self.peer = peer[:2]
        if isinstance(local, tuple):
            self.local = local[:2]
        limits = self.limits
        h2conn = self.h2
        h2conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_field_size,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        h2conn.initiate_connection()
        h2conn.increment_flow_control_window(WINDOW * 4)
        self.flush()
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            events = self.h2.receive_data(bytes(data))
        except h2.exceptions.ProtocolError as exc:
            log.info("%s:%d: HTTP/2 protocol error: %s", *self.peer, exc)
            self.flush()  # h2 queued a GOAWAY
            self._close()
            return
        # Responses made while the events of one read are handled go out
        # together: one pump, one write (dirty marks that one is due).
        self.batching = True
        try:
            for event in events:
                self._event(event)
                if self.closing:
                    return
        finally:
            self.batching = False
        if self.dirty:
            self.dirty = False
            self.pump()
        else:
            self.flush()

    def _event(self, event: Any) -> None:
        kind = type(event)
        if kind is h2.events.RequestReceived:
            self._on_request(event)
        elif kind is h2.events.DataReceived:
            stream = self.streams.get(event.stream_id)
            if stream is None:
                self.acknowledge(event.stream_id, event.flow_controlled_length)
            else:
                stream.on_data(event.data, event.flow_controlled_length)
                if event.stream_ended is not None:
                    stream.on_request_end()
        elif kind is h2.events.StreamEnded:
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.request_ended:
                stream.on_request_end()
        elif kind is h2.events.StreamReset:
            if event.remote_reset and self._flood("_resets"):
                return
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_reset()
        elif kind is h2.events.TrailersReceived:
            problem = _check_fields(event.headers, trailers=True)
            if problem is not None:
                log.info("%s:%d: HTTP/2 malformed trailers: %s", *self.peer, problem)
                if self._flood("_resets"):
                    return
                self.reset_stream(event.stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_reset()
        elif kind is h2.events.WindowUpdated:
            self.pump()
        elif kind is h2.events.PingReceived:
            self._flood("_pings")
        elif kind is h2.events.RemoteSettingsChanged:
            if not self._flood("_settings"):
                self.pump()
        elif kind is h2.events.ConnectionTerminated:
            # h2 sends nothing after the client's GOAWAY: the streams in
            # flight stop (their handlers are told) rather than answer into it.
            for stream in list(self.streams.values()):
                stream.on_reset()
            self._close()

    def _flood(self, counter: str) -> bool:
        """Count one frame of a kind a flood is made of; past ``FLOOD_LIMIT`` a
        second, close with ENHANCE_YOUR_CALM (True)."""
        now = self.loop.now
        if now - self._window >= 1.0:
            self._window = now
            self._resets = self._pings = self._settings = 0
        count = getattr(self, counter) + 1
        setattr(self, counter, count)
        if count <= FLOOD_LIMIT:
            return False
        log.warning("%s:%d: HTTP/2 %s flood; closed", *self.peer, counter[1:])
        self.h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        self.flush()
        self._close()
        return True

    def _on_request(self, event: Any) -> None:
        stream_id = event.stream_id
        if self.going_away:
            self.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        if len(self.streams) >= self.limits.max_concurrent_streams:
            self.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        fields = event.headers
        key = tuple(fields)
        head = self.heads.get(key)
        if head is None:
            parsed = _parse_head(fields)
            if isinstance(parsed, str):
                log.info("%s:%d: HTTP/2 malformed request: %s", *self.peer, parsed)
                # Resets the client provokes count as its own (MadeYouReset).
                if not self._flood("_resets"):
                    self.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
                return
            head = parsed
            if head.size <= CACHED_HEAD_BYTES:
                if len(self.heads) >= REQUEST_CACHE:
                    self.heads.clear()
                self.heads[key] = head
        stream = self.streams[stream_id] = Stream(self, stream_id)
        stream.on_request(head, event.stream_ended is not None)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for stream in list(self.streams.values()):
            stream.on_reset()
        self.streams.clear()
        self.transport = None

    def pause_writing(self) -> None:
        self.write_blocked = True

    def resume_writing(self) -> None:
        self.write_blocked = False
        self.pump()

    def is_idle(self) -> bool:
        return not self.streams

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY with the last stream id, finish those in flight."""
        if self.closing or self.going_away:
            return
        self.going_away = True
        # A GOAWAY written beside h2 rather than through it: h2's own
        # (close_connection) would refuse every frame after it, and the
        # streams in flight still need the client's WINDOW_UPDATEs.
        from hyperframe.frame import GoAwayFrame

        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self.h2.highest_inbound_stream_id
        goaway.error_code = h2.errors.ErrorCodes.NO_ERROR
        self.flush()
        if self.transport is not None:
            self.transport.write(goaway.serialize())
        if not self.streams:
            self._close()

    # -- output ---------------------------------------------------------------

    def flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        data = self.h2.data_to_send()
        if data:
            transport.write(data)

    def send_head(self, stream_id: int, fields: list[tuple[str, str]], end: bool) -> int:
        """Queue the response head ``fields`` (``:status`` first) of stream
        ``stream_id`` as h2's ``send_headers`` would: HEADERS, CONTINUATION
        frames past the peer's SETTINGS_MAX_FRAME_SIZE, END_STREAM when
        ``end``. Returns the bytes queued ($bytes_sent counts them, as NGINX
        does); raises h2's ``ProtocolError`` (``StreamClosedError``...) when
        the stream cannot send it."""
        h2conn = self.h2
        stream = h2conn.streams.get(stream_id) if self.frames_here else None
        if stream is None or fields[0][1][0] == "1":
            # A stream h2 has closed (it raises what it should), or an
            # informational head (another input of its state machine).
            h2conn.send_headers(stream_id, fields, end_stream=end)
            return sum(len(n) + len(v) + 4 for n, v in fields)  # about what h2 queued
        # The state changes before the encoding, as h2 does (RFC 7541 §4.1
        # changes cannot be undone; none here, but a table size update).
        h2conn.state_machine.process_input(_C_SEND_HEADERS)
        machine = stream.state_machine
        machine.process_input(_S_SEND_HEADERS)
        if end:
            machine.process_input(_S_SEND_END_STREAM)
        block = h2conn.encoder.encode(fields)
        size = len(block)
        limit = h2conn.max_outbound_frame_size
        out = h2conn._data_to_send
        if size <= limit:
            flags = _END_HEADERS | _END_STREAM if end else _END_HEADERS
            out += _FRAME_HEADER.pack(size << 8 | _HEADERS, flags, stream_id)
            out += block
            return size + 9
        out += _FRAME_HEADER.pack(limit << 8 | _HEADERS, _END_STREAM if end else 0, stream_id)
        out += block[:limit]
        for start in range(limit, size, limit):
            piece = block[start : start + limit]
            last = start + limit >= size
            out += _FRAME_HEADER.pack(
                len(piece) << 8 | _CONTINUATION, _END_HEADERS if last else 0, stream_id
            )
            out += piece
        return size + 9 * -(-size // limit)

    def send_data(self, stream_id: int, data: bytes | memoryview, end: bool) -> None:
        """Queue one DATA frame of stream ``stream_id`` as h2's ``send_data``
        would (``data`` within ``window``), charging the stream's and the
        connection's windows; END_STREAM when ``end``. Raises as h2 does."""
        h2conn = self.h2
        stream = h2conn.streams.get(stream_id) if self.frames_here else None
        size = len(data)
        if stream is None or size > self.window(stream_id):
            h2conn.send_data(stream_id, data, end_stream=end)
            return
        h2conn.state_machine.process_input(_C_SEND_DATA)
        machine = stream.state_machine
        machine.process_input(_S_SEND_DATA)
        if end:
            machine.process_input(_S_SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        h2conn.outbound_flow_control_window -= size
        out = h2conn._data_to_send
        out += _FRAME_HEADER.pack(size << 8 | _DATA, _END_STREAM if end else 0, stream_id)
        out += data

    def window(self, stream_id: int) -> int:
        """The bytes of DATA stream ``stream_id`` may send now: its window,
        the connection's, and the peer's SETTINGS_MAX_FRAME_SIZE, the least;
        -1 for a stream h2 no longer holds (closed, its end already handled)."""
        h2conn = self.h2
        stream = h2conn.streams.get(stream_id)
        if stream is None:
            return -1
        window = stream.outbound_flow_control_window
        if h2conn.outbound_flow_control_window < window:
            window = h2conn.outbound_flow_control_window
        limit = h2conn.max_outbound_frame_size
        return window if window < limit else limit

    def pump(self) -> None:
        """Give each stream with output its share of the windows, flushing as it
        goes, until the streams have nothing to send, their windows are shut,
        or the transport holds ``HIGH_WATER`` bytes (then ``resume_writing``
        pumps again)."""
        if self.batching:
            self.dirty = True
            return
        transport = self.transport
        if transport is None:
            return
        while True:
            budget = HIGH_WATER - transport.get_write_buffer_size()
            active = [s for s in self.streams.values() if s.out or s.end_after and not s.ended]
            if budget <= 0 or not active:
                break
            share = max(budget // len(active), 16 * 1024)
            sent = 0
            for stream in active:
                if not stream.reset:
                    sent += stream.send_some(share)
            self.flush()
            if not sent:
                break
        self.flush()

    def acknowledge(self, stream_id: int, size: int) -> None:
        if size:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.h2.acknowledge_received_data(size, stream_id)

    def reset_stream(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, code)

    def forget(self, stream: Stream) -> None:
        if stream.ended and (stream.request_ended or stream.reset):
            self.streams.pop(stream.stream_id, None)
            if self.going_away and not self.streams:
                self.loop.call_soon(self._close)

    def _close(self) -> None:
        self.closing = True
        transport = self.transport
        if transport is not None:
            transport.close()
            # A client that does not read what is queued: dropped after send_timeout.
            self.loop.call_at(self.loop.now + self.server.timeouts.send, transport.abort)

    # -- deadlines ------------------------------------------------------------

    def _arm(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.set_timeout(1.0, self._timer_cb)

    def _on_timer(self) -> None:
        """Once a second: idle connection, stalled requests, zero-window streams."""
        transport = self.transport
        if transport is None or self.closing:
            return
        now = self.loop.now
        limits = self.limits
        if not self.streams:
            if self._idle_since is None:
                self._idle_since = now
            elif now - self._idle_since >= limits.idle_timeout:
                self.shutdown()
                self._close()
                return
        else:
            self._idle_since = None
        send_timeout = self.server.timeouts.send
        queued = transport.get_write_buffer_size()
        if queued and self._last_queued and queued >= self._last_queued:
            # The client takes nothing of what is queued (whatever its windows say).
            if now - self._queue_since >= send_timeout:
                log.info("%s:%d: HTTP/2 send timed out", *self.peer)
                transport.abort()
                return
        else:
            self._queue_since = now
        self._last_queued = queued
        for stream in list(self.streams.values()):
            if (
                not stream.request_ended
                and not stream.body_paused  # held back by its handler, not stalled
                and now - stream.heard_at > limits.recv_timeout
                and (stream.exchange is None or not stream.exchange.done)
            ):
                log.info("%s:%d: HTTP/2 request timed out", *self.peer)
                self.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)
                stream.on_reset()
            elif stream.stalled_since and now - stream.stalled_since > send_timeout:
                log.info("%s:%d: HTTP/2 stream window stayed closed; reset", *self.peer)
                self.reset_stream(stream.stream_id, h2.errors.ErrorCodes.FLOW_CONTROL_ERROR)
                stream.on_reset()
        self.flush()
        self._arm()


class PrefaceSniffer(Protocol):
    """The first protocol of a clear-text connection to an ``http2`` port:
    HTTP/2 if the client opens with the preface (prior knowledge, RFC 9113
    §3.3), else HTTP/1.1. It decides on the first bytes and steps aside."""

    def __init__(
        self, make_h1: Callable[[], Any], make_h2: Callable[[], Any], timeout: float
    ) -> None:
        super().__init__()
        self._make_h1 = make_h1
        self._make_h2 = make_h2
        self._timeout = timeout
        self._seen = b""

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        # Until the first bytes: the header deadline of an HTTP/1.1 connection.
        transport.set_timeout(self._timeout, transport.abort)

    def data_received(self, data: bytes) -> None:
        seen = self._seen + bytes(data)
        size = min(len(seen), len(PREFACE))
        if seen[:size] == PREFACE[:size] and len(seen) < len(PREFACE):
            self._seen = seen  # could still be the preface
            return
        transport = self.transport
        assert transport is not None
        successor = self._make_h2() if seen.startswith(PREFACE) else self._make_h1()
        transport.set_protocol(successor)
        successor.connection_made(transport)
        successor.data_received(seen)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class ALPNChooser(Protocol):
    """The first protocol of a TLS connection to an ``http2`` block: once the
    handshake is done, HTTP/2 if ALPN chose ``h2`` (RFC 9113 §3.2), else
    HTTP/1.1; it steps aside in ``connection_made``."""

    def __init__(self, make_h1: Callable[[], Any], make_h2: Callable[[], Any]) -> None:
        super().__init__()
        self._make_h1 = make_h1
        self._make_h2 = make_h2

    def connection_made(self, transport: Transport) -> None:
        chosen = transport.get_extra_info("alpn_protocol")
        successor = self._make_h2() if chosen == "h2" else self._make_h1()
        transport.set_protocol(successor)
        successor.connection_made(transport)
