"""NGINX variables: compiling strings with ``$name``, every variable's value and
format, the log escapes. Values follow NGINX's documentation and
ngx_http_variables.c; the contexts are small fakes of an exchange."""

from __future__ import annotations

import base64
import calendar
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pytest

from localhost.http.message import Headers, Request
from localhost.http.target import normalize_target
from localhost.variables import (
    FAMILIES,
    LOG_ESCAPES,
    VARIABLE_NAMES,
    Template,
    VariableContext,
    VariableError,
    compile_template,
    escape_default,
    escape_json,
    escape_none,
    format_msec,
    format_seconds,
    format_time_iso8601,
    format_time_local,
    named_captures,
)


@dataclass
class FakeServer:
    server_names: tuple[str, ...] = ("example.test", "www.example.test")


class FakeContext:
    """The attributes of ``VariableContext``, set directly."""

    def __init__(
        self,
        request: Request,
        *,
        peer: tuple[str, int] = ("203.0.113.7", 51234),
        local: tuple[str, int] = ("127.0.0.1", 8080),
        server: FakeServer | None = None,
        scheme: str = "http",
        uri: str | None = None,
        captures: re.Match[str] | None = None,
        log_status: int = 200,
        log_bytes: int = 1234,
        sent_bytes: int = 1400,
        head_bytes: int = 120,
        response_headers: Sequence[tuple[str, str]] | None = None,
        start_time: float | None = None,
        connection_id: int = 7,
        connection_requests: int = 3,
    ) -> None:
        self.request = request
        self.peer = peer
        self.local = local
        self.server = server if server is not None else FakeServer()
        self.scheme = scheme
        self.uri = uri
        self.captures = captures
        self.log_status = log_status
        self.log_bytes = log_bytes
        self.sent_bytes = sent_bytes
        self.head_bytes = head_bytes
        self.response_headers = response_headers
        self.start_time = time.monotonic() if start_time is None else start_time
        self.connection_id = connection_id
        self.connection_requests = connection_requests
        self.request_id: str | None = None


def make_request(
    target: str = "/",
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    headers: Sequence[tuple[str, str]] = (),
    host: str = "example.test:8080",
    content_length: int | None = None,
) -> Request:
    request = Request(
        method, target, version, Headers(list(headers)), host, True, content_length, False, False
    )
    request.path, request.query = normalize_target(target)
    return request


def ctx_for(target: str = "/", **kwargs: object) -> FakeContext:
    """A context for ``target``; request keywords go to ``make_request``."""
    request_keys = {"method", "version", "headers", "host", "content_length"}
    request_args = {key: kwargs.pop(key) for key in list(kwargs) if key in request_keys}
    return FakeContext(make_request(target, **request_args), **kwargs)  # type: ignore[arg-type]


def render(text: str, ctx: VariableContext, **options: object) -> str:
    return compile_template(text, **options).render(ctx)  # type: ignore[arg-type]


def log(text: str, ctx: VariableContext, mode: str = "default") -> str:
    escape, missing = LOG_ESCAPES[mode]
    return compile_template(text).render_escaped(ctx, escape, missing)


# -- syntax -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["plain text", "", "costs $ 5", "end$", "$-x", "$$", "a$%b", "100%$"]
)
def test_text_without_variables_is_static_and_a_lone_dollar_is_literal(text: str) -> None:
    template = compile_template(text)
    assert template.static == text
    assert template.names == ()
    assert template.render(ctx_for()) == text


def test_static_is_none_when_a_variable_is_used() -> None:
    template = compile_template("$scheme://$host$request_uri")
    assert template.static is None
    assert template.text == "$scheme://$host$request_uri"
    assert template.names == ("scheme", "host", "request_uri")
    assert template.render(ctx_for("/a?b=1")) == "http://example.test/a?b=1"


def test_braces_end_a_name_and_names_are_case_insensitive() -> None:
    ctx = ctx_for("/p?x=1")
    assert render("${uri}x", ctx) == "/px"
    assert render("$URI|${Request_Method}|$Arg_X", ctx) == "/p|GET|1"
    assert compile_template("$URI$uri${uri}").names == ("uri",)


def test_parts_are_literals_and_getters_merged_in_order() -> None:
    template = compile_template("a$uri-b-$args$ $")
    literals = [part for part in template.parts if isinstance(part, str)]
    assert literals == ["a", "-b-", "$ $"]
    assert len(template.parts) == 5


def test_template_has_slots() -> None:
    template = compile_template("$uri")
    assert not hasattr(template, "__dict__")
    assert repr(template) == "Template('$uri')"


@pytest.mark.parametrize(
    ("text", "offset", "words"),
    [
        ("abc $reqest_uri", 4, ['unknown "reqest_uri" variable', 'did you mean "$request_uri"?']),
        ("$urix", 0, ['unknown "urix" variable', 'did you mean "$uri"?']),
        ("x ${remote_adr}", 2, ['unknown "remote_adr"', '"$remote_addr"?']),
        ("$htp_user_agent", 0, ['did you mean "$http_user_agent"?']),
        ("$cookies_sid", 0, ['did you mean "$cookie_sid"?']),
        ("ab$sent_htp_x_id", 2, ['did you mean "$sent_http_x_id"?']),
        ("$zzzzqqq", 0, ['unknown "zzzzqqq" variable']),
        ("$0", 0, ['unknown "0" variable']),
        ("/$upstream_connect_time", 1, ['"$upstream_connect_time" variable is not available']),
        ("$arg_", 0, ['the "$arg_" variable needs a name']),
        ("$HTTP_", 0, ['the "$http_" variable needs a name']),
        ("ok ${uri", 3, ['the closing bracket in "uri" variable is missing']),
        ("${a-b}", 0, ['the closing bracket in "a" variable is missing']),
        ("a ${}", 2, ["invalid variable name"]),
        ("${", 0, ["invalid variable name"]),
        ("$uri $1", 5, ['"$1" is a regex capture']),
    ],
)
def test_errors_carry_the_offset_of_the_dollar_and_a_hint(
    text: str, offset: int, words: list[str]
) -> None:
    with pytest.raises(VariableError) as info:
        compile_template(text)
    assert info.value.offset == offset
    assert text[offset] == "$"
    for word in words:
        assert word in str(info.value)
    assert str(info.value) == info.value.message


def test_no_hint_when_nothing_is_close() -> None:
    with pytest.raises(VariableError) as info:
        compile_template("$zzzzqqq")
    assert "did you mean" not in str(info.value)


def test_every_documented_variable_compiles() -> None:
    # The fixed names in issue 14's list (its families are tested below).
    documented = re.findall(
        r"\$(\w+)",
        "$remote_addr $binary_remote_addr $remote_port $server_addr $server_port $server_name "
        "$host $hostname $scheme $request_method $request_uri $uri $document_uri $args "
        "$query_string $content_type $content_length $request_length $status $body_bytes_sent "
        "$bytes_sent $request_time $time_local $time_iso8601 $msec $pid $connection "
        "$connection_requests $request_id",
    )
    assert len(documented) == 29
    assert set(documented) <= set(VARIABLE_NAMES)
    for name in documented:
        assert compile_template(f"${name}").names == (name,)
    assert set(FAMILIES) == {"arg_", "http_", "cookie_", "sent_http_"}


# -- captures -----------------------------------------------------------------


def test_numbered_captures() -> None:
    match = re.match(r"/(\w+)/(\d+)(/x)?", "/blog/2026")
    ctx = ctx_for("/blog/2026", captures=match)
    assert render("$1-$2", ctx, captures=True) == "blog-2026"
    assert render("$10", ctx, captures=True) == "blog0"  # one digit, then a literal
    assert render("${2}x", ctx, captures=True) == "2026x"
    assert render("[$3][$9]", ctx, captures=True) == "[][]"  # unmatched, absent
    assert render("[$1]", ctx_for("/"), captures=True) == "[]"  # no regex matched
    assert compile_template("$1$2$1", captures=True).names == ("1", "2")


def test_named_captures_are_case_insensitive_and_need_the_names() -> None:
    pattern = re.compile(r"/(?P<Year>\d{4})/(?P<slug>[a-z-]+)")
    ctx = ctx_for("/2026/hello-world", captures=pattern.match("/2026/hello-world"))
    named = named_captures(pattern)
    assert named == {"Year", "slug"}
    template = compile_template("$year: ${SLUG} ($1)", captures=True, named=named)
    assert template.render(ctx) == "2026: hello-world (2026)"
    assert template.names == ("year", "slug", "1")
    with pytest.raises(VariableError, match='unknown "year" variable'):
        compile_template("$year", captures=True)
    # The last regex may lack the group: not found.
    other = ctx_for("/x", captures=re.match(r"/(x)", "/x"))
    assert template.render_escaped(other, escape_default, "-") == "-: - (x)"


def test_a_named_capture_may_not_shadow_a_builtin_variable() -> None:
    with pytest.raises(ValueError, match='the duplicate "uri" variable'):
        named_captures(re.compile(r"(?P<URI>.*)"))


# -- each variable --------------------------------------------------------------


def test_addresses_and_ports() -> None:
    ctx = ctx_for(peer=("203.0.113.7", 51234), local=("192.0.2.1", 8443))
    assert render("$remote_addr:$remote_port $server_addr:$server_port", ctx) == (
        "203.0.113.7:51234 192.0.2.1:8443"
    )
    assert render("[$remote_port]", ctx_for(peer=("", 0))) == "[]"


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("127.0.0.1", bytes([127, 0, 0, 1])),
        ("203.0.113.7", bytes([203, 0, 113, 7])),
        ("::1", bytes(15) + b"\x01"),
        ("fe80::1%eth0", b"\xfe\x80" + bytes(13) + b"\x01"),
        ("::ffff:1.2.3.4", bytes(10) + b"\xff\xff\x01\x02\x03\x04"),
    ],
)
def test_binary_remote_addr_is_4_or_16_raw_bytes(peer: str, expected: bytes) -> None:
    value = render("$binary_remote_addr", ctx_for(peer=(peer, 1)))
    assert len(value) in (4, 16)
    assert value.encode("latin-1") == expected


def test_binary_remote_addr_tells_clients_apart_as_a_key() -> None:
    template = compile_template("$binary_remote_addr")
    keys = {
        template.render(ctx_for(peer=(f"10.0.{i}.{j}", 1))) for i in range(4) for j in range(64)
    }
    assert len(keys) == 256


def test_server_name_is_the_first_name() -> None:
    assert render("$server_name", ctx_for()) == "example.test"
    assert render("[$server_name]", ctx_for(server=FakeServer(()))) == "[]"


@pytest.mark.parametrize(
    ("host", "names", "expected"),
    [
        ("Example.COM:8080", ("x.test",), "example.com"),
        ("example.com", ("x.test",), "example.com"),
        ("example.com.", ("x.test",), "example.com"),
        ("[::1]:8080", ("x.test",), "[::1]"),
        ("", ("x.test", "y.test"), "x.test"),
        ("", (), ""),
    ],
)
def test_host(host: str, names: tuple[str, ...], expected: str) -> None:
    ctx = ctx_for(host=host, server=FakeServer(names))
    assert render("$host", ctx) == expected


def test_hostname_is_the_machine_name() -> None:
    assert render("$hostname", ctx_for()) == socket.gethostname()


def test_scheme_and_https() -> None:
    assert render("$scheme [$https]", ctx_for()) == "http []"
    assert render("$scheme [$https]", ctx_for(scheme="https")) == "https [on]"


def test_request_line_method_and_protocol() -> None:
    ctx = ctx_for("/a?b=1", method="POST", version="HTTP/1.0")
    assert render("$request|$request_method|$server_protocol", ctx) == (
        "POST /a?b=1 HTTP/1.0|POST|HTTP/1.0"
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a%20b/../c?x=1&y", "/a%20b/../c?x=1&y"),
        ("http://example.test:8080/p/q?x=1", "/p/q?x=1"),
        ("http://example.test?x=1", "/?x=1"),
        ("http://example.test", "/"),
    ],
)
def test_request_uri_is_the_original_target_from_its_path(target: str, expected: str) -> None:
    assert render("$request_uri", ctx_for(target)) == expected


def test_uri_is_the_decoded_current_uri() -> None:
    ctx = ctx_for("/a%20b/../c%C3%A9?x=1")
    assert render("$uri|$document_uri", ctx) == "/c\u00e9|/c\u00e9"
    ctx.uri = "/rewritten"
    assert render("$uri|$document_uri|$request_uri", ctx) == (
        "/rewritten|/rewritten|/a%20b/../c%C3%A9?x=1"
    )


def test_args_query_string_is_args() -> None:
    ctx = ctx_for("/p?x=1&y=%20+z")
    assert render("$args|$query_string|$is_args", ctx) == "x=1&y=%20+z|x=1&y=%20+z|?"
    bare = ctx_for("/p")
    assert render("[$args][$query_string][$is_args]", bare) == "[][][]"
    assert log('"$args"', bare) == '"-"'


@pytest.mark.parametrize(
    ("query", "variable", "expected"),
    [
        ("a=1&b=2&a=3", "$arg_a", "1"),
        ("a=1&b=2&a=3", "$arg_b", "2"),
        ("Page=2", "$arg_page", "2"),
        ("page=2", "$ARG_PAGE", "2"),
        ("q=a%20b+c%26", "$arg_q", "a%20b+c%26"),
        ("ab=1", "$arg_a", None),
        ("xa=1", "$arg_a", None),
        ("a&a=5", "$arg_a", "5"),
        ("x=1&a=", "$arg_a", ""),
        ("utm_source=mail&x", "$arg_utm_source", "mail"),
        ("a=b=c", "$arg_a", "b=c"),
        ("", "$arg_a", None),
    ],
)
def test_arg_is_the_raw_value_of_the_first_match(
    query: str, variable: str, expected: str | None
) -> None:
    ctx = ctx_for(f"/p?{query}" if query else "/p")
    assert render(variable, ctx) == (expected or "")
    assert log(variable, ctx) == ("-" if expected is None else expected)


def test_http_headers() -> None:
    ctx = ctx_for(
        headers=[
            ("User-Agent", "curl/8.5"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-For", "10.0.0.2"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ]
    )
    assert render("$http_user_agent", ctx) == "curl/8.5"
    assert render("$HTTP_USER_AGENT", ctx) == "curl/8.5"
    assert render("$http_x_forwarded_for", ctx) == "10.0.0.1, 10.0.0.2"
    assert render("$http_cookie", ctx) == "a=1; b=2"
    assert log('"$http_referer" "$http_x_nope"', ctx) == '"-" "-"'


@pytest.mark.parametrize(
    ("cookies", "variable", "expected"),
    [
        (["a=1; b=2"], "$cookie_b", "2"),
        (["a=1; b=2"], "$cookie_a", "1"),
        (["SID=x9"], "$cookie_sid", "x9"),
        (["ab=1; a=2"], "$cookie_a", "2"),
        (["a = 3"], "$cookie_a", "3"),
        (["a=1,b=2"], "$cookie_b", "2"),
        (["a=1,b=2"], "$cookie_a", "1,b=2"),
        (["x=1", "a=4"], "$cookie_a", "4"),
        (["a=; b=1"], "$cookie_a", ""),
        (["x=1"], "$cookie_a", None),
        ([], "$cookie_a", None),
    ],
)
def test_cookie(cookies: list[str], variable: str, expected: str | None) -> None:
    ctx = ctx_for(headers=[("Cookie", value) for value in cookies])
    assert render(variable, ctx) == (expected or "")
    assert log(variable, ctx) == ("-" if expected is None else expected)


def test_content_type_length_and_request_length() -> None:
    ctx = ctx_for(
        method="POST",
        headers=[("Content-Type", "text/plain"), ("Content-Length", "30")],
        content_length=30,
        head_bytes=120,
    )
    assert render("$content_type $content_length $request_length", ctx) == "text/plain 30 150"
    bare = ctx_for(head_bytes=77)
    assert log("$content_type $content_length $request_length", bare) == "- - 77"


def test_status_and_byte_counts() -> None:
    ctx = ctx_for(log_status=404, log_bytes=153, sent_bytes=310)
    assert render("$status $body_bytes_sent $bytes_sent", ctx) == "404 153 310"
    assert render("$status", ctx_for(log_status=0)) == "000"


def test_connection_pid_and_request_id() -> None:
    ctx = ctx_for(connection_id=42, connection_requests=5)
    assert render("$connection $connection_requests $pid", ctx) == f"42 5 {os.getpid()}"
    first = render("$request_id", ctx)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert render("$request_id $request_id", ctx) == f"{first} {first}"
    assert ctx.request_id == first
    assert render("$request_id", ctx_for()) != first


def test_sent_http_headers() -> None:
    fields = [("Content-Type", "text/html"), ("X-Trace-Id", "a"), ("x-trace-id", "b")]
    ctx = ctx_for(response_headers=fields)
    assert render("$sent_http_content_type|$sent_http_x_trace_id", ctx) == "text/html|a, b"
    assert log("$sent_http_location", ctx) == "-"
    assert log("$sent_http_content_type", ctx_for()) == "-"  # no response yet


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode("ascii")


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (basic(b"alice:s3cret:x"), "alice"),
        ("basic   " + base64.b64encode(b"bob:pw").decode(), "bob"),
        (basic(b":pw"), None),  # an empty user is "not found" (ngx_http_auth_basic_user)
        (basic(b"nocolon"), None),
        ("Basic !!!", None),
        ("Bearer abc", None),
        ("Basic ", None),
        (None, None),
    ],
)
def test_remote_user(authorization: str | None, expected: str | None) -> None:
    headers = [] if authorization is None else [("Authorization", authorization)]
    ctx = ctx_for(headers=headers)
    assert log("$remote_user", ctx) == ("-" if expected is None else expected)


# -- times --------------------------------------------------------------------


@pytest.fixture
def timezone() -> Iterator[None]:
    """Restore the process's time zone after a test changes TZ."""
    before = os.environ.get("TZ")
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize(
    ("tz", "local", "iso"),
    [
        ("UTC0", "04/Dec/2026:09:19:16 +0000", "2026-12-04T09:19:16+00:00"),
        ("IST-5:30", "04/Dec/2026:14:49:16 +0530", "2026-12-04T14:49:16+05:30"),
        ("NST+3:30", "04/Dec/2026:05:49:16 -0330", "2026-12-04T05:49:16-03:30"),
    ],
)
def test_time_formats(timezone: None, tz: str, local: str, iso: str) -> None:
    os.environ["TZ"] = tz  # POSIX zones: no tz database needed
    time.tzset()
    seconds = calendar.timegm((2026, 12, 4, 9, 19, 16, 0, 0, 0))
    assert format_time_local(seconds) == local
    assert format_time_iso8601(seconds) == iso


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.000"),
        (0.0039, "0.003"),
        (0.291, "0.291"),
        (61.25, "61.250"),
        (-0.5, "0.000"),
        (1712345678.1239, "1712345678.123"),
    ],
)
def test_seconds_with_milliseconds_truncated(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
    assert format_msec(seconds) == text


def test_request_time_counts_from_the_start() -> None:
    before = time.monotonic()
    ctx = ctx_for(start_time=before - 2.5)
    value = render("$request_time", ctx)
    elapsed = time.monotonic() - before
    assert re.fullmatch(r"\d+\.\d{3}", value)
    assert 2.5 <= float(value) <= 2.5 + elapsed + 0.001


def test_wall_clock_variables_read_the_time_when_rendered() -> None:
    template = compile_template("$msec|$time_local|$time_iso8601")
    before = time.time()
    msec, local, iso = template.render(ctx_for()).split("|")
    after = time.time()
    assert re.fullmatch(r"\d+\.\d{3}", msec)
    assert int(before * 1000) / 1000 <= float(msec) <= after
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", local)
    assert int(before) <= datetime.strptime(local, "%d/%b/%Y:%H:%M:%S %z").timestamp() <= after
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", iso)
    assert int(before) <= datetime.fromisoformat(iso).timestamp() <= after


# -- rendering ------------------------------------------------------------------


def test_rendering_many_times_gives_each_request_its_values() -> None:
    template = compile_template("$remote_addr - $request_uri $status")
    for i in range(1000):
        ctx = ctx_for(
            f"/item/{i}?n={i}", peer=(f"10.0.{i // 256}.{i % 256}", 1), log_status=200 + i % 3
        )
        assert template.render(ctx) == f"10.0.{i // 256}.{i % 256} - /item/{i}?n={i} {200 + i % 3}"


def test_a_lone_variable_renders_not_found_as_empty() -> None:
    assert render("$http_x_missing", ctx_for()) == ""
    assert render("$uri", ctx_for("/only")) == "/only"


# -- escaping -----------------------------------------------------------------


def test_escape_default() -> None:
    assert escape_default("GET /a?b=1 HTTP/1.1") == "GET /a?b=1 HTTP/1.1"
    assert escape_default('a"b\\c') == "a\\x22b\\x5Cc"
    assert escape_default("\n\t\x7f\x00") == "\\x0A\\x09\\x7F\\x00"
    assert escape_default("caf\u00e9") == "caf\\xC3\\xA9"  # text: its UTF-8 bytes
    assert escape_default("caf\u00e9", False) == "caf\\xE9"  # Latin-1: one byte
    assert escape_default("\udcff", True) == "\\xFF"  # an undecodable byte of a path


def test_escape_json() -> None:
    assert escape_json('"\\\n\r\t\b\f\x01\x1f') == '\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001F'
    assert escape_json("\x7f caf\u00e9 /") == "\x7f caf\u00e9 /"
    utf8_as_latin1 = "caf\u00e9".encode().decode("latin-1")  # a header's raw bytes
    assert escape_json(utf8_as_latin1, False) == "caf\u00e9"
    assert escape_none(utf8_as_latin1, False) == "caf\u00e9"
    assert escape_none('a"\n', True) == 'a"\n'


def test_render_escaped_escapes_values_not_literals() -> None:
    ctx = ctx_for('/p?q=%22x%22&r=a"b', headers=[("User-Agent", 'evil"\n')])
    text = 'q="$arg_r" ua="$http_user_agent" ref="$http_referer"'
    assert log(text, ctx) == 'q="a\\x22b" ua="evil\\x22\\x0A" ref="-"'
    assert log(text, ctx, "json") == 'q="a\\"b" ua="evil\\"\\n" ref=""'
    assert log(text, ctx, "none") == 'q="a"b" ua="evil"\n" ref=""'
    static = compile_template('"quoted" \\ literal')
    assert static.render_escaped(ctx, escape_default, "-") == '"quoted" \\ literal'


def test_both_kinds_of_values_escape_to_nginx_bytes() -> None:
    raw_header = "caf\u00e9".encode().decode("latin-1")  # as the parser decodes it
    ctx = ctx_for("/caf%C3%A9", headers=[("X-Name", raw_header)], peer=("127.0.0.1", 1))
    assert log("$uri $http_x_name", ctx) == "/caf\\xC3\\xA9 caf\\xC3\\xA9"
    assert log("$uri $http_x_name", ctx, "json") == "/caf\u00e9 caf\u00e9"
    assert log("$binary_remote_addr", ctx) == "\\x7F\\x00\\x00\\x01"


def test_the_combined_format() -> None:
    combined = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"'
    )
    ctx = ctx_for("/a?b=1", headers=[("User-Agent", "curl/8.5")], log_status=200, log_bytes=954)
    line = log(combined, ctx)
    assert re.fullmatch(
        r"203\.0\.113\.7 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        r'"GET /a\?b=1 HTTP/1\.1" 200 954 "-" "curl/8\.5"',
        line,
    )


def test_the_template_is_a_template() -> None:
    assert isinstance(compile_template("x"), Template)
