"""CGI parts without processes: the environment builder and the response parser."""

from __future__ import annotations

from typing import Any

import pytest

from localhost.handlers.cgi import Script, cgi_environ
from localhost.handlers.cgi_response import CGIError, CGIResponseParser
from localhost.http.message import Headers, Request

SCRIPT = Script(
    "/srv/cgi-bin/env.py", "/cgi-bin/env.py", "/a/b", "/usr/bin/python3", "/srv/cgi-bin"
)


def make_request(
    method: str = "GET", fields: list[tuple[str, str]] | None = None, query: str = ""
) -> Request:
    headers = Headers(fields if fields is not None else [("Host", "example.test:8080")])
    request = Request(
        method,
        "/cgi-bin/env.py/a/b" + (f"?{query}" if query else ""),
        "HTTP/1.1",
        headers,
        headers.get("host") or "",
        True,
        None,
        False,
        False,
    )
    request.path = "/cgi-bin/env.py/a/b"
    request.query = query
    return request


def environ(**overrides: object) -> dict[str, str]:
    arguments: dict[str, object] = {
        "request": make_request(),
        "script": SCRIPT,
        "local": ("127.0.0.1", 8080),
        "peer": ("10.0.0.7", 50123),
        "content_length": None,
    }
    arguments.update(overrides)
    return cgi_environ(**arguments)  # type: ignore[arg-type]


def test_rfc3875_meta_variables() -> None:
    env = environ(request=make_request(query="x=1&y=2"))
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["SCRIPT_FILENAME"] == "/srv/cgi-bin/env.py"
    assert env["PATH_INFO"] == "/a/b"
    assert env["PATH_TRANSLATED"] == "/srv/cgi-bin/a/b"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["REQUEST_URI"] == "/cgi-bin/env.py/a/b?x=1&y=2"
    assert env["SERVER_NAME"] == "example.test"
    assert env["SERVER_PORT"] == "8080"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("localhost/")
    assert env["REMOTE_ADDR"] == "10.0.0.7"
    assert env["REMOTE_PORT"] == "50123"
    assert env["DOCUMENT_ROOT"] == "/srv/cgi-bin"
    assert env["HTTP_HOST"] == "example.test:8080"


def test_body_variables_only_with_a_body() -> None:
    env = environ()
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    request = make_request(
        "POST", [("Host", "h"), ("Content-Type", "text/plain"), ("Content-Length", "5")]
    )
    env = environ(request=request, content_length=5)
    assert env["CONTENT_LENGTH"] == "5"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env


def test_fields_become_http_variables_except_dangerous_ones() -> None:
    request = make_request(
        fields=[
            ("Host", "h"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("Proxy", "http://evil.example/"),
            ("X_Underscore", "smuggled"),
            ("Accept-Language", "fr"),
        ]
    )
    env = environ(request=request)
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_ACCEPT_LANGUAGE"] == "fr"
    assert "HTTP_PROXY" not in env
    assert "HTTP_X_UNDERSCORE" not in env


def test_no_server_environment_leaks_but_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("PATH", "/custom/bin:/usr/bin")
    env = environ()
    assert "SECRET_TOKEN" not in env
    assert env["PATH"] == "/custom/bin:/usr/bin"


def test_empty_query_path_info_and_session() -> None:
    script = Script("/srv/x.py", "/x.py", "", "/usr/bin/python3", "/srv")
    env = environ(script=script, session_id="abc")
    assert env["QUERY_STRING"] == ""
    assert env["PATH_INFO"] == ""
    assert "PATH_TRANSLATED" not in env
    assert env["SESSION_ID"] == "abc"


def test_server_name_falls_back_without_host() -> None:
    request = make_request(fields=[])
    assert environ(request=request)["SERVER_NAME"] == "127.0.0.1"
    assert environ(request=request, server_names=("site.test",))["SERVER_NAME"] == "site.test"
    names = ("", "*.site.test", ".site.test", "~^site", "site.*", "www.site.test")
    assert environ(request=request, server_names=names)["SERVER_NAME"] == "www.site.test"
    assert environ(request=request, server_names=names[:-1])["SERVER_NAME"] == "127.0.0.1"


# -- the response parser ------------------------------------------------------


def parse_all(data: bytes, split: bool = False) -> tuple[CGIResponseParser, bytes]:
    parser = CGIResponseParser()
    if split:
        body = b"".join(parser.feed(data[i : i + 1]) for i in range(len(data)))
    else:
        body = parser.feed(data)
    return parser, body


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize(
    ("data", "status", "fields", "body"),
    [
        (b"Content-Type: text/plain\n\nhello", 200, [("Content-Type", "text/plain")], b"hello"),
        (
            b"Content-Type: text/plain\r\n\r\nhello\r\n",
            200,
            [("Content-Type", "text/plain")],
            b"hello\r\n",
        ),
        (
            b"Status: 404 Not Here\nContent-Type: text/html\n\n<p>",
            404,
            [("Content-Type", "text/html")],
            b"<p>",
        ),
        (
            b"Status: 201\r\nContent-Type: a/b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
            201,
            [("Content-Type", "a/b"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            b"",
        ),
        (b"Location: https://x.test/\n\n", 302, [("Location", "https://x.test/")], b""),
        (
            b"Status: 301 Moved\nLocation: https://x.test/\n\n",
            301,
            [("Location", "https://x.test/")],
            b"",
        ),
        (b"Status: 204 No Content\n\n", 204, [], b""),
        (
            b"Content-Type: text/plain\nConnection: close\nTransfer-Encoding: chunked\n\nx",
            200,
            [("Content-Type", "text/plain")],
            b"x",
        ),
        (
            b"Content-Type: text/plain\nContent-Length: 3\n\nabc",
            200,
            [("Content-Type", "text/plain")],
            b"abc",
        ),
        (b"Content-Type: text/plain\r\n\nmixed", 200, [("Content-Type", "text/plain")], b"mixed"),
    ],
)
def test_document_and_client_redirect_responses(
    data: bytes, status: int, fields: list[tuple[str, str]], body: bytes, split: bool
) -> None:
    parser, got = parse_all(data, split)
    assert parser.head is not None
    assert parser.head.status == status
    assert parser.head.fields == fields
    assert got == body


def test_content_length_is_reported() -> None:
    parser, _ = parse_all(b"Content-Type: a/b\nContent-Length: 12\n\n")
    assert parser.head is not None and parser.head.content_length == 12


def test_local_redirect() -> None:
    parser, _ = parse_all(b"Location: /other/page?x=1\n\n")
    assert parser.head is not None and parser.head.local_redirect == "/other/page?x=1"
    parser, _ = parse_all(b"Location: /other\nSet-Cookie: a=1\n\n")
    assert (
        parser.head is not None and parser.head.local_redirect is None and parser.head.status == 302
    )


def test_body_after_the_header_passes_through_unchanged() -> None:
    parser = CGIResponseParser()
    assert parser.feed(b"Content-Type: a/b\n") == b""
    assert parser.head is None
    assert parser.feed(b"\nfirst") == b"first"
    assert parser.feed(b"\n\nsecond: not a header\n") == b"\n\nsecond: not a header\n"


@pytest.mark.parametrize(
    "data",
    [
        b"no colon here\n\n",
        b": empty name\n\n",
        b"Bad Name: x\n\n",
        b"Status: abc\nContent-Type: a/b\n\n",
        b"Status: 99 Low\nContent-Type: a/b\n\n",
        b"Status: 2000\nContent-Type: a/b\n\n",
        b"Content-Type: a/b\nContent-Length: -1\n\n",
        b"X-Only: field\n\n",
        b"\n\nbody without header",
        b"Content-Type: a\x00b\n\n",
    ],
)
def test_malformed_headers(data: bytes) -> None:
    with pytest.raises(CGIError):
        parse_all(data)


def header_of(size: int) -> bytes:
    """A CGI header section (field lines with their line ends) of exactly ``size`` bytes."""
    first = b"Content-Type: text/plain\n"
    fill = size - len(first) - len(b"X-Fill: \n")
    return first + b"X-Fill: " + b"a" * fill + b"\n"


@pytest.mark.parametrize("split", [False, True])
def test_header_size_is_bounded_at_64_kib(split: bool) -> None:
    # README: a CGI response header is at most 64 KiB (else 502).
    chunks = 1000 if split else 1 << 20
    for size, fits in ((64 * 1024, True), (64 * 1024 + 1, False)):
        data = header_of(size) + b"\nbody"
        parser = CGIResponseParser()
        try:
            body = b"".join(parser.feed(data[i : i + chunks]) for i in range(0, len(data), chunks))
        except CGIError:
            assert not fits, size
            continue
        assert fits, size
        assert parser.head is not None and body == b"body"


def test_request_uri_of_an_absolute_form_target_is_its_path_and_query() -> None:
    # As NGINX's $request_uri: a proxy-style target loses its scheme and authority.
    from localhost.handlers.cgi import _origin_form

    assert _origin_form("http://example.test:8080/cgi-bin/env.py?x=1") == "/cgi-bin/env.py?x=1"
    assert _origin_form("http://example.test?x=1") == "/?x=1"
    assert _origin_form("http://example.test") == "/"
    assert _origin_form("/plain?y") == "/plain?y"


# -- the handler in a real event loop (pipes are PipeTransports) ------------------

ECHO_SCRIPT = """import os, sys
data = sys.stdin.buffer.read()
out = sys.stdout.buffer
out.write(b"Content-Type: text/plain\\r\\n\\r\\n")
out.write(b"got " + str(len(data)).encode() + b" " + os.environ.get("CONTENT_LENGTH", "-").encode() + b"\\n")
out.write(data)
"""
BIG_SCRIPT = """import sys
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\\r\\n\\r\\n")
for _ in range(64):
    out.write(b"x" * 65536)
"""
REDIRECT_SCRIPT = 'print("Location: /elsewhere?a=1")\nprint()\n'
SLEEP_SCRIPT = "import time\ntime.sleep(30)\n"


@pytest.fixture
def cgi_site(tmp_path: Any) -> Any:
    import sys

    from localhost.config import loads

    bin_dir = tmp_path / "cgi-bin"
    bin_dir.mkdir()
    (bin_dir / "echo.py").write_text(ECHO_SCRIPT)
    (bin_dir / "big.py").write_text(BIG_SCRIPT)
    (bin_dir / "redirect.py").write_text(REDIRECT_SCRIPT)
    (bin_dir / "sleep.py").write_text(SLEEP_SCRIPT)
    text = (
        "server {\n port 80\n location /cgi-bin {\n  root ./cgi-bin\n"
        f"  cgi .py {sys.executable}\n  cgi_timeout 2s\n }}\n}}\n"
    )
    return loads(text, tmp_path / "t.conf")


class _Run:
    """A pipeline and a loop to drive one CGI request to its end."""

    def __init__(self, config: Any) -> None:
        from localhost.io.loop import EventLoop
        from localhost.routing import Router
        from localhost.server.pipeline import Pipeline
        from localhost.services import Services

        self.loop = EventLoop()
        self.services = Services(config, self.loop)
        self.pipeline = Pipeline(Router(config), self.services)
        self.config = config

    def request(self, method: str, target: str, body: bytes = b"") -> Any:
        from localhost.handlers.base import BodyPolicy
        from tests.unit.test_pipeline import FakeExchange, make_request

        request = make_request(method, target, len(body) if body else None)
        exchange = FakeExchange(request, self.config.servers[0], self.services)
        exchange.loop = self.loop
        handler = self.pipeline.start(exchange)  # type: ignore[arg-type]
        assert handler.on_head() == BodyPolicy.STREAM
        if body:
            handler.on_body(body)
        handler.on_body_end()
        return exchange, handler

    def until(self, condition: Any, seconds: float = 10.0) -> bool:
        import time

        deadline = time.monotonic() + seconds

        def check() -> None:
            if condition() or time.monotonic() > deadline:
                self.loop.stop()
            else:
                self.loop.call_at(time.monotonic() + 0.005, check)

        self.loop.call_at(0.0, check)
        self.loop.run()
        return bool(condition())

    def close(self) -> None:
        self.services.close()
        self.loop.close()


@pytest.fixture
def cgi_run(cgi_site: Any) -> Any:
    run = _Run(cgi_site)
    yield run
    run.close()


def test_cgi_body_goes_through_stdin_and_the_answer_streams(cgi_run: Any) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: more than one pipe buffer
    exchange, _ = cgi_run.request("POST", "/cgi-bin/echo.py", body)
    assert cgi_run.until(lambda: exchange.done)
    assert exchange.response.status == 200
    assert bytes(exchange.streamed) == f"got {len(body)} {len(body)}\n".encode() + body
    # The script is reaped and its slot given back.
    assert cgi_run.until(lambda: cgi_run.services.cgi.running == 0)


def test_a_slow_client_pauses_the_script_output(cgi_run: Any) -> None:
    exchange, handler = cgi_run.request("GET", "/cgi-bin/big.py")
    exchange.writable = False  # the client reads nothing
    assert cgi_run.until(lambda: handler.paused)
    seen = len(exchange.streamed)
    cgi_run.until(lambda: False, 0.2)
    assert len(exchange.streamed) == seen  # nothing more is read meanwhile
    exchange.writable = True
    handler.on_writable()
    assert cgi_run.until(lambda: exchange.done)
    assert len(exchange.streamed) == 64 * 65536


def test_a_local_redirect_is_internal(cgi_run: Any) -> None:
    exchange, _ = cgi_run.request("GET", "/cgi-bin/redirect.py")
    assert cgi_run.until(lambda: exchange.redirected is not None)
    assert exchange.redirected == "/elsewhere?a=1"


def test_timeout_kills_the_script_and_answers_504(cgi_run: Any) -> None:
    exchange, _ = cgi_run.request("GET", "/cgi-bin/sleep.py")
    assert cgi_run.until(lambda: exchange.done, 10.0)
    assert exchange.response.status == 504
    assert cgi_run.until(lambda: cgi_run.services.cgi.running == 0)


def test_client_gone_kills_the_script(cgi_run: Any, caplog: Any) -> None:
    import logging

    caplog.set_level(logging.INFO, "localhost")
    exchange, handler = cgi_run.request("GET", "/cgi-bin/sleep.py")
    assert cgi_run.until(lambda: handler.process is not None)
    handler.on_abort("client gone")
    assert cgi_run.until(lambda: cgi_run.services.cgi.running == 0)
    stopped = [r for r in caplog.records if "stopped" in r.getMessage()]
    assert stopped and stopped[0].levelno == logging.INFO


def test_scripts_past_the_pool_size_wait_in_a_queue(cgi_site: Any) -> None:
    from localhost.limits import Limits

    run = _Run(cgi_site)
    run.services.cgi.limits = Limits(cgi_max_running=1)
    try:
        first, _ = run.request("GET", "/cgi-bin/echo.py")
        second, _ = run.request("GET", "/cgi-bin/echo.py")
        assert run.services.cgi.running == 1 and len(run.services.cgi.waiting) == 1
        assert run.until(lambda: first.done and second.done)
        assert first.response.status == second.response.status == 200
    finally:
        run.close()
