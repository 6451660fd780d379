"""add_header, expires, default_type, types, charset (localhost.modules.headers):
NGINX's time syntax and expires arithmetic, the inheritance of add_header
lists, which statuses get which fields, load errors at their column, and the
Content-Type tables of static files."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from localhost.config import ConfigError, loads
from localhost.config.model import Config, Location
from localhost.handlers.static import content_type, content_types
from localhost.modules.headers import (
    AddHeader,
    Expires,
    expires_fields,
    make_filter,
    next_time,
    parse_time,
)
from localhost.variables import compile_template

# The statuses the README lists for add_header (without always) and expires.
SAFE = (200, 201, 204, 206, 301, 302, 303, 304, 307, 308)
OTHERS = (100, 202, 203, 205, 300, 305, 400, 401, 403, 404, 405, 413, 416, 500, 502, 503, 504)

DAY = 86400


def load(text: str, directory: Path) -> Config:
    (directory / "www").mkdir(exist_ok=True)
    return loads(text, directory / "test.conf")


def location(config: Config, prefix: str, server: int = 0) -> Location:
    return next(loc for loc in config.servers[server].locations if loc.prefix == prefix)


def error(text: str, directory: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, directory)
    return caught.value


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


# -- NGINX's time syntax ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("90", 90),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1d 12h", 36 * 3600),
        ("30d", 30 * DAY),
        ("2w", 14 * DAY),
        ("1M", 30 * DAY),
        ("1y", 365 * DAY),
        ("1y2M3w4d5h6m7s", 365 * DAY + 60 * DAY + 21 * DAY + 4 * DAY + 5 * 3600 + 6 * 60 + 7),
        ("1h 30", 3630),  # a last number without a unit is seconds
        ("68y", 68 * 365 * DAY),
        ("2147483647", 2**31 - 1),
    ],
)
def test_parse_time_reads_nginx_times(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "h", "1.5h", "500ms", "30m1h", "1h1h", "1x", "-1", "+1", "1 h", "69y", "2147483648"],
)
def test_parse_time_refuses_the_rest(text: str) -> None:
    assert parse_time(text) is None


# -- expires arithmetic -----------------------------------------------------------

NOW = 1_700_000_000.25  # a Tuesday, 22:13:20 UTC


def test_expires_time_counts_from_now() -> None:
    assert expires_fields(Expires("access", 3600), NOW) == (
        ("Expires", http_date(1_700_003_600)),
        ("Cache-Control", "max-age=3600"),
    )


def test_expires_negative_time_is_in_the_past_with_no_cache() -> None:
    assert expires_fields(Expires("access", -1), NOW) == (
        ("Expires", http_date(1_699_999_999)),
        ("Cache-Control", "no-cache"),
    )


def test_expires_zero_is_now_and_max_age_zero() -> None:
    for kind in ("access", "modified"):
        assert expires_fields(Expires(kind, 0), NOW, NOW - 5000) == (
            ("Expires", http_date(1_700_000_000)),
            ("Cache-Control", "max-age=0"),
        )


def test_expires_epoch_and_max_are_fixed() -> None:
    assert expires_fields(Expires("epoch"), NOW) == (
        ("Expires", "Thu, 01 Jan 1970 00:00:01 GMT"),
        ("Cache-Control", "no-cache"),
    )
    assert expires_fields(Expires("max"), NOW) == (
        ("Expires", "Thu, 31 Dec 2037 23:55:55 GMT"),
        ("Cache-Control", "max-age=315360000"),
    )


def test_expires_modified_counts_from_last_modified() -> None:
    modified = NOW - 600
    assert expires_fields(Expires("modified", 3600), NOW, modified) == (
        ("Expires", http_date(1_700_003_000)),
        ("Cache-Control", "max-age=3000"),
    )
    # Already past: no-cache, with the past date.
    assert expires_fields(Expires("modified", 300), NOW, modified) == (
        ("Expires", http_date(1_699_999_700)),
        ("Cache-Control", "no-cache"),
    )
    # A negative time is no-cache even when the date is ahead.
    future = NOW + 7200
    assert expires_fields(Expires("modified", -60), NOW, future)[1] == ("Cache-Control", "no-cache")
    # Without a Last-Modified, it counts from now.
    assert expires_fields(Expires("modified", 60), NOW, None) == (
        ("Expires", http_date(1_700_000_060)),
        ("Cache-Control", "max-age=60"),
    )


@pytest.mark.parametrize("of_day", [0, 1, 3600 * 15 + 1800, DAY - 1, DAY])
def test_expires_daily_is_the_next_time_of_day(of_day: int) -> None:
    now = int(time.time())
    at = next_time(of_day, now)
    assert now < at <= now + DAY + 3600  # a daylight-saving day may be 25 h
    local = time.localtime(at)
    hour, rest = divmod(of_day % DAY, 3600)
    assert (local.tm_hour, local.tm_min, local.tm_sec) == (hour, rest // 60, rest % 60)
    fields = dict(expires_fields(Expires("daily", of_day), now))
    assert fields["Expires"] == http_date(at)
    assert fields["Cache-Control"] == f"max-age={at - now}"


def test_expires_fields_are_http_dates() -> None:
    value = dict(expires_fields(Expires("access", 86400 * 30), NOW))["Expires"]
    assert value.endswith(" GMT")
    assert parsedate_to_datetime(value).timestamp() == 1_700_000_000 + 30 * DAY


# -- the header filter: statuses ---------------------------------------------------


def entry(name: str, value: str, always: bool = False) -> AddHeader:
    return AddHeader(name, compile_template(value), always)


def context(own: list[tuple[str, str]] | None = None, **values: Any) -> Any:
    # Only what the filter reads: the response's own fields.
    return SimpleNamespace(response_headers=own, **values)


def added(header_filter: Any, status: int, own: list[tuple[str, str]] | None = None) -> list[Any]:
    fields = [("Set-Cookie", "s=1")]
    out = header_filter(context(own), status, fields)
    assert fields == [("Set-Cookie", "s=1")]  # the exchange's own list is left alone
    assert out[:1] == fields
    return list(out[1:])


def test_nothing_to_add_is_no_filter() -> None:
    assert make_filter((), None) is None


@pytest.mark.parametrize("status", SAFE)
def test_safe_statuses_get_every_field(status: int) -> None:
    literal = make_filter([entry("X-A", "a"), entry("X-B", "b", always=True)], None)
    assert added(literal, status) == [("X-A", "a"), ("X-B", "b")]
    with_expires = make_filter([entry("X-A", "a")], Expires("max"))
    assert added(with_expires, status) == [
        ("Expires", "Thu, 31 Dec 2037 23:55:55 GMT"),
        ("Cache-Control", "max-age=315360000"),
        ("X-A", "a"),
    ]


@pytest.mark.parametrize("status", OTHERS)
def test_other_statuses_get_only_always_fields(status: int) -> None:
    literal = make_filter([entry("X-A", "a"), entry("X-B", "b", always=True)], None)
    assert added(literal, status) == [("X-B", "b")]
    with_expires = make_filter([entry("X-A", "a"), entry("X-B", "b", always=True)], Expires("max"))
    assert added(with_expires, status) == [("X-B", "b")]
    assert added(make_filter([entry("X-A", "a")], None), status) == []


def test_fields_keep_configuration_order_and_repeat() -> None:
    header_filter = make_filter(
        [entry("Link", "</a.css>"), entry("X-B", "b"), entry("Link", "</b.js>")], None
    )
    assert added(header_filter, 200) == [("Link", "</a.css>"), ("X-B", "b"), ("Link", "</b.js>")]


def test_an_empty_value_adds_nothing() -> None:
    assert added(make_filter([entry("X-Empty", ""), entry("X-B", "b")], None), 200) == [
        ("X-B", "b")
    ]


def test_expires_leaves_a_response_with_its_own_caching_fields() -> None:
    header_filter = make_filter([entry("X-A", "a")], Expires("epoch"))
    assert added(header_filter, 200, [("cache-control", "private")]) == [("X-A", "a")]
    assert added(header_filter, 200, [("Expires", "0")]) == [("X-A", "a")]
    assert added(header_filter, 200, [("Content-Type", "text/plain")])[0] == (
        "Expires",
        "Thu, 01 Jan 1970 00:00:01 GMT",
    )


def test_expires_modified_reads_the_response_last_modified() -> None:
    header_filter = make_filter((), Expires("modified", 10 * 365 * DAY))
    # A file modified at 1_000_000_000 expires ten years later, whatever now is.
    own = [("Last-Modified", http_date(1_000_000_000))]
    assert added(header_filter, 200, own)[0] == ("Expires", http_date(1_315_360_000))


def test_expires_time_follows_the_clock() -> None:
    header_filter = make_filter((), Expires("access", 60))
    before = int(time.time())
    fields = dict(added(header_filter, 200))
    after = int(time.time())
    at = parsedate_to_datetime(fields["Expires"]).timestamp()
    assert before + 60 <= at <= after + 60
    assert fields["Cache-Control"] == "max-age=60"


def test_status_is_the_response_status() -> None:
    header_filter = make_filter([entry("X-Status", "s=$status", always=True)], None)
    assert header_filter is not None
    exchange = context(None, log_status=0)
    assert header_filter(exchange, 404, []) == [("X-Status", "s=404")]
    assert header_filter(exchange, 201, []) == [("X-Status", "s=201")]


def test_a_variable_value_loses_line_breaks() -> None:
    header_filter = make_filter([entry("X-Uri", "u=$uri")], None)
    assert header_filter is not None
    request = SimpleNamespace(path="/a\r\nSet-Cookie: x\0")
    exchange = context(None, request=request, uri=None)
    assert header_filter(exchange, 200, []) == [("X-Uri", "u=/aSet-Cookie: x")]


# -- configuration: inheritance and errors -------------------------------------------

INHERIT = """
add_header X-Main main
expires 1h
server {
    port 8080
    root ./www
    add_header X-Server one
    add_header X-Server-Always two always
    location / { }
    location /own { add_header X-Own own }
    location /parent {
        add_header X-Parent parent
        location /parent/child { expires off }
        location /parent/own { add_header X-Child child; expires epoch }
    }
}
server {
    port 8081
    root ./www
    location /plain { }
}
"""


def names(config: Config, prefix: str, server: int = 0) -> list[tuple[str, bool]]:
    entries = location(config, prefix, server).options["add_header"]
    return [(found.name, found.always) for found in entries]


def test_add_header_levels_replace_the_inherited_list(tmp_path: Path) -> None:
    config = load(INHERIT, tmp_path)
    assert names(config, "/") == [("X-Server", False), ("X-Server-Always", True)]
    assert names(config, "/own") == [("X-Own", False)]
    assert names(config, "/parent") == [("X-Parent", False)]
    assert names(config, "/parent/child") == [("X-Parent", False)]
    assert names(config, "/parent/own") == [("X-Child", False)]
    assert names(config, "/plain", server=1) == [("X-Main", False)]


def test_expires_is_inherited_and_off_cancels_it(tmp_path: Path) -> None:
    config = load(INHERIT, tmp_path)
    assert location(config, "/").options["expires"] == Expires("access", 3600)
    assert location(config, "/parent").options["expires"] == Expires("access", 3600)
    assert location(config, "/parent/child").options["expires"] is None
    assert location(config, "/parent/own").options["expires"] == Expires("epoch")
    assert location(config, "/plain", server=1).options["expires"] == Expires("access", 3600)


@pytest.mark.parametrize(
    ("line", "kind", "seconds"),
    [
        ("expires 30d", "access", 30 * DAY),
        ("expires +1h", "access", 3600),
        ("expires -1", "access", -1),
        ("expires -1h30m", "access", -5400),
        ("expires modified +24h", "modified", 24 * 3600),
        ("expires modified -5m", "modified", -300),
        ("expires @15h30m", "daily", 15 * 3600 + 1800),
        ("expires @24h", "daily", DAY),
        ("expires epoch", "epoch", 0),
        ("expires max", "max", 0),
        ('expires "1d 12h"', "access", 36 * 3600),
    ],
)
def test_expires_values(tmp_path: Path, line: str, kind: str, seconds: int) -> None:
    config = load(f"server {{\n port 8080\n root ./www\n {line}\n}}\n", tmp_path)
    assert location(config, "/").options["expires"] == Expires(kind, seconds)


@pytest.mark.parametrize(
    ("line", "at", "words"),
    [
        ("expires 1x", "1x", "invalid time"),
        ("expires 500ms", "500ms", "invalid time"),
        ("expires 69y", "69y", "at most 68 years"),
        ("expires sometimes 1h", "sometimes", '"modified"'),
        ("expires modified @1h", "@1h", "cannot be used with"),
        ("expires @25h", "@25h", "more than 24h"),
        ("expires $var", "$var", "no variables"),
        ("expires 1h 2h 3h", "3h", "expires"),
        ("add_header X-A", "add_header", "add_header"),
        ("add_header Bad:Name v", "Bad:Name", "invalid field name"),
        ("add_header Content-Length 5", "Content-Length", "framing"),
        ("add_header X-A v sometimes", "sometimes", '"always"'),
        ("add_header X-A $nosuch", "$nosuch", "nosuch"),
        ('add_header X-A "ok $nosuch"', "$nosuch", "nosuch"),
        ("default_type nonsense", "nonsense", "invalid media type"),
        ("charset x/y", "x/y", "invalid charset"),
        ("charset_types text/html text", "text\n", "invalid media type"),
    ],
)
def test_errors_name_the_column(tmp_path: Path, line: str, at: str, words: str) -> None:
    found = error(f"server {{\n port 8080\n root ./www\n{line}\n}}\n", tmp_path)
    assert (found.line, found.column) == (4, (line + "\n").index(at) + 1), found
    assert words in found.message, found


def test_add_header_compiles_variables_and_always(tmp_path: Path) -> None:
    config = load(
        'server {\n port 8080\n root ./www\n add_header X-Req "$request_method $uri" always\n}\n',
        tmp_path,
    )
    (found,) = location(config, "/").options["add_header"]
    assert found.always
    assert found.value.names == ("request_method", "uri")
    assert found.value.static is None


# -- content types --------------------------------------------------------------------


def test_the_default_table_is_mimetypes_with_utf8_text() -> None:
    assert content_type("a.html") == "text/html; charset=utf-8"
    assert content_type("A.HTML") == "text/html; charset=utf-8"
    assert content_type("a.css") == "text/css; charset=utf-8"
    assert content_type("a.json") == "application/json; charset=utf-8"
    assert content_type("a.png") == "image/png"
    assert content_type("a.unknown-ext") == "application/octet-stream"
    assert content_type("README") == "application/octet-stream"


def test_default_type_is_for_unknown_extensions_only() -> None:
    types = content_types(default_type="text/plain")
    assert types("notes.unknown-ext") == "text/plain; charset=utf-8"
    assert types("Makefile") == "text/plain; charset=utf-8"
    assert types("a.png") == "image/png"
    assert types("a.html") == "text/html; charset=utf-8"
    # An extension mimetypes knows only as an encoding has no type of its own.
    assert content_types(default_type="application/x-thing")("a.gz") == "application/x-thing"


def test_charset_name_labels_charset_types_only() -> None:
    types = content_types(charset="koi8-r")
    assert types("a.html") == "text/html; charset=koi8-r"
    assert types("a.txt") == "text/plain; charset=koi8-r"
    # .js is text/javascript or application/javascript, by the system's tables.
    assert types("a.js").endswith("/javascript; charset=koi8-r")
    assert types("a.css") == "text/css"
    assert types("a.json") == "application/json"
    assert types("a.png") == "image/png"
    custom = content_types(charset="utf-8", charset_types=frozenset({"text/css"}))
    assert custom("a.css") == "text/css; charset=utf-8"
    assert custom("a.html") == "text/html; charset=utf-8"  # always one of them
    assert custom("a.txt") == "text/plain"
    every = content_types(charset="utf-8", charset_types=frozenset({"*"}))
    assert every("a.png") == "image/png; charset=utf-8"


def test_charset_off_labels_nothing() -> None:
    types = content_types(charset="", default_type="text/plain")
    assert types("a.html") == "text/html"
    assert types("a.css") == "text/css"
    assert types("a.unknown-ext") == "text/plain"


def test_a_default_type_with_its_own_charset_keeps_it() -> None:
    types = content_types(default_type="text/plain; charset=latin1", charset="utf-8")
    assert types("x.unknown-ext") == "text/plain; charset=latin1"


def test_a_types_table_replaces_the_built_in_one() -> None:
    types = content_types({"foo": "text/x-foo", "html": "application/xhtml+xml"})
    assert types("a.FOO") == "text/x-foo; charset=utf-8"
    assert types("a.html") == "application/xhtml+xml; charset=utf-8"
    assert types("a.png") == "application/octet-stream"  # not in the table
    empty = content_types({}, default_type="application/x-download")
    assert empty("a.html") == "application/x-download"


def test_locations_with_the_same_settings_share_one_table(tmp_path: Path) -> None:
    config = load(
        """
        default_type text/plain
        server {
            port 8080
            root ./www
            location /a { }
            location /b { charset iso-8859-1 }
            location /c { charset off }
            location /d { charset_types text/css; charset utf-8 }
        }
        """,
        tmp_path,
    )
    a, b, c, d = (location(config, p).options["default_type"] for p in ("/a", "/b", "/c", "/d"))
    assert a is location(config, "/").options["default_type"]
    assert a("x.unknown-ext") == "text/plain; charset=utf-8"
    assert b("x.unknown-ext") == "text/plain; charset=iso-8859-1"
    assert b("x.html") == "text/html; charset=iso-8859-1"
    assert c("x.html") == "text/html"
    assert d("x.css") == "text/css; charset=utf-8"
    assert d("x.txt") == "text/plain"
