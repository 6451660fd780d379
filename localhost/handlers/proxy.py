"""``proxy_pass``: a reverse proxy inside the event loop (NGINX's ``ngx_http_proxy_module``).

A location with ``proxy_pass http://NAME[/URI]`` (``NAME`` an ``upstream``
group, or ``HOST:PORT`` resolved at load) sends each request to one server
of the group and streams the answer back. Every upstream socket is a
non-blocking ``connect()`` transport in the worker's loop, as client
sockets are; nothing blocks and no thread is used.

Request (RFC 9110 §7.6): the method; the target with the location's prefix
replaced by ``URI`` when ``proxy_pass`` has one (``location /api/`` with
``proxy_pass http://app/`` sends ``/api/x?y`` as ``/x?y``), else the
request's target as received; the fields minus the hop-by-hop ones
(Connection and the fields it names, Keep-Alive, TE, Trailer,
Transfer-Encoding, Upgrade, Proxy-*) and Expect, plus ``proxy_set_header``
(defaults: ``Host $proxy_host``, ``X-Forwarded-For
$proxy_add_x_forwarded_for``, ``X-Forwarded-Proto $scheme``; an empty value
removes a field). The body is re-framed from the parsed message, never
copied as bytes: Content-Length as received, or chunked as decoded (never
both), so a request the strict parser accepted cannot be read differently
upstream (no smuggling). It is streamed as it arrives; the client is paused
while the upstream socket holds more than ``UPSTREAM_HIGH_WATER`` bytes.
``Connection: close`` goes up unless the group keeps connections
(``keepalive N``); a request with ``Connection: upgrade`` and ``Upgrade``
passes both on.

Response: parsed by ``localhost.http.client.ResponseParser`` (Content-Length,
chunked, close-delimited, 1xx, 204/304/HEAD), fields minus hop-by-hop ones
and Date/Server (this server writes its own, as NGINX), the body streamed
to the client with its own framing (Content-Length when known, else chunked
on HTTP/1.1). While the client's buffer is above its high-water mark the
upstream socket is not read (``proxy_buffering on`` first lets
``PROXY_BUFFER`` more bytes through), so a slow client never makes the
worker hold a large response. A 101 answer to an Upgrade request turns both
connections into a byte tunnel (``Tunnel``) until either side closes, with
``proxy_read_timeout`` as its idle limit.

Errors: a refused, reset or failed connection → the next server when
``proxy_next_upstream`` allows it (``error``, ``timeout``, ``invalid_header``,
``http_500|502|503|504|403|404|429``; only while nothing has been sent to
the client nor any body byte upstream, and for a non-idempotent method
only with ``non_idempotent`` or when the request never reached a server),
else 502; ``proxy_connect_timeout``, ``proxy_read_timeout`` (between two
reads) and ``proxy_send_timeout`` (between two writes) → 504; a malformed
response → 502. Once the head has gone to the client, a failure drops the
client's connection (its framing cannot be completed). Each is logged with
the upstream address. ``$upstream_addr``, ``$upstream_status`` and
``$upstream_response_time`` list every server tried.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import quote as url_quote

from lark import Token

from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    on_off,
    quote,
    time_value,
)
from localhost.config.model import Location
from localhost.handlers.base import ALL_METHODS, BodyPolicy, Exchange, Handler, HandlerSpec
from localhost.handlers.error_pages import error_response
from localhost.handlers.redirect import compile_value
from localhost.http.client import (
    END,
    LAST_CHUNK,
    MEMO_RESPONSES,
    NEED_DATA,
    Data,
    ResponseHead,
    ResponseParser,
    chunk,
    request_head,
)
from localhost.http.errors import HTTPError
from localhost.http.message import Response
from localhost.http.writer import encode_fields
from localhost.io import Protocol, Transport, connect
from localhost.upstream import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    PROXY_BUFFER,
    UPSTREAM_HIGH_WATER,
    WORKER,
    Balancer,
    Peer,
    Upstream,
    UpstreamRecord,
    Upstreams,
    UpstreamServer,
    parse_address,
    resolve,
)
from localhost.variables import Template, VariableContext

log = logging.getLogger("localhost")


#: Hop-by-hop fields (RFC 9110 §7.6.1) and the fields the request writer
#: frames itself; Expect is answered here (the body is read before it goes up).
_REQUEST_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "host",
        "content-length",
        "expect",
    }
)
#: Response fields not passed on: hop-by-hop, framing, and Date/Server (ours
#: are written; NGINX hides the upstream's too).
_RESPONSE_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "content-length",
        "date",
        "server",
    }
)
_NEXT_UPSTREAM = frozenset(
    {
        "error",
        "timeout",
        "invalid_header",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
        "http_403",
        "http_404",
        "http_429",
        "non_idempotent",
        "off",
    }
)
# Statuses that count as a server failure when proxy_next_upstream names them.
_FAILURE_STATUSES = frozenset({500, 502, 503, 504, 429})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_NO_PEERS: frozenset[Peer] = frozenset()


# -- configuration ------------------------------------------------------------


class ProxyTarget:
    """A ``proxy_pass`` value as written: ``host`` (an upstream name or a
    host), ``port`` (None when not written), ``uri`` (None without a URI
    part), and its token; ``group`` is set when the location is checked."""

    __slots__ = ("host", "port", "uri", "token", "group")

    def __init__(self, host: str, port: int | None, uri: str | None, token: Token) -> None:
        self.host = host
        self.port = port
        self.uri = uri
        self.token = token
        self.group: Upstream | None = None


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """What a ``proxy_pass`` location does, fixed at load (``location.options["proxy_pass"]``).

    ``headers``: ``(name, template)`` of ``proxy_set_header`` merged with the
    defaults, Host apart (``host``); an empty static value removes the
    field. ``set_names``: their lower-case names (dropped from the request).
    Times in seconds.
    """

    upstream: Upstream
    uri: str | None
    proxy_host: str
    host: Template | None
    headers: tuple[tuple[str, Template], ...]
    set_names: frozenset[str]
    connect_timeout: float
    read_timeout: float
    send_timeout: float
    next_upstream: frozenset[str]
    next_upstream_tries: int
    buffering: bool
    #: The statuses that ``next_upstream`` names (``http_502`` → 502).
    retry_statuses: frozenset[int] = frozenset()
    #: Whether every header template depends on the request head, the
    #: client's address and the scheme alone (``_REQUEST_VARIABLES``): the
    #: upstream head can then be remembered for these (``_request_head``).
    memo: bool = False


def _proxy_pass(v: Validator, args: list[Token]) -> ProxyTarget:
    url = args[0]
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() != "http":
        if sep and scheme.lower() == "https":
            v.fail(url, f"proxy_pass {quote(url)}: https upstreams are not supported")
        v.fail(url, f"invalid URL {quote(url)} in proxy_pass (expected http://HOST[:PORT][/URI])")
    if "$" in text:
        v.fail(url, f"proxy_pass {quote(url)}: variables are not supported (names resolve at load)")
    slash = rest.find("/")
    authority, uri = (rest, None) if slash < 0 else (rest[:slash], rest[slash:])
    if not authority or any(c in authority for c in "@?# ") or not text.isprintable():
        v.fail(url, f"invalid URL {quote(url)} in proxy_pass")
    if uri is not None and (" " in uri or not uri.isascii()):
        v.fail(url, f"invalid URI part in proxy_pass {quote(url)}")
    try:
        host, port = parse_address(authority, 0)
    except ValueError as exc:
        v.fail(url, f"invalid address in proxy_pass {quote(url)}: {exc}")
    return ProxyTarget(host, port or None, uri, url)


def _set_header(v: Validator, args: list[Token]) -> tuple[str, Template]:
    name, value = args
    if not name or any(c in str(name) for c in ' \t:"(),/;<=>?@[\\]{}') or not name.isascii():
        v.fail(name, f"invalid field name {quote(name)} in proxy_set_header")
    if name.lower() in ("content-length", "transfer-encoding", "connection"):
        v.fail(name, f"proxy_set_header {quote(name)}: the proxy writes this field itself")
    return str(name), compile_value(v, value, "proxy_set_header value")


def _next_upstream(v: Validator, args: list[Token]) -> frozenset[str]:
    for arg in args:
        if arg not in _NEXT_UPSTREAM:
            v.fail(
                arg, f"invalid value {quote(arg)} (expected {', '.join(sorted(_NEXT_UPSTREAM))})"
            )
    if "off" in args and len(args) > 1:
        v.fail(args[0], '"off" cannot go with other values')
    return frozenset(str(a) for a in args)


def _tries(v: Validator, args: list[Token]) -> int:
    text = str(args[0])
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        v.fail(args[0], f"invalid number {quote(args[0])}")
    return int(text)


def _check(v: Validator, scopes: tuple[Scope, Scope, Scope]) -> None:
    own = scopes[0]
    entry = own.values.get("proxy_pass")
    if entry is None:
        return
    target: ProxyTarget = entry[0]
    for other in ("cgi", "redirect", "wsgi", "app", "websocket_exec"):
        if other in own.values or own.lists.get(other):
            v.fail(target.token, f'"proxy_pass" and "{other}" cannot be in one location')
    groups = scopes[2].values.get("upstream")
    known = groups[0] if groups is not None else {}
    if target.port is None and target.host in known:
        target.group = known[target.host][0]
        return
    port = target.port or 80
    try:
        addresses = resolve(target.host, port)
    except OSError as exc:
        v.fail(target.token, f"host not found in upstream {quote(target.token)}: {exc}")
    name = f"{target.host}:{port}"
    servers = tuple(UpstreamServer(ip, port, name) for ip in addresses)
    target.group = Upstream(name, servers, implicit=True)


def _settings(scopes: tuple[Scope, Scope, Scope]) -> Any:
    location, server, main = scopes
    target: ProxyTarget | None = location.get("proxy_pass")
    if target is None or target.group is None:
        return None
    entries = (
        location.lists.get("proxy_set_header")
        or server.lists.get("proxy_set_header")
        or main.lists.get("proxy_set_header")
        or []
    )
    configured: dict[str, tuple[str, Template]] = {}
    for (name, template), _ in entries:
        configured[name.lower()] = (name, template)
    host = configured.pop("host", None)
    merged = dict(_DEFAULT_HEADERS)
    merged.update(configured)
    headers = tuple((name, template) for name, template in merged.values() if template.static != "")
    proxy_host = target.host if target.port is None else f"{target.host}:{target.port}"
    host_template = host[1] if host is not None else None
    templates = [template for _, template in headers]
    if host_template is not None:
        templates.append(host_template)
    memo = all(_request_variable(name) for t in templates for name in t.names)
    next_upstream = inherit("proxy_next_upstream", frozenset({"error", "timeout"}), *scopes)
    retry_statuses = frozenset(int(v[5:]) for v in next_upstream if v.startswith("http_"))
    return ProxySettings(
        upstream=target.group,
        uri=target.uri,
        proxy_host=proxy_host,
        host=host_template,
        headers=headers,
        set_names=frozenset(merged) | {"host"},
        connect_timeout=inherit("proxy_connect_timeout", DEFAULT_CONNECT_TIMEOUT, *scopes),
        read_timeout=inherit("proxy_read_timeout", DEFAULT_READ_TIMEOUT, *scopes),
        send_timeout=inherit("proxy_send_timeout", DEFAULT_SEND_TIMEOUT, *scopes),
        next_upstream=next_upstream,
        next_upstream_tries=inherit("proxy_next_upstream_tries", 0, *scopes),
        buffering=inherit("proxy_buffering", True, *scopes),
        memo=memo,
        retry_statuses=retry_statuses,
    )


#: Variables whose value is a function of the request head (as the request
#: parser's memo shares it), the client's address and the scheme, for a
#: given location: an upstream head made of them can be remembered.
_REQUEST_VARIABLES = frozenset(
    {
        "remote_addr",
        "scheme",
        "https",
        "host",
        "proxy_host",
        "proxy_add_x_forwarded_for",
        "request_method",
        "request_uri",
        "args",
        "query_string",
        "is_args",
        "content_type",
        "content_length",
    }
)
_REQUEST_FAMILIES: tuple[str, ...] = ("http_", "arg_", "cookie_")


def _request_variable(name: str) -> bool:
    return name in _REQUEST_VARIABLES or name.startswith(_REQUEST_FAMILIES)


def _default_headers() -> dict[str, tuple[str, Template]]:
    from localhost.variables import compile_template

    return {
        "x-forwarded-for": ("X-Forwarded-For", compile_template("$proxy_add_x_forwarded_for")),
        "x-forwarded-proto": ("X-Forwarded-Proto", compile_template("$scheme")),
    }


_DEFAULT_HEADERS = MappingProxyType(_default_headers())


def _time(name: str) -> Directive:
    return Directive((MAIN, SERVER, LOCATION), 1, 1, time_value, syntax=f"{name} TIME")


DIRECTIVES = {
    "proxy_pass": Directive(
        (LOCATION,),
        1,
        1,
        _proxy_pass,
        syntax="proxy_pass http://UPSTREAM|HOST[:PORT][/URI]",
        derive=_settings,
        check=_check,
        rootless=True,
    ),
    "proxy_set_header": Directive(
        (MAIN, SERVER, LOCATION),
        2,
        2,
        _set_header,
        repeatable=True,
        syntax="proxy_set_header FIELD VALUE",
    ),
    "proxy_connect_timeout": _time("proxy_connect_timeout"),
    "proxy_read_timeout": _time("proxy_read_timeout"),
    "proxy_send_timeout": _time("proxy_send_timeout"),
    "proxy_next_upstream": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        None,
        _next_upstream,
        syntax="proxy_next_upstream error|timeout|invalid_header|http_5xx...|off",
    ),
    "proxy_next_upstream_tries": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _tries, syntax="proxy_next_upstream_tries NUMBER"
    ),
    "proxy_buffering": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, on_off, syntax="proxy_buffering on|off"
    ),
}


# -- the request target -----------------------------------------------------------


def origin_form(target: str) -> str:
    """The path and query of a request-target (an absolute-form target without
    its scheme and authority; an empty path is ``/``: RFC 9112 §3.2)."""
    if target.startswith("/") or "://" not in target:
        return target
    rest = target.split("://", 1)[1]
    for index, char in enumerate(rest):
        if char in "/?":
            rest = rest[index:]
            break
    else:
        return "/"
    return rest if rest.startswith("/") else "/" + rest


def upstream_target(target: str, path: str, location: Location, uri: str | None) -> str:
    """The request-target sent upstream, as NGINX's ``proxy_pass``.

    Without a URI part (``uri`` None) the client's target goes as received
    (origin-form). With one, the part of the path that the (prefix)
    ``location`` matched is replaced by ``uri`` and the query kept:
    ``location /api/`` + ``proxy_pass http://app/v1/`` sends ``/api/x?q``
    as ``/v1/x?q``. The path replaced is ``path``, the decoded and normalized
    one that chose the location, percent-encoded again (as NGINX sends its
    normalized URI): the received text could hold dot segments or ``%2F``
    that an upstream would resolve outside ``uri``. The loader keeps a
    prefix without its trailing slash, so when ``uri`` ends in ``/`` the
    slash after the prefix goes with it (also for ``location /api``, where
    NGINX would send ``//x``). A regex or named location passes the target
    unchanged.
    """
    origin = origin_form(target)
    if uri is None or location.modifier not in ("", "^~", "="):
        return origin
    _, question, query = origin.partition("?")
    prefix = location.prefix
    # The decoded path against the decoded prefix; only the rest is encoded
    # again (a prefix may hold characters that encoding would change).
    rest = path[len(prefix) :] if path.startswith(prefix) else path
    rest = url_quote(rest, safe="/:@!$&'()*+,;=-._~", errors="surrogateescape")
    if uri.endswith("/") and rest.startswith("/"):
        rest = rest[1:]  # "/api/x" under "/api/" with "http://app/": "/x", never "//x"
    return uri + rest + question + query


# -- the connection to a server ------------------------------------------------------


class UpstreamConnection(Protocol):
    """One connection to one upstream server; it outlives a request when pooled.

    While a request uses it, ``handler`` gets its events; while idle in the
    pool, any byte or the end from the server closes it (and takes it out
    of the pool), so a connection the server closed is never handed out.
    """

    __slots__ = ("peer", "balancer", "parser", "handler", "connected", "reused")

    #: What arrives is copied at once (into the response parser, or by the
    #: client's transport in a tunnel): a view of the receive buffer saves
    #: allocating a 64 KiB string per read.
    accepts_memoryview = True

    def __init__(self, peer: Peer, balancer: Balancer) -> None:
        super().__init__()
        self.peer = peer
        self.balancer = balancer
        self.parser = ResponseParser(memo=balancer.head_memo)
        self.handler: ProxyHandler | None = None
        self.connected = False
        self.reused = False

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self.connected = True
        if self.handler is not None:
            self.handler.upstream_connected()

    def data_received(self, data: bytes | memoryview) -> None:
        handler = self.handler
        if handler is None:
            self.close_idle()  # nothing was asked: the framing is lost
            return
        handler.upstream_data(data)

    def eof_received(self) -> bool | None:
        handler = self.handler
        if handler is None:
            self.close_idle()
            return None
        return handler.upstream_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.upstream_lost(exc)
        else:
            self.balancer.forget(self)

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_resume_writing()

    def close_idle(self) -> None:
        """Close it (idle: out of the pool, too old, or the server spoke)."""
        self.balancer.forget(self)
        if self.transport is not None:
            self.transport.abort()


class Tunnel(Protocol):
    """The client's side of an upgraded connection: bytes to the upstream and back."""

    __slots__ = ("handler",)

    def __init__(self, handler: ProxyHandler) -> None:
        super().__init__()
        self.handler = handler

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self.handler.client = transport

    def data_received(self, data: bytes) -> None:
        self.handler.tunnel_to_upstream(data)

    def eof_received(self) -> bool | None:
        self.handler.tunnel_end()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.handler.client = None
        self.handler.tunnel_end()

    def pause_writing(self) -> None:
        upstream = self.handler.upstream_transport()
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        upstream = self.handler.upstream_transport()
        if upstream is not None:
            upstream.resume_reading()


# -- the handler ----------------------------------------------------------------------


class ProxyHandler(Handler):
    """One proxied request: choose a server, send the request, stream the answer."""

    __slots__ = (
        "settings",
        "balancer",
        "request",
        "record",
        "head_bytes",
        "chunked",
        "peer",
        "conn",
        "tried",
        "tries",
        "queued",
        "body_written",
        "client_ended",
        "end_written",
        "client_paused",
        "upstream_paused",
        "over",
        "response",
        "finished",
        "began",
        "client",
        "failed_status",
    )

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        location = exchange.location
        assert location is not None
        settings: ProxySettings = location.options["proxy_pass"]
        self.settings = settings
        upstreams: Upstreams = getattr(exchange.services, "upstreams", None) or WORKER
        self.balancer = upstreams.balancer(settings.upstream)
        self.request = exchange.request
        self.record = UpstreamRecord()
        if exchange.cleanups is None:
            exchange.cleanups = []
        exchange.cleanups.append(self.record)
        self.peer: Peer | None = None
        self.conn: UpstreamConnection | None = None
        self.tried: frozenset[Peer] = _NO_PEERS
        self.tries = 0
        self.queued = bytearray()  # body bytes taken before the connection was up
        self.body_written = 0
        self.client_ended = False
        self.end_written = False
        self.client_paused = False
        self.upstream_paused = False
        self.over = 0
        self.response: ResponseHead | None = None
        self.finished = False
        self.began = 0.0
        self.client: Transport | None = None  # the client's transport, once tunnelled
        self.failed_status = 0  # of the last server that failed (502, 504)

    # -- request ----------------------------------------------------------------

    def on_head(self) -> BodyPolicy:
        request = self.request
        self.chunked = request.chunked
        try:
            self.head_bytes = self._request_head()
        except ValueError as exc:
            log.error("proxy: cannot send %s %s upstream: %s", request.method, request.target, exc)
            raise HTTPError(500, f"invalid upstream request: {exc}") from None
        # Known before connecting: a request without a body is whole at once.
        self.client_ended = not request.has_body
        self._connect(first=True)
        if self.finished or self.client_ended:
            return BodyPolicy.IGNORE
        return BodyPolicy.STREAM

    def _request_head(self) -> bytes:
        settings = self.settings
        if not settings.memo:
            return self._make_request_head()
        exchange = self.exchange
        # The request parser hands out one Request per distinct head: a
        # repeated request from the same address finds its upstream head here.
        key = (self.request, exchange.peer[0], exchange.scheme)
        memo = self.balancer.request_memo
        found = memo.get(key)
        if found is not None and found[0] is settings:
            return found[1]
        head = self._make_request_head()
        if len(memo) >= MEMO_RESPONSES:
            memo.clear()
        memo[key] = (settings, head)
        return head

    def _make_request_head(self) -> bytes:
        settings = self.settings
        exchange = self.exchange
        request = self.request
        ctx = cast(VariableContext, exchange)
        drop = settings.set_names
        headers = request.headers
        connection = headers.get("connection")
        named: set[str] = set()
        upgrade: str | None = None
        if connection is not None:
            named = {t.strip(" \t").lower() for t in connection.split(",")}
            if "upgrade" in named:
                upgrade = headers.get("upgrade")
        fields = [
            (name, value)
            for name, value in headers
            if name not in _REQUEST_DROP
            and name not in drop
            and name not in named
            and not name.startswith("proxy-")
        ]
        for name, template in settings.headers:
            value = template.render(ctx)
            if value:
                fields.append((name, value))
        if upgrade is not None:
            fields.append(("Upgrade", upgrade))
            fields.append(("Connection", "upgrade"))
        elif not settings.upstream.keepalive:
            fields.append(("Connection", "close"))
        host = settings.host.render(ctx) if settings.host is not None else settings.proxy_host
        location = exchange.location
        assert location is not None
        target = upstream_target(request.target, request.path, location, settings.uri)
        length = None if request.chunked else (request.content_length or 0)
        return request_head(request.method, target, fields, host=host, body_length=length)

    def _connect(self, first: bool = False) -> None:
        """Send the request to the next server (a fresh or pooled connection)."""
        settings = self.settings
        balancer = self.balancer
        now = time.monotonic()
        peer = balancer.select(self.exchange.peer[0], now, self.tried)
        if peer is None:
            if not self.failed_status:
                log.error(
                    "proxy: no live upstreams in %r for %s %s",
                    settings.upstream.name,
                    self.request.method,
                    self.request.target,
                )
            # Every server tried: the last failure's status (504 after a timeout).
            self._error(self.failed_status or 502, first)
            return
        self.peer = peer
        self.tries += 1
        record = self.record
        record.addresses.append(peer.address)
        record.statuses.append(0)
        record.times.append(0.0)
        self.began = now
        # The pool holds this module's connections only.
        conn: UpstreamConnection | None = balancer.take(peer)  # type: ignore[assignment]
        if conn is not None:
            conn.reused = True
        else:
            conn = UpstreamConnection(peer, balancer)
            try:
                conn.transport = connect(
                    self.exchange.loop,
                    peer.server.host,
                    peer.server.port,
                    lambda: conn,
                    timeout=settings.connect_timeout,
                )
            except OSError as exc:
                self.conn = conn
                self.upstream_lost(exc)
                return
        self.conn = conn
        conn.handler = self
        conn.parser.expect_response(self.request.method)
        transport = conn.transport
        if transport is None:
            return
        transport.write(self.head_bytes)
        if not conn.connected:
            return  # upstream_connected follows
        if self.client_ended and not self.chunked and not self.queued:
            # A pooled connection (reading) and a request without a body:
            # all of it went up, the response is awaited.
            self.end_written = True
            transport.set_timeout(settings.read_timeout, self._on_timeout)
        else:
            self.upstream_connected()

    def upstream_connected(self) -> None:
        """The connection is up: send the head and what the body gave so far."""
        conn = self.conn
        if conn is None or conn.transport is None:
            return
        transport = conn.transport
        self._flush_body()
        transport.resume_reading()
        if self.client_paused and transport.get_write_buffer_size() <= UPSTREAM_HIGH_WATER:
            self.client_paused = False
            self.exchange.resume_body()

    def _flush_body(self) -> None:
        conn = self.conn
        if conn is None or conn.transport is None or not conn.connected:
            return
        transport = conn.transport
        queued = self.queued
        if queued:
            data = bytes(queued)
            queued.clear()
            self.body_written += len(data)
            transport.write(chunk(data) if self.chunked else data)
        if not self.client_ended:
            transport.set_timeout(self.settings.send_timeout, self._on_timeout)
        elif not self.end_written:
            self.end_written = True
            if self.chunked:
                transport.write(LAST_CHUNK)
            transport.set_timeout(self.settings.read_timeout, self._on_timeout)

    def on_body(self, data: bytes) -> bool:
        if self.finished:
            return True
        conn = self.conn
        if conn is None or not conn.connected or conn.transport is None:
            # Kept until a server accepts: a refused connection can still be retried.
            self.queued += data
            self.client_paused = True
            return False
        transport = conn.transport
        self.body_written += len(data)
        transport.write(chunk(data) if self.chunked else data)
        transport.set_timeout(self.settings.send_timeout, self._on_timeout)
        if transport.get_write_buffer_size() > UPSTREAM_HIGH_WATER:
            self.client_paused = True
            return False
        return True

    def on_body_end(self) -> None:
        self.client_ended = True
        if not self.finished and not self.end_written:
            self._flush_body()

    def upstream_pause_writing(self) -> None:
        pass  # on_body looks at the buffer size itself

    def upstream_resume_writing(self) -> None:
        if self.client is not None:  # tunnelled
            self.client.resume_reading()
            return
        if self.client_paused and not self.finished:
            self.client_paused = False
            self.exchange.resume_body()

    # -- response ---------------------------------------------------------------

    def upstream_data(self, data: bytes | memoryview) -> None:
        conn = self.conn
        if conn is None:
            return
        if self.client is not None:  # tunnelled
            self.client.write(data)
            self._tunnel_active()
            return
        conn.parser.feed(data)
        self._events()
        # Between two reads (none once the response is complete or the client stalls it).
        if self.conn is conn and not self.finished and not self.upstream_paused:
            transport = conn.transport
            if transport is not None:
                transport.set_timeout(self.settings.read_timeout, self._on_timeout)

    def upstream_eof(self) -> bool | None:
        conn = self.conn
        if conn is None or self.client is not None:
            self.tunnel_end()
            return None
        conn.parser.feed_eof()
        self._events()
        return None

    def _events(self) -> None:
        conn = self.conn
        exchange = self.exchange
        while conn is not None and self.conn is conn and not self.finished:
            try:
                event = conn.parser.next_event()
            except HTTPError as exc:
                self._failed("invalid_header", 502, exc.detail, failure=True)
                return
            if event is NEED_DATA:
                return
            if type(event) is ResponseHead:
                if event.interim:
                    continue
                status = event.status
                self.record.statuses[-1] = status
                if status == 101:
                    self._switch(event)
                    return
                if status in self.settings.retry_statuses and self._retry_status(status):
                    return
                if (
                    event.content_length is not None
                    and not event.chunked
                    and status >= 200
                    and status != 204
                    and status != 304
                    and self.request.method != "HEAD"
                ):
                    # A body that came whole with its head goes out with it,
                    # in one write (most small responses).
                    body = conn.parser.whole_body()
                    if body is not None:
                        self.response = event
                        self._complete(body)
                        return
                self._start(event)
            elif event is END:
                self._complete()
                return
            elif type(event) is Data and not exchange.done:
                self._write(event.data)

    def _write(self, data: bytes) -> None:
        if not self.exchange.write(data):
            self.over += len(data)
            if not self.settings.buffering or self.over > PROXY_BUFFER:
                self._pause_upstream()

    def _start(self, head: ResponseHead) -> None:
        self.response = head
        status = head.status
        fields = self._response_fields(head)[0]
        if self.request.method == "HEAD":
            length = None if head.chunked else head.content_length
        elif status < 200 or status == 204 or status == 304 or head.chunked:
            length = None
        else:
            length = head.content_length
        self.exchange.start(Response(status, fields), length)
        if self.exchange.done:  # the head could not be written
            self._drop_upstream(failed=False)

    def _pause_upstream(self) -> None:
        conn = self.conn
        if conn is not None and conn.transport is not None and not self.upstream_paused:
            self.upstream_paused = True
            conn.transport.pause_reading()
            conn.transport.set_timeout(None)  # the client is slow, not the server

    def on_writable(self) -> None:
        self.over = 0
        conn = self.conn
        if self.upstream_paused and conn is not None and conn.transport is not None:
            self.upstream_paused = False
            conn.transport.resume_reading()
            conn.transport.set_timeout(self.settings.read_timeout, self._on_timeout)

    def _complete(self, body: bytes | None = None) -> None:
        """The response has been read whole: pool the connection, end the
        exchange (``body``: send the whole response, head and body at once)."""
        conn = self.conn
        peer = self.peer
        assert conn is not None and peer is not None
        head = self.response
        self.finished = True
        now = time.monotonic()
        self.record.times[-1] = now - self.began
        self.conn = None
        conn.handler = None
        transport = conn.transport
        balancer = self.balancer
        reusable = (
            head is not None
            and head.keep_alive
            and self.end_written
            and conn.parser.idle
            and transport is not None
            and not transport.is_closing()
        )
        if reusable and balancer.put(peer, conn):
            assert transport is not None
            conn.reused = False
            if self.upstream_paused:
                transport.resume_reading()  # an idle connection listens for the server
            transport.set_timeout(balancer.upstream.keepalive_timeout, conn.close_idle)
        elif transport is not None:
            transport.abort()
        balancer.release(peer, False, now)
        self.peer = None
        if body is None:
            self.exchange.finish()
            return
        assert head is not None
        fields, raw = self._response_fields(head)
        self.exchange.send(Response(head.status, fields, body, raw_fields=raw))

    def _response_fields(self, head: ResponseHead) -> tuple[list[tuple[str, str]], bytes | None]:
        """The fields of ``head`` for the client, and encoded with its
        Content-Length (None when it has none), made once per head remembered
        by the response parser (whose copies share ``headers``)."""
        headers = head.headers
        memo = self.balancer.fields_memo
        found = memo.get(id(headers))
        if found is not None and found[0] is headers:
            return found[1], found[2]
        fields = _response_fields(head)
        raw: bytes | None = None
        length = head.content_length
        if length is not None:
            try:
                raw = encode_fields(fields) + b"Content-Length: %d\r\n" % length
            except ValueError:
                raw = None  # the writer refuses it again, with the 500 it answers
        if len(memo) >= MEMO_RESPONSES:
            memo.clear()
        # The entry holds ``headers``: its id cannot be reused while it is here.
        memo[id(headers)] = (headers, fields, raw)
        return fields, raw

    # -- failures ---------------------------------------------------------------

    def upstream_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        if conn is None or self.finished:
            if self.client is not None:
                self.tunnel_end()
            return
        if self.client is not None:
            self.tunnel_end()
            return
        if isinstance(exc, TimeoutError) and not conn.connected:
            self._failed("timeout", 504, "upstream timed out while connecting", failure=True)
            return
        if exc is None:
            what = "upstream prematurely closed connection"
        else:
            what = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        if conn.reused and self.response is None and self._may_repeat(stale=True):
            # The server closed an idle connection as it was reused: not its fault.
            log.info("proxy: %s on a reused connection to %s; retrying", what, peer_name(self.peer))
            self._retry(failed=False, forget_peer=False)
            return
        self._failed("error", 502, what, failure=True)

    def _on_timeout(self) -> None:
        if self.finished:
            return
        what = "reading the response" if self.end_written else "sending the request"
        self._failed("timeout", 504, f"upstream timed out while {what}", failure=True)

    def _retry_status(self, status: int) -> bool:
        """A status named by ``proxy_next_upstream``: try the next server instead."""
        if status not in self.settings.retry_statuses or not self._may_repeat():
            return False
        if self._out_of_tries():
            return False
        peer = self.peer
        tried = self.tried if peer is None else self.tried | {peer}
        if not self.balancer.has_other(time.monotonic(), tried):
            # The last server's answer is the answer (NGINX relays it): not
            # a 502, and not a failure that would take the server out.
            return False
        log.warning(
            "proxy: upstream %s answered %d; trying the next one", peer_name(self.peer), status
        )
        self._retry(failed=status in _FAILURE_STATUSES)
        return True

    def _may_repeat(self, stale: bool = False) -> bool:
        """Whether the request may go to another server (RFC 9110 §9.2.2)."""
        if self.exchange.started or self.exchange.done or self.body_written:
            return False
        conn = self.conn
        if stale:
            return self.request.method in _IDEMPOTENT or self.request.has_body
        reached = conn is not None and conn.connected
        return (
            not reached
            or self.request.method in _IDEMPOTENT
            or "non_idempotent" in self.settings.next_upstream
        )

    def _out_of_tries(self) -> bool:
        limit = self.settings.next_upstream_tries
        return bool(limit) and self.tries >= limit

    def _failed(self, kind: str, status: int, what: str, failure: bool) -> None:
        """An upstream failure of ``kind`` (error, timeout, invalid_header)."""
        request = self.request
        log.error(
            "proxy: %s, client %s, request %s %s, upstream %s",
            what,
            self.exchange.peer[0],
            request.method,
            request.target,
            peer_name(self.peer),
        )
        self.failed_status = status
        if kind in self.settings.next_upstream and self._may_repeat() and not self._out_of_tries():
            self._retry(failed=failure)
            return
        self._drop_upstream(failed=failure)
        self.finished = True
        exchange = self.exchange
        if exchange.started:
            exchange.abort("upstream failed")
        else:
            self._error(status, False)

    def _retry(self, failed: bool, forget_peer: bool = True) -> None:
        peer = self.peer
        self._drop_upstream(failed=failed)
        if peer is not None and forget_peer:
            self.tried = self.tried | {peer}
        self.response = None
        self.end_written = False
        self._connect()

    def _drop_upstream(self, failed: bool) -> None:
        """Close this request's upstream connection and settle its server."""
        conn, self.conn = self.conn, None
        peer = self.peer
        if self.record.times and not self.record.times[-1]:
            self.record.times[-1] = time.monotonic() - self.began
        if conn is not None:
            conn.handler = None
            if conn.transport is not None:
                conn.transport.abort()
        if peer is not None:
            self.balancer.release(peer, failed, time.monotonic())
            self.peer = None

    def _error(self, status: int, raise_it: bool) -> None:
        self.finished = True
        if raise_it:
            raise HTTPError(status, "upstream failed")
        exchange = self.exchange
        location = exchange.location
        pages = location.error_pages if location is not None else None
        exchange.send(error_response(status, pages, cache=exchange.services.error_pages))

    def on_abort(self, reason: str) -> None:
        if self.client is not None:
            return  # the tunnel outlives the exchange
        if not self.finished:
            self.finished = True
            if log.isEnabledFor(logging.INFO) and self.conn is not None:
                log.info(
                    "proxy: client went away (%s); closing upstream %s",
                    reason,
                    peer_name(self.peer),
                )
        self._drop_upstream(failed=False)

    # -- tunnel -------------------------------------------------------------------

    def _switch(self, head: ResponseHead) -> None:
        conn = self.conn
        assert conn is not None
        if "upgrade" not in (self.request.headers.get("connection") or "").lower():
            self._failed("invalid_header", 502, "101 to a request without Upgrade", failure=True)
            return
        fields = [(n, v) for n, v in head.headers if n not in _RESPONSE_DROP]
        fields.append(("Connection", "upgrade"))
        fields.append(("Upgrade", head.headers.get("upgrade") or ""))
        rest = conn.parser.take_buffered()
        self.finished = True
        self.record.times[-1] = time.monotonic() - self.began
        if not self.exchange.upgrade(Response(101, fields), lambda: Tunnel(self)):
            self._drop_upstream(failed=False)
            self.exchange.abort("upgrade refused")
            return
        if rest and self.client is not None:
            self.client.write(rest)
        self._tunnel_active()

    def upstream_transport(self) -> Transport | None:
        conn = self.conn
        return conn.transport if conn is not None else None

    def tunnel_to_upstream(self, data: bytes) -> None:
        transport = self.upstream_transport()
        if transport is not None:
            transport.write(data)
            if transport.get_write_buffer_size() > UPSTREAM_HIGH_WATER and self.client is not None:
                self.client.pause_reading()
            self._tunnel_active()

    def _tunnel_active(self) -> None:
        transport = self.upstream_transport()
        if transport is not None:
            transport.set_timeout(self.settings.read_timeout, self.tunnel_end)

    def tunnel_end(self) -> None:
        """Either side closed (or the tunnel was idle too long): close both."""
        client, self.client = self.client, None
        conn, self.conn = self.conn, None
        if client is not None:
            client.close()
        if conn is not None:
            conn.handler = None
            if conn.transport is not None:
                conn.transport.close()
        if self.peer is not None:
            self.balancer.release(self.peer, False, time.monotonic())
            self.peer = None


def _response_fields(head: ResponseHead) -> list[tuple[str, str]]:
    """The fields of ``head`` passed on to the client: not hop-by-hop, nor
    named by its Connection field (RFC 9110 §7.6.1), nor Date/Server."""
    fields = [(n, v) for n, v in head.headers if n not in _RESPONSE_DROP]
    connection = head.headers.get("connection")
    if connection is not None:
        named = {t.strip(" \t").lower() for t in connection.split(",")}
        fields = [(n, v) for n, v in fields if n not in named]
    return fields


def peer_name(peer: Peer | None) -> str:
    """``IP:PORT`` of ``peer`` for log lines (``-`` when none)."""
    return peer.address if peer is not None else "-"


# -- registration ---------------------------------------------------------------------


def _proxied(location: Location) -> bool:
    return location.options.get("proxy_pass") is not None


def _methods(location: Location) -> frozenset[str]:
    return ALL_METHODS if _proxied(location) else frozenset()


#: A location with ``proxy_pass`` sends every request to its upstream.
SPEC = HandlerSpec(
    "proxy",
    _methods,
    ProxyHandler,
    priority=140,
    exclusive=_proxied,
    directives=DIRECTIVES,
)
