"""log_format and access_log (NGINX's ngx_http_log_module): the configuration
read into each location's logs, formats rendered from a fake exchange, the
escapes, if= conditions, buffer=, and the errors at their columns."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from localhost.accesslog import (
    COMBINED,
    COMBINED_TEXT,
    FLUSH_BYTES,
    AccessLogs,
    AccessLogTarget,
    LogFormat,
    combined_line,
    write_access_logs,
)
from localhost.config import ConfigError, loads
from localhost.config.model import STDOUT, Config, Location
from localhost.http.message import Headers, Request
from localhost.http.target import normalize_target
from localhost.variables import compile_template, escape_default

TIME_LOCAL = r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}"


class FakeServer:
    server_names: tuple[str, ...] = ("example.test",)


class FakeExchange:
    """What the log formats read of an exchange (``VariableContext``)."""

    def __init__(
        self,
        target: str = "/",
        headers: Sequence[tuple[str, str]] = (),
        *,
        method: str = "GET",
        status: int = 200,
        body_bytes: int = 1234,
        peer: tuple[str, int] = ("203.0.113.7", 51234),
        seconds: float = 0.25,
    ) -> None:
        request = Request(
            method, target, "HTTP/1.1", Headers(list(headers)), "example.test", True, None, False,
            False,
        )  # fmt: skip
        request.path, request.query = normalize_target(target)
        self.request = request
        self.peer = peer
        self.local = ("127.0.0.1", 8080)
        self.server = FakeServer()
        self.scheme = "http"
        self.uri: str | None = None
        self.captures: re.Match[str] | None = None
        self.log_status = status
        self.log_bytes = body_bytes
        self.sent_bytes = body_bytes + 150
        self.head_bytes = 80
        self.response_headers: list[tuple[str, str]] | None = [("Content-Type", "text/plain")]
        self.start_time = time.monotonic() - seconds
        self.connection_id = 4
        self.connection_requests = 2
        self.request_id: str | None = None


def load(tmp_path: Path, text: str) -> Config:
    return loads(text, tmp_path / "t.conf")


def site(tmp_path: Path, top: str = "", server: str = "", locations: str = "") -> str:
    (tmp_path / "www").mkdir(exist_ok=True)
    return (
        f"{top}\nserver {{\n    port 8080\n    root ./www\n{server}\n"
        f"    location / {{ }}\n{locations}\n}}\n"
    )


def location(config: Config, prefix: str) -> Location:
    return next(loc for loc in config.servers[0].locations if loc.prefix == prefix)


def fmt(config: Config, prefix: str = "/", index: int = 0) -> LogFormat:
    logs = location(config, prefix).access_log
    assert isinstance(logs, tuple)
    return logs[index].format


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value


# -- what a location logs ----------------------------------------------------------


def test_default_and_plain_paths_stay_the_combined_fast_path(tmp_path: Path) -> None:
    text = site(
        tmp_path,
        locations="    location /a { access_log ./a.log }\n"
        "    location /b { access_log ./b.log combined }\n"
        "    location /c { access_log stdout }\n",
    )
    config = load(tmp_path, text)
    assert location(config, "/").access_log == STDOUT
    assert location(config, "/a").access_log == str(tmp_path / "a.log")
    assert location(config, "/b").access_log == str(tmp_path / "b.log")
    assert location(config, "/c").access_log == STDOUT


def test_a_level_with_access_log_lines_replaces_the_inherited_ones(tmp_path: Path) -> None:
    top = "log_format short '$request_uri $status'\naccess_log ./top.log short"
    text = site(
        tmp_path,
        top=top,
        locations="    location /two { access_log ./one.log; access_log ./two.log short }\n"
        "    location /off { access_log ./x.log short; access_log off }\n",
    )
    config = load(tmp_path, text)
    inherited = location(config, "/").access_log
    assert isinstance(inherited, tuple)
    assert [(t.path, t.format.name) for t in inherited] == [(str(tmp_path / "top.log"), "short")]
    two = location(config, "/two").access_log
    assert isinstance(two, tuple)
    assert [(t.path, t.format.name) for t in two] == [
        (str(tmp_path / "one.log"), "combined"),
        (str(tmp_path / "two.log"), "short"),
    ]
    assert two[0].format is COMBINED
    # "off" cancels every line of its level (NGINX), wherever it is written.
    assert location(config, "/off").access_log is None
    # The server block's own value (requests answered before a location is chosen).
    server_level = config.servers[0].access_log
    assert isinstance(server_level, tuple)
    assert [(t.path, t.format) for t in server_level] == [(t.path, t.format) for t in inherited]


def test_parameters_make_a_target_and_names_are_case_insensitive(tmp_path: Path) -> None:
    top = "log_format Main '$status'"
    text = site(
        tmp_path, top=top, server="    access_log ./m.log MAIN buffer=8k flush=5s if=$arg_x"
    )
    [target] = location(load(tmp_path, text), "/").access_log  # type: ignore[misc]
    assert isinstance(target, AccessLogTarget)
    assert target.format.name == "main"
    assert target.buffer == 8 * 1024
    assert target.condition is not None and target.condition.text == "$arg_x"


def test_a_format_may_be_defined_after_its_use(tmp_path: Path) -> None:
    text = "access_log ./a.log late\n" + site(tmp_path, top="log_format late '$uri'")
    assert fmt(load(tmp_path, text)).name == "late"


# -- rendering -----------------------------------------------------------------------


def test_custom_format_renders_variables_and_keeps_literals(tmp_path: Path) -> None:
    # One line: a newline ends a directive here (NGINX's multi-line
    # log_format is written on one line, or with ";" at its end only).
    top = (
        "log_format main '$remote_addr:$remote_port \"$request\" $status $body_bytes_sent ' "
        "'$bytes_sent $request_length [$http_x_missing] $arg_q $connection/$connection_requests ' "
        "'$sent_http_content_type $request_time'"
    )
    text = site(tmp_path, top=top, server="    access_log ./m.log main")
    exchange = FakeExchange("/p?q=1", [("X-Other", "y")], status=404, body_bytes=10, seconds=1.5)
    line = fmt(load(tmp_path, text)).line(exchange)  # type: ignore[arg-type]
    fixed, seconds = line.rsplit(" ", 1)
    assert fixed == '203.0.113.7:51234 "GET /p?q=1 HTTP/1.1" 404 10 160 80 [-] 1 4/2 text/plain'
    assert re.fullmatch(r"\d+\.\d{3}\n", seconds)  # since the head, in ms
    assert float(seconds) >= 1.5


def test_several_strings_are_concatenated_each_compiled_alone(tmp_path: Path) -> None:
    # "$uri" then "x": NGINX reads $uri and a literal x, never $urix.
    text = site(tmp_path, top="log_format f '$uri' 'x' '$status'", server="    access_log ./f f")
    log_format = fmt(load(tmp_path, text))
    assert log_format.line(FakeExchange("/a")) == "/ax200\n"  # type: ignore[arg-type]
    text = site(tmp_path, top="log_format g '$uri ' '$status'", server="    access_log ./g g")
    joined = fmt(load(tmp_path, text))
    assert len(joined.templates) == 1  # safe to join: one template, one render
    assert joined.line(FakeExchange("/b")) == "/b 200\n"  # type: ignore[arg-type]


def test_default_escape_hex_escapes_values_but_not_literals(tmp_path: Path) -> None:
    top = 'log_format d \'"$http_user_agent" "$http_referer" \\\\ $http_x_latin\''
    text = site(tmp_path, top=top, server="    access_log ./d d")
    headers = [("User-Agent", 'say "hi"\\ \x01'), ("X-Latin", "caf\xe9")]
    line = fmt(load(tmp_path, text)).line(FakeExchange("/", headers))  # type: ignore[arg-type]
    # The value's quote, backslash and control byte are \xHH; a Latin-1 byte
    # is its own \xHH (not UTF-8's two); a missing value is "-"; the
    # literal quotes and backslash stay as written.
    assert line == '"say \\x22hi\\x22\\x5C \\x01" "-" \\ caf\\xE9\n'


def test_json_escape_gives_a_json_document(tmp_path: Path) -> None:
    top = (
        "log_format js escape=json "
        '\'{"ua":"$http_user_agent","ref":"$http_referer","status":$status}\''
    )
    text = site(tmp_path, top=top, server="    access_log ./j js")
    agent = 'a "quoted" \\ back\tslash\n'
    line = fmt(load(tmp_path, text)).line(FakeExchange("/", [("User-Agent", agent)]))  # type: ignore[arg-type]
    assert line.endswith("\n") and line.count("\n") == 1
    # A missing value is empty with json (NGINX), not "-".
    assert json.loads(line) == {"ua": agent, "ref": "", "status": 200}


def test_none_escape_writes_values_as_they_are(tmp_path: Path) -> None:
    top = "log_format raw escape=none '[$http_user_agent] [$http_referer]'"
    text = site(tmp_path, top=top, server="    access_log ./r raw")
    line = fmt(load(tmp_path, text)).line(FakeExchange("/", [("User-Agent", 'a"b\\c')]))  # type: ignore[arg-type]
    assert line == '[a"b\\c] []\n'


def test_combined_line_matches_its_documented_format() -> None:
    # README: NGINX's combined format plus the request time in seconds.
    user = base64.b64encode(b'al"ice:secret').decode()
    exchange = FakeExchange(
        "/index.html?q=1",
        [
            ("User-Agent", 'agent "quoted"'),
            ("Referer", "http://r/"),
            ("Authorization", f"Basic {user}"),
        ],
        seconds=0.0421,
    )
    line = COMBINED.line(exchange)  # type: ignore[arg-type]
    pattern = (
        rf'^203\.0\.113\.7 - al\\x22ice \[{TIME_LOCAL}\] "GET /index\.html\?q=1 HTTP/1\.1" 200 1234 '
        r'"http://r/" "agent \\x22quoted\\x22" 0\.042\n$'
    )
    assert re.match(pattern, line), line
    # The fast path writes what the predefined format's variables say (the
    # clock read apart: the two renderings happen at different moments).
    slow = compile_template(COMBINED_TEXT).render_escaped(exchange, escape_default, "-")  # type: ignore[arg-type]
    clock = re.compile(r"\[[^]]*\]|\d+\.\d{3}$")
    assert clock.sub("T", line.rstrip("\n")) == clock.sub("T", slow)


def test_combined_line_without_a_request_line() -> None:
    line = combined_line("192.0.2.1", None, 400, 0, 0.0)
    assert re.match(rf'^192\.0\.2\.1 - - \[{TIME_LOCAL}\] "-" 400 0 "-" "-" 0\.000\n$', line)


# -- if= and buffer= -----------------------------------------------------------------


def test_if_condition_skips_empty_and_zero(tmp_path: Path) -> None:
    top = "log_format u '$request_uri'"
    text = site(
        tmp_path, top=top, server="    access_log ./c.log u if=$arg_log\n    access_log ./all.log u"
    )
    targets = location(load(tmp_path, text), "/").access_log
    assert isinstance(targets, tuple)
    logs = AccessLogs()
    try:
        for uri in ("/none", "/empty?log=", "/zero?log=0", "/one?log=1", "/word?log=yes"):
            write_access_logs(targets, FakeExchange(uri), False, logs)  # type: ignore[arg-type]
    finally:
        logs.close()
    assert (tmp_path / "c.log").read_text() == "/one?log=1\n/word?log=yes\n"
    assert len((tmp_path / "all.log").read_text().splitlines()) == 5


def test_buffer_size_decides_when_a_log_is_written(tmp_path: Path) -> None:
    text = site(tmp_path, server="    access_log ./b.log combined buffer=1k")
    targets = location(load(tmp_path, text), "/").access_log
    assert isinstance(targets, tuple)
    logs = AccessLogs()
    path = tmp_path / "b.log"
    try:
        write_access_logs(targets, FakeExchange("/first"), False, logs)  # type: ignore[arg-type]
        assert path.read_text() == ""  # buffered
        while path.read_text() == "":
            assert logs.get(str(path)).size < 1024 + 300  # written once past 1k
            write_access_logs(targets, FakeExchange("/more"), False, logs)  # type: ignore[arg-type]
        assert path.read_text().startswith("203.0.113.7 - - [")
        assert logs.get(str(path)).limit == 1024
        assert logs.get(str(tmp_path / "other.log")).limit == FLUSH_BYTES
    finally:
        logs.close()


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("access_log ./a.log mian", 20, 'unknown log format "mian"; did you mean "main"?'),
        ("access_log ./a.log other", 20, 'unknown log format "other" (defined: combined, main)'),
        ("access_log ./a.log buffer=4k", 20, 'the format comes before "buffer=4k"'),
        ("access_log ./a.log main if=$nope", 28, 'access_log if=: unknown "nope" variable'),
        (
            'access_log ./a.log main "if=x $hots"',
            31,
            'unknown "hots" variable; did you mean "$host"?',
        ),
        ("access_log ./a.log main if=", 25, "if= needs a condition"),
        ("access_log ./a.log main gzip", 25, "gzip is not supported"),
        ("access_log ./a.log main flush=5s", 25, "flush= needs buffer=SIZE"),
        ("access_log ./a.log main buffer=1x", 32, 'invalid buffer size "1x"'),
        ("access_log ./a.log main buffer=0", 32, 'invalid buffer size "0"'),
        ("access_log ./a.log main buffer=4k flush=soon", 35, 'invalid time "soon"'),
        ("access_log ./a.log main level=1", 25, 'invalid parameter "level=1"'),
        ("access_log off main", 16, '"off" takes no other value'),
        ("access_log syslog:server=unix:/dev/log", 12, "syslog is not supported"),
        ("access_log ./$host.log", 14, "variables in the path are not supported"),
        ("log_format combined '$uri'", 12, '"combined" is predefined and cannot be redefined'),
        ("log_format MAIN '$uri'", 12, 'duplicate log_format name "main" (first at line 1)'),
        ("log_format e escape=xml '$uri'", 14, 'unknown escaping "xml"'),
        ("log_format e escape=json", 12, 'log_format "e" has no string'),
        ("log_format e '$uri' \"x$1\"", 23, '"$1" is a regex capture'),
    ],
)
def test_errors_point_at_their_column(tmp_path: Path, line: str, column: int, message: str) -> None:
    text = site(tmp_path, top=f"log_format main '$status'\n{line}")
    caught = error(tmp_path, text)
    assert (caught.line, caught.column) == (2, column), str(caught)
    assert message in caught.message


def test_a_format_unknown_in_an_overridden_level_is_still_an_error(tmp_path: Path) -> None:
    text = site(tmp_path, top="access_log ./a.log nope", server="    access_log ./b.log")
    caught = error(tmp_path, text)
    assert (caught.line, caught.column) == (1, 20)
    assert "define it at the top level: log_format nope STRING..." in caught.message


def test_one_file_has_one_buffer_size(tmp_path: Path) -> None:
    text = site(
        tmp_path,
        top="access_log ./a.log combined buffer=4k",
        locations="    location /x { access_log ./a.log combined buffer=8k }\n",
    )
    caught = error(tmp_path, text)
    assert caught.line == 7
    assert "already has another buffer size (at line 1)" in caught.message
    same = text.replace("buffer=8k", "buffer=4k")
    assert location(load(tmp_path, same), "/x").access_log is not None


def test_log_format_is_top_level_only(tmp_path: Path) -> None:
    caught = error(tmp_path, site(tmp_path, server="    log_format x '$uri'"))
    assert "not allowed in" in caught.message and caught.line == 5


def test_nginxs_multi_line_log_format_reads_as_one_directive(tmp_path: Path) -> None:
    # A line that starts with a quoted string continues the directive above it.
    text = (
        "log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
        "                '$status $body_bytes_sent'   # comment\n"
        "\n"
        "                '\"$http_user_agent\"';\n"
        "server {\n    port 8080\n    root " + str(tmp_path) + "\n"
        "    access_log " + str(tmp_path / "a.log") + " main\n}\n"
    )
    config = loads(text, tmp_path / "t.conf")
    assert config.servers
