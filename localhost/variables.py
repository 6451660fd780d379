"""NGINX variables: strings with ``$name`` parts, compiled once at load, rendered per request.

Every directive that takes a string with variables (``return``, ``rewrite``,
``try_files``, ``add_header``, ``log_format``, ``limit_req_zone`` keys, ...)
compiles it once with ``compile_template`` when the configuration is loaded.
The result is a ``Template``: a tuple of literal strings and *getters*
(functions of the request's context, resolved at compile time), so that
rendering is one call per variable and one ``"".join``, with no parsing, no
regular expression and no look-up by name per request.

Syntax (NGINX's ``ngx_http_script_compile``, with one leniency):

- ``$name`` and ``${name}``: a name is ``[A-Za-z0-9_]+`` and is
  case-insensitive (NGINX lower-cases variable names); braces end a name
  early, as in ``${uri}x``.
- ``$1`` .. ``$9``: the captures of the last regex (a ``location ~`` or a
  ``rewrite``), one digit only (``$10`` is ``$1`` then ``0``); allowed only
  where the caller says a regex precedes (``captures=True``). ``${1}`` is
  accepted too. A capture the regex does not have is the empty string.
- ``$name`` of a *named* capture, when the caller gives the regex's group names.
- Leniency: a ``$`` not followed by a name character or ``{`` is a literal
  ``$`` (``"costs $ 5"``, a trailing ``$``); NGINX refuses it as
  "invalid variable name".

Errors are ``VariableError(offset, message)``, ``offset`` being the index in
the text of the ``$`` that starts the faulty variable; an unknown name comes
with a "did you mean" hint.

Values are ``str``. NGINX's variables are bytes; here each value is the string
the server holds: request header values and the request line are Latin-1
(one character per byte, as the parser decodes them), ``$uri`` and the
captures are the decoded path (UTF-8, undecodable bytes as surrogate escapes),
and ``$binary_remote_addr`` is its 4 or 16 raw bytes as Latin-1 characters
(a dictionary key, not text). The log escapes (``escape_default``,
``escape_json``) turn each kind back into NGINX's bytes.

NGINX tells a variable that is *not found* (an absent header, cookie or
argument) from one that is empty: a log line shows ``-`` for the first.
Getters return ``None`` for "not found"; ``Template.render`` makes it the
empty string and ``Template.render_escaped`` the log format's marker.

Beyond issue 14's list, ``$request``, ``$remote_user`` (NGINX's ``combined``
log format needs both), ``$server_protocol``, ``$https`` and ``$is_args`` are
defined. Where this differs from NGINX 1.22: repeated header fields are
joined with ``", "`` in ``$http_NAME`` and ``$sent_http_NAME`` (``"; "`` for
Cookie), as NGINX does since 1.23; ``$args`` is "not found" when the query is
empty, also after a bare ``?``; ``$request_length`` counts a chunked body as
nothing (head bytes plus Content-Length); ``$arg_``, ``$http_`` and the other
prefixes without a name are errors rather than always-empty variables.

Sources: nginx.org/en/docs/http/ngx_http_core_module.html#variables (the
list and meanings), ngx_http_variables.c (formats: ``%03ui`` status,
``%T.%03M`` times, ``ngx_http_arg``, ``ngx_http_parse_multi_header_lines``
for cookies), ngx_http_log_module.c (``escape=default|json|none``).

Speed (``timeit`` on the development machine: CPython 3.11, 2 vCPUs):
``Template.render`` of ``$remote_addr - $request_uri $status`` takes about
0.65 µs, of a lone ``$binary_remote_addr`` 0.25 µs, of a string without
variables 0.06 µs; NGINX's ``combined`` format through ``render_escaped``
about 2.5 µs.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from localhost.upstream import UpstreamRecord

__all__ = [
    "FAMILIES",
    "LOG_ESCAPES",
    "VARIABLE_NAMES",
    "Escape",
    "Getter",
    "Template",
    "VariableContext",
    "VariableError",
    "compile_template",
    "escape_default",
    "escape_json",
    "escape_none",
    "format_msec",
    "format_seconds",
    "format_time_iso8601",
    "format_time_local",
    "named_captures",
]


class VariableError(ValueError):
    """A string's variable cannot be compiled.

    ``offset`` is the index in the compiled text of the ``$`` that starts
    the variable (the config loader turns it into a column); ``message``
    says why, with a hint when one helps.
    """

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message

    def __str__(self) -> str:
        return self.message


# -- what the getters read -------------------------------------------------


class HeadersView(Protocol):
    """Request header fields: lower-case names (``localhost.http.message.Headers``)."""

    def get(self, name: str, default: str | None = None) -> str | None: ...

    def get_all(self, name: str) -> list[str]: ...


class RequestView(Protocol):
    """The request head (``localhost.http.message.Request``)."""

    @property
    def method(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def headers(self) -> HeadersView: ...
    @property
    def host(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...


class ServerView(Protocol):
    """The virtual host (``localhost.config.model.ServerBlock``)."""

    @property
    def server_names(self) -> tuple[str, ...]: ...


class VariableContext(Protocol):
    """What variables read: one request (modelled on ``server.exchange.Exchange``).

    - ``request``: the head; ``peer``, ``local``: ``(address, port)`` of the
      client and of the accepting socket; ``server``: the virtual host;
      ``scheme``: ``"http"`` or ``"https"``.
    - ``uri``: the current URI after rewrites (``None``: ``request.path``);
      ``captures``: the match of the last regex (location or rewrite).
    - ``log_status``: the response status (0 before one is decided);
      ``log_bytes``: body bytes sent; ``sent_bytes``: bytes sent, head and body;
      ``head_bytes``: bytes of the request head as received;
      ``response_headers``: the response's fields as sent (``None`` before).
    - ``start_time``: ``time.monotonic()`` when the request's head arrived.
    - ``connection_id``: the connection's serial number in this worker;
      ``connection_requests``: requests made on it so far, this one included.
    - ``request_id``: ``$request_id`` once made (written here, so that it is
      the same for the whole request); ``None`` before.

    Wall-clock variables (``$time_local``, ``$msec``) read ``time.time()``
    when rendered, as NGINX reads its clock when logging.
    """

    @property
    def request(self) -> RequestView: ...
    @property
    def peer(self) -> tuple[str, int]: ...
    @property
    def local(self) -> tuple[str, int]: ...
    @property
    def server(self) -> ServerView: ...
    @property
    def scheme(self) -> str: ...
    @property
    def uri(self) -> str | None: ...
    @property
    def captures(self) -> re.Match[str] | None: ...
    @property
    def log_status(self) -> int: ...
    @property
    def log_bytes(self) -> int: ...
    @property
    def sent_bytes(self) -> int: ...
    @property
    def head_bytes(self) -> int: ...
    @property
    def response_headers(self) -> Sequence[tuple[str, str]] | None: ...
    @property
    def start_time(self) -> float: ...
    @property
    def connection_id(self) -> int: ...
    @property
    def connection_requests(self) -> int: ...

    request_id: str | None


#: A variable's value for one request; ``None`` is NGINX's "not found".
Getter = Callable[[VariableContext], "str | None"]
#: A log escape: ``(value, text) -> escaped``; ``text`` says the value is
#: Unicode text (UTF-8 on the wire), not Latin-1 bytes.
Escape = Callable[[str, bool], str]


# -- times -------------------------------------------------------------------

_MONTHS: Final = (
    *("Jan", "Feb", "Mar", "Apr", "May", "Jun"),
    *("Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
)


def _offset(gmtoff: int, colon: bool) -> str:
    sign = "-" if gmtoff < 0 else "+"
    minutes = abs(gmtoff) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def format_time_local(seconds: int) -> str:
    """``04/Dec/2026:09:19:16 +0000``: ``seconds`` (Unix time) in local time,
    the Common Log Format (NGINX's ``$time_local``; English month names
    whatever the locale)."""
    t = time.localtime(seconds)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {_offset(t.tm_gmtoff, False)}"
    )


def format_time_iso8601(seconds: int) -> str:
    """``2026-12-04T09:19:16+00:00``: ``seconds`` (Unix time) in local time,
    ISO 8601 (NGINX's ``$time_iso8601``)."""
    t = time.localtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}{_offset(t.tm_gmtoff, True)}"
    )


def _milliseconds(seconds: float) -> int:
    # Through whole microseconds first: 0.291 * 1000 is 290.99999999999997.
    return max(round(seconds * 1_000_000), 0) // 1000


def format_seconds(seconds: float) -> str:
    """``3.042``: a duration in seconds, truncated to milliseconds, never
    negative (NGINX's ``%T.%03M`` of ``$request_time``)."""
    ms = _milliseconds(seconds)
    return f"{ms // 1000}.{ms % 1000:03d}"


def format_msec(seconds: float) -> str:
    """``1712345678.123``: a Unix time in seconds with milliseconds,
    truncated (NGINX's ``$msec``)."""
    return format_seconds(seconds)


class _SecondCache:
    """``$time_local`` and ``$time_iso8601`` of the current second, formatted
    once a second. The same in every process, so sharing it across a fork is
    harmless; it holds no request's data."""

    __slots__ = ("second", "local", "iso8601")

    def __init__(self) -> None:
        self.second = -1
        self.local = ""
        self.iso8601 = ""

    def update(self, second: int) -> None:
        self.local = format_time_local(second)
        self.iso8601 = format_time_iso8601(second)
        self.second = second


_SECOND = _SecondCache()
_wall = time.time
_monotonic = time.monotonic


def _time_local(ctx: VariableContext) -> str:
    now = int(_wall())
    if now != _SECOND.second:
        _SECOND.update(now)
    return _SECOND.local


def _time_iso8601(ctx: VariableContext) -> str:
    now = int(_wall())
    if now != _SECOND.second:
        _SECOND.update(now)
    return _SECOND.iso8601


def _msec(ctx: VariableContext) -> str:
    return format_seconds(_wall())


def _request_time(ctx: VariableContext) -> str:
    return format_seconds(_monotonic() - ctx.start_time)


# -- fixed variables -----------------------------------------------------------


def _remote_addr(ctx: VariableContext) -> str:
    return ctx.peer[0]


def _binary_remote_addr(ctx: VariableContext) -> str:
    addr = ctx.peer[0]
    try:
        if ":" in addr:
            packed = socket.inet_pton(socket.AF_INET6, addr.partition("%")[0])
        else:
            packed = socket.inet_pton(socket.AF_INET, addr)
    except (OSError, ValueError):
        return addr  # not an IP address (a Unix socket): NGINX gives the text
    return packed.decode("latin-1")


def _port(port: int) -> str:
    return str(port) if 0 < port < 65536 else ""


def _remote_port(ctx: VariableContext) -> str:
    return _port(ctx.peer[1])


def _server_addr(ctx: VariableContext) -> str:
    return ctx.local[0]


def _server_port(ctx: VariableContext) -> str:
    return _port(ctx.local[1])


def _server_name(ctx: VariableContext) -> str:
    names = ctx.server.server_names
    return names[0] if names else ""


def _host(ctx: VariableContext) -> str:
    # NGINX's headers_in.server: the request line's host, else Host, with
    # the port removed, lower-cased, one final dot dropped
    # (ngx_http_validate_host); else the server's first name.
    host = ctx.request.host
    if host:
        host = host[: host.find("]") + 1] if host[0] == "[" else host.partition(":")[0]
        if host.endswith("."):
            host = host[:-1]
        if host:
            return host.lower()
    return _server_name(ctx)


def _scheme(ctx: VariableContext) -> str:
    return ctx.scheme


def _https(ctx: VariableContext) -> str:
    return "on" if ctx.scheme == "https" else ""


def _request_method(ctx: VariableContext) -> str:
    return ctx.request.method


def _server_protocol(ctx: VariableContext) -> str:
    return ctx.request.version


def _request_line(ctx: VariableContext) -> str | None:
    request = ctx.request
    if request.method == "-":  # no request line was read (a malformed or timed-out head)
        return None
    return f"{request.method} {request.target} {request.version}"


def _request_uri(ctx: VariableContext) -> str:
    target = ctx.request.target
    if target[:1] == "/" or "://" not in target:
        return target
    # Absolute-form: NGINX's unparsed_uri starts at the path.
    rest = target[target.find("://") + 3 :]
    for index, char in enumerate(rest):
        if char == "/":
            return rest[index:]
        if char == "?":
            return "/" + rest[index:]
    return "/"


def _uri(ctx: VariableContext) -> str:
    uri = ctx.uri
    return ctx.request.path if uri is None else uri


def _args(ctx: VariableContext) -> str | None:
    return ctx.request.query or None


def _is_args(ctx: VariableContext) -> str:
    return "?" if ctx.request.query else ""


def _content_type(ctx: VariableContext) -> str | None:
    return ctx.request.headers.get("content-type")


def _content_length(ctx: VariableContext) -> str | None:
    return ctx.request.headers.get("content-length")


def _request_length(ctx: VariableContext) -> str:
    return str(ctx.head_bytes + (ctx.request.content_length or 0))


def _status(ctx: VariableContext) -> str:
    return f"{ctx.log_status:03d}"


def _body_bytes_sent(ctx: VariableContext) -> str:
    return str(ctx.log_bytes)


def _bytes_sent(ctx: VariableContext) -> str:
    return str(ctx.sent_bytes)


def _hostname(ctx: VariableContext) -> str:
    # Templates get the name read once at compile time instead (as NGINX
    # reads it at start); this is the definition.
    return socket.gethostname()


def _pid(ctx: VariableContext) -> str:
    return str(os.getpid())  # read per call: the value differs after fork


def _connection(ctx: VariableContext) -> str:
    return str(ctx.connection_id)


def _connection_requests(ctx: VariableContext) -> str:
    return str(ctx.connection_requests)


def _request_id(ctx: VariableContext) -> str:
    known = ctx.request_id
    if known is None:
        known = ctx.request_id = os.urandom(16).hex()
    return known


def _remote_user(ctx: VariableContext) -> str | None:
    # ngx_http_auth_basic_user: "Basic " (any case), spaces, base64 of
    # "user:password"; anything else is "not found".
    value = ctx.request.headers.get("authorization")
    if value is None or value[:6].lower() != "basic ":
        return None
    encoded = value[6:].lstrip(" ")
    if not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.encode("latin-1"), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, _ = decoded.partition(b":")
    return user.decode("latin-1") if colon and user else None


# -- the reverse proxy (localhost.handlers.proxy) ----------------------------------


def _upstream_record(ctx: VariableContext) -> UpstreamRecord | None:
    # The proxy keeps its record among the exchange's cleanups (run after the
    # log line), so that the log can read it with no field of its own.
    for item in getattr(ctx, "cleanups", None) or ():
        if isinstance(item, UpstreamRecord):
            return item
    return None


def _upstream_addr(ctx: VariableContext) -> str | None:
    record = _upstream_record(ctx)
    return ", ".join(record.addresses) if record is not None and record.addresses else None


def _upstream_status(ctx: VariableContext) -> str | None:
    record = _upstream_record(ctx)
    if record is None or not record.statuses:
        return None
    return ", ".join(str(s) if s else "-" for s in record.statuses)


def _upstream_response_time(ctx: VariableContext) -> str | None:
    record = _upstream_record(ctx)
    if record is None or not record.times:
        return None
    return ", ".join(format_seconds(t) for t in record.times)


def _proxy_host(ctx: VariableContext) -> str | None:
    location = getattr(ctx, "location", None)
    proxy = location.options.get("proxy_pass") if location is not None else None
    return proxy.proxy_host if proxy is not None else None


def _proxy_add_x_forwarded_for(ctx: VariableContext) -> str:
    forwarded = ctx.request.headers.get("x-forwarded-for")
    address = ctx.peer[0]
    return f"{forwarded}, {address}" if forwarded else address


# name -> (getter, text): ``text`` marks values that are Unicode text rather
# than Latin-1 bytes, for the log escapes.
_FIXED: Final[dict[str, tuple[Getter, bool]]] = {
    "remote_addr": (_remote_addr, False),
    "binary_remote_addr": (_binary_remote_addr, False),
    "remote_port": (_remote_port, False),
    "remote_user": (_remote_user, False),
    "server_addr": (_server_addr, False),
    "server_port": (_server_port, False),
    "server_name": (_server_name, True),
    "server_protocol": (_server_protocol, False),
    "host": (_host, False),
    "hostname": (_hostname, True),
    "scheme": (_scheme, False),
    "https": (_https, False),
    "request": (_request_line, False),
    "request_method": (_request_method, False),
    "request_uri": (_request_uri, False),
    "uri": (_uri, True),
    "document_uri": (_uri, True),
    "args": (_args, False),
    "query_string": (_args, False),
    "is_args": (_is_args, False),
    "content_type": (_content_type, False),
    "content_length": (_content_length, False),
    "request_length": (_request_length, False),
    "status": (_status, False),
    "body_bytes_sent": (_body_bytes_sent, False),
    "bytes_sent": (_bytes_sent, False),
    "request_time": (_request_time, False),
    "time_local": (_time_local, False),
    "time_iso8601": (_time_iso8601, False),
    "msec": (_msec, False),
    "pid": (_pid, False),
    "connection": (_connection, False),
    "connection_requests": (_connection_requests, False),
    "request_id": (_request_id, False),
    "upstream_addr": (_upstream_addr, False),
    "upstream_status": (_upstream_status, False),
    "upstream_response_time": (_upstream_response_time, False),
    "proxy_host": (_proxy_host, False),
    "proxy_add_x_forwarded_for": (_proxy_add_x_forwarded_for, False),
}

#: The names of the fixed variables (without the ``$``), sorted.
VARIABLE_NAMES: Final = tuple(sorted(_FIXED))


# -- families: a prefix and a name ----------------------------------------------


def _argument(name: str) -> Getter:
    # ngx_http_arg: the first "NAME=" at the start of the query or after "&",
    # NAME compared case-insensitively; the raw (still encoded) value.
    def get(ctx: VariableContext) -> str | None:
        query = ctx.request.query
        if not query:
            return None
        for pair in query.split("&"):
            key, equals, value = pair.partition("=")
            if equals and key.lower() == name:
                return value
        return None

    return get


def _header(name: str) -> Getter:
    field = name.replace("_", "-")
    if field == "cookie":
        # Several Cookie fields are joined with "; " (NGINX's $http_cookie).
        def cookies(ctx: VariableContext) -> str | None:
            values = ctx.request.headers.get_all("cookie")
            return "; ".join(values) if values else None

        return cookies

    def get(ctx: VariableContext) -> str | None:
        return ctx.request.headers.get(field)

    return get


def _cookie(name: str) -> Getter:
    # ngx_http_parse_multi_header_lines: items separated by ";" or ",", the
    # name compared case-insensitively, spaces allowed around "=", the value
    # running to the next ";".
    size = len(name)

    def get(ctx: VariableContext) -> str | None:
        for line in ctx.request.headers.get_all("cookie"):
            end = len(line)
            start = 0
            while start < end:
                if line[start : start + size].lower() == name:
                    at = start + size
                    while at < end and line[at] == " ":
                        at += 1
                    if at < end and line[at] == "=":
                        at += 1
                        while at < end and line[at] == " ":
                            at += 1
                        stop = line.find(";", at)
                        return line[at:] if stop < 0 else line[at:stop]
                while start < end:
                    char = line[start]
                    start += 1
                    if char == ";" or char == ",":
                        break
                while start < end and line[start] == " ":
                    start += 1
        return None

    return get


def _sent_header(name: str) -> Getter:
    # As NGINX compares: the field's name lower-cased with "-" as "_";
    # several fields are joined with ", ".
    def get(ctx: VariableContext) -> str | None:
        fields = ctx.response_headers
        if fields is None:
            return None
        values = [value for field, value in fields if field.lower().replace("-", "_") == name]
        return ", ".join(values) if values else None

    return get


_FAMILY: Final[dict[str, Callable[[str], Getter]]] = {
    "arg_": _argument,
    "http_": _header,
    "cookie_": _cookie,
    "sent_http_": _sent_header,
}

#: The variable families, as ``prefix`` + NAME (``$arg_page``, ``$http_user_agent``).
FAMILIES: Final = tuple(_FAMILY)

_RESERVED: Final = {
    "upstream_": "localhost has $upstream_addr, $upstream_status and $upstream_response_time"
}


# -- log escapes -------------------------------------------------------------------

# ngx_http_log_escape: '"', '\\', and bytes below 0x20 or from 0x7F, as \xHH.
_DEFAULT_TABLE: Final = {
    byte: f"\\x{byte:02X}"
    for byte in range(256)
    if byte < 0x20 or byte >= 0x7F or byte in (0x22, 0x5C)
}
# ngx_escape_json: '"' and '\\' backslashed, five controls by letter, the
# other bytes below 0x20 as \u00HH; everything else as is.
_JSON_TABLE: Final = {byte: f"\\u{byte:04X}" for byte in range(0x20)} | {
    0x22: '\\"',
    0x5C: "\\\\",
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
}


def _as_bytes(value: str, text: bool) -> str:
    """``value``'s bytes as Latin-1 characters (UTF-8 for text)."""
    if not text:
        return value.encode("latin-1", "replace").decode("latin-1")
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = value.encode("utf-8", "replace")
    return data.decode("latin-1")


def _as_text(value: str) -> str:
    """Latin-1 bytes ``value`` as the text they spell in UTF-8 (what a UTF-8
    log shows of NGINX's raw bytes; invalid bytes stay surrogate escapes)."""
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def escape_default(value: str, text: bool = True) -> str:
    """``value`` as NGINX's ``log_format escape=default`` writes it: ``"``,
    ``\\``, and bytes below 0x20 or from 0x7F as ``\\xHH`` (upper-case hex).

    ``text`` says ``value`` is Unicode text, whose bytes are its UTF-8;
    otherwise each character is one byte (Latin-1: header values).
    Returns ASCII.
    """
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return _as_bytes(value, text).translate(_DEFAULT_TABLE)


def escape_json(value: str, text: bool = True) -> str:
    """``value`` as NGINX's ``log_format escape=json`` writes it: ``"`` and
    ``\\`` backslashed, ``\\b \\t \\n \\f \\r``, other characters below 0x20
    as ``\\u00HH``; the rest as is.

    ``text`` as for ``escape_default``; Latin-1 bytes that are not ASCII are
    read as UTF-8 (NGINX copies the bytes), invalid ones kept as surrogate
    escapes.
    """
    if not text and not value.isascii():
        value = _as_text(value)
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return value.translate(_JSON_TABLE)


def escape_none(value: str, text: bool = True) -> str:
    """``value`` as ``log_format escape=none`` writes it: unchanged (Latin-1
    bytes read as UTF-8, as for ``escape_json``)."""
    if text or value.isascii():
        return value
    return _as_text(value)


#: ``log_format``'s ``escape=`` values: ``(escape, missing)``, ``missing``
#: being what a not-found variable writes (NGINX: ``-`` by default, nothing
#: with json and none).
LOG_ESCAPES: Final[dict[str, tuple[Escape, str]]] = {
    "default": (escape_default, "-"),
    "json": (escape_json, ""),
    "none": (escape_none, ""),
}


# -- compiled strings ---------------------------------------------------------------


class Template:
    """A compiled string: literal parts and variables.

    ``text`` is the source; ``static`` the value when it has no variable
    (callers may then skip rendering), else ``None``; ``names`` the variables
    used (lower-case, without ``$``; captures as ``"1"``), in order of first use;
    ``parts`` the literal strings and getters in order.
    """

    __slots__ = ("text", "static", "names", "parts", "_buf", "_slots", "_single", "_texts")

    def __init__(
        self,
        text: str,
        parts: Sequence[str | tuple[Getter, bool]],
        names: tuple[str, ...],
    ) -> None:
        self.text = text
        self.names = names
        self.parts: tuple[str | Getter, ...] = tuple(
            part if isinstance(part, str) else part[0] for part in parts
        )
        # The literals in place and an empty slot per variable: rendering
        # copies the list and fills the slots.
        self._buf: list[str] = [part if isinstance(part, str) else "" for part in parts]
        self._slots: tuple[tuple[int, Getter], ...] = tuple(
            (index, part[0]) for index, part in enumerate(parts) if not isinstance(part, str)
        )
        self._texts: tuple[bool, ...] = tuple(
            part[1] for part in parts if not isinstance(part, str)
        )
        self.static: str | None = "".join(self._buf) if not self._slots else None
        self._single: Getter | None = self._slots[0][1] if len(parts) == 1 and self._slots else None

    def render(self, ctx: VariableContext) -> str:
        """The string for one request; a variable that is not found is ``""``."""
        static = self.static
        if static is not None:
            return static
        single = self._single
        if single is not None:
            return single(ctx) or ""
        buf = self._buf.copy()
        for index, getter in self._slots:
            buf[index] = getter(ctx) or ""
        return "".join(buf)

    def render_escaped(self, ctx: VariableContext, escape: Escape, missing: str = "-") -> str:
        """The string for one request with each variable's value escaped and
        the literals as written (NGINX's ``log_format``); a variable that is
        not found writes ``missing``. ``LOG_ESCAPES`` has the three pairs."""
        static = self.static
        if static is not None:
            return static
        buf = self._buf.copy()
        for (index, getter), text in zip(self._slots, self._texts, strict=True):
            value = getter(ctx)
            buf[index] = missing if value is None else escape(value, text)
        return "".join(buf)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


_NAME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _capture(number: int) -> Getter:
    def get(ctx: VariableContext) -> str:
        match = ctx.captures
        if match is None:
            return ""
        try:
            return match.group(number) or ""
        except IndexError:  # the regex has fewer groups
            return ""

    return get


def _named_capture(group: str) -> Getter:
    def get(ctx: VariableContext) -> str | None:
        match = ctx.captures
        if match is None:
            return None
        try:
            value = match.group(group)
        except IndexError:  # another regex matched last
            return None
        return value or ""

    return get


def _constant(value: str) -> Getter:
    def get(ctx: VariableContext) -> str:
        return value

    return get


def named_captures(pattern: re.Pattern[str]) -> frozenset[str]:
    """The group names of ``pattern``, for ``compile_template(named=...)``.

    Raises ``ValueError`` when a name (case-insensitive) is a built-in
    variable, as NGINX does ("the duplicate "uri" variable").
    """
    for group in pattern.groupindex:
        if group.lower() in _FIXED:
            raise ValueError(f'the duplicate "{group.lower()}" variable')
    return frozenset(pattern.groupindex)


def _hint(name: str, named: Sequence[str]) -> str:
    candidates = list(_FIXED) + list(named)
    # A family name with a typo in its prefix: "htp_user_agent" → "http_user_agent".
    for index, char in enumerate(name):
        if char == "_" and index + 1 < len(name):
            candidates.extend(prefix + name[index + 1 :] for prefix in _FAMILY)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f'; did you mean "${close[0]}"?' if close else ""


def _resolve(name: str, offset: int, named: dict[str, str], captures: bool) -> tuple[Getter, bool]:
    """The getter of variable ``name`` (lower-case) and whether it gives text."""
    if len(name) == 1 and "1" <= name <= "9":
        if not captures:
            raise VariableError(
                offset,
                f'"${name}" is a regex capture: only in a "location ~" block or after '
                f'a "rewrite" regex',
            )
        return _capture(int(name)), True
    group = named.get(name)
    if group is not None:
        return _named_capture(group), True
    known = _FIXED.get(name)
    if known is not None:
        if name == "hostname":
            return _constant(socket.gethostname()), True
        return known
    for prefix, factory in _FAMILY.items():
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if not rest:
                raise VariableError(offset, f'the "${prefix}" variable needs a name: ${prefix}NAME')
            return factory(rest), False
    for prefix, why in _RESERVED.items():
        if name.startswith(prefix):
            raise VariableError(offset, f'the "${name}" variable is not available: {why}')
    raise VariableError(offset, f'unknown "{name}" variable{_hint(name, list(named))}')


def compile_template(
    text: str, *, captures: bool = False, named: frozenset[str] = frozenset()
) -> Template:
    """Compile ``text`` (NGINX string syntax) into a ``Template``.

    ``captures``: whether ``$1``..``$9`` may be used (a regex precedes);
    ``named``: the group names of that regex (``named_captures``), usable as
    ``$name`` (case-insensitive, ahead of the built-in names).
    Raises ``VariableError`` (with the offset of the ``$``) for an unknown
    variable, a capture where none is allowed, a ``${`` without its ``}``,
    an empty ``${}``, a family prefix without a name, or ``$upstream_*``.
    """
    named_lower: dict[str, str] = {}
    for group in named:
        named_lower.setdefault(group.lower(), group)
    parts: list[str | tuple[Getter, bool]] = []
    names: list[str] = []
    literal: list[str] = []
    size = len(text)
    pos = 0
    while True:
        dollar = text.find("$", pos)
        if dollar < 0:
            literal.append(text[pos:])
            break
        literal.append(text[pos:dollar])
        start = dollar + 1
        if start < size and text[start] == "{":
            end = start + 1
            while end < size and text[end] in _NAME_CHARS:
                end += 1
            name = text[start + 1 : end]
            if not name:
                raise VariableError(dollar, 'invalid variable name: "${" needs a name and "}"')
            if end >= size or text[end] != "}":
                raise VariableError(dollar, f'the closing bracket in "{name}" variable is missing')
            pos = end + 1
        elif start < size and text[start] in _NAME_CHARS:
            end = start + 1
            if not "1" <= text[start] <= "9":  # a capture is one digit
                while end < size and text[end] in _NAME_CHARS:
                    end += 1
            name = text[start:end]
            pos = end
        else:
            literal.append("$")  # lenient: a lone "$" is itself
            pos = start
            continue
        name = name.lower()
        getter = _resolve(name, dollar, named_lower, captures)
        joined = "".join(literal)
        if joined:
            parts.append(joined)
        literal.clear()
        parts.append(getter)
        if name not in names:
            names.append(name)
    joined = "".join(literal)
    if joined or not parts:
        parts.append(joined)
    return Template(text, parts, tuple(names))
