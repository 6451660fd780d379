"""The WSGI environ builder (PEP 3333) and the HTTP_* variables it shares
with CGI (RFC 3875 §4.1.18): pure functions fed a fake exchange."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any
from wsgiref.validate import check_environ

import pytest

from localhost.app.runner import EMPTY_BODY
from localhost.app.wsgi import ErrorStream, FileWrapper, Mounted, wsgi_environ
from localhost.config.model import AppMount, Location
from localhost.handlers.environ import add_http_variables, server_name
from localhost.http.message import Headers, Request
from localhost.http.target import normalize_target


@dataclass
class FakeServer:
    server_names: tuple[str, ...] = ()


@dataclass
class FakeExchange:
    """What ``wsgi_environ`` reads of an exchange."""

    request: Request
    server: FakeServer = field(default_factory=FakeServer)
    local: tuple[str, int] = ("127.0.0.1", 8080)
    peer: tuple[str, int] = ("10.1.2.3", 50123)


def make_request(
    target: str,
    fields: list[tuple[str, str]] | None = None,
    method: str = "GET",
    version: str = "HTTP/1.1",
    content_length: int | None = None,
) -> Request:
    headers = Headers(fields if fields is not None else [("Host", "example.test")])
    request = Request(
        method, target, version, headers, headers.get("host") or "", True,
        content_length, False, False,
    )  # fmt: skip
    request.path, request.query = normalize_target(target)
    return request


def mounted(prefix: str = "/app", threaded: bool = True, workers: int = 1) -> Mounted:
    pool: Any = object() if threaded else None
    mount = AppMount("wsgi", "probe:app", (), 4 if threaded else 0)
    return Mounted(mount, Location(prefix), None, pool, workers)


def environ(
    request: Request,
    where: Mounted | None = None,
    length: int | None = None,
    scheme: str = "http",
    **kwargs: Any,
) -> dict[str, Any]:
    exchange: Any = FakeExchange(request, **kwargs)
    return wsgi_environ(exchange, where or mounted(), EMPTY_BODY, length, scheme)


def test_the_environ_passes_wsgiref_validation() -> None:
    env = environ(make_request("/app/x?y=1", [("Host", "a"), ("X-A", "1")]))
    check_environ(env)  # raises AssertionError on a breach of PEP 3333


def test_script_name_is_the_prefix_and_path_info_the_rest() -> None:
    env = environ(make_request("/app/a/b"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/a/b")
    env = environ(make_request("/app"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "")
    env = environ(make_request("/a/b"), mounted("/"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/a/b")


def test_path_info_is_decoded_and_carries_its_bytes_as_latin1() -> None:
    # (Repeated slashes are merged by the target's normalisation, as NGINX does.)
    env = environ(make_request("/app/caf%C3%A9/x%20y%3F"))
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/x y?"
    assert env["PATH_INFO"].encode("latin-1") == "/café/x y?".encode()


def test_path_info_keeps_bytes_that_are_not_utf8() -> None:
    env = environ(make_request("/app/%FF%FE"))
    assert env["PATH_INFO"] == "/\u00ff\u00fe"


def test_query_string_is_raw_and_request_uri_the_target() -> None:
    env = environ(make_request("/app/x?a=%20b&c=%C3%A9&d"))
    assert env["QUERY_STRING"] == "a=%20b&c=%C3%A9&d"
    assert env["REQUEST_URI"] == "/app/x?a=%20b&c=%C3%A9&d"
    assert environ(make_request("/app/x"))["QUERY_STRING"] == ""


def test_body_fields_are_content_variables_not_http() -> None:
    request = make_request(
        "/app/x",
        [("Host", "h"), ("Content-Type", "text/plain"), ("Content-Length", "12")],
        method="POST",
        content_length=12,
    )
    env = environ(request, length=12)
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "12"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    bare = environ(make_request("/app/x"))
    assert "CONTENT_TYPE" not in bare and "CONTENT_LENGTH" not in bare


def test_repeated_fields_are_joined_with_commas_and_cookies_with_semicolons() -> None:
    fields = [
        ("Host", "h"),
        ("Accept", "text/html"),
        ("Accept", "text/plain"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("X-Custom-Thing", "v"),
    ]
    env = environ(make_request("/app/", fields))
    assert env["HTTP_ACCEPT"] == "text/html,text/plain"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_X_CUSTOM_THING"] == "v"
    assert env["HTTP_HOST"] == "h"


def test_proxy_and_underscore_names_never_become_variables() -> None:
    fields = [("Host", "h"), ("Proxy", "http://evil"), ("X_Forwarded_For", "1.2.3.4")]
    env = environ(make_request("/app/", fields))
    assert "HTTP_PROXY" not in env
    assert not [k for k in env if k.startswith("HTTP_X")]


def test_cgi_joins_with_comma_space() -> None:
    env: dict[str, Any] = {}
    add_http_variables(
        env, Headers([("Accept", "a"), ("Accept", "b"), ("Cookie", "c=1"), ("Cookie", "d=2")])
    )
    assert env == {"HTTP_ACCEPT": "a, b", "HTTP_COOKIE": "c=1; d=2"}


def test_server_and_remote_variables() -> None:
    request = make_request("/app/", [("Host", "Example.Test:8443")], version="HTTP/1.0")
    env = environ(request, local=("127.0.0.2", 9000), peer=("10.0.0.9", 41000))
    assert env["SERVER_NAME"] == "example.test"  # host names are case-insensitive
    assert env["SERVER_PORT"] == "9000"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["REMOTE_ADDR"] == "10.0.0.9"
    assert env["REMOTE_PORT"] == "41000"
    assert env["REQUEST_METHOD"] == "GET"


@pytest.mark.parametrize(
    ("host", "names", "expected"),
    [
        ("[::1]:8080", (), "::1"),
        ("", ("*.wild", "plain.test"), "plain.test"),
        ("", ("~regex",), "127.0.0.1"),
        ("", (), "127.0.0.1"),
    ],
)
def test_server_name(host: str, names: tuple[str, ...], expected: str) -> None:
    fields = [("Host", host)] if host else []
    request = make_request("/", fields, version="HTTP/1.0")
    assert server_name(request, ("127.0.0.1", 80), names) == expected


@pytest.mark.parametrize(("threaded", "workers"), [(True, 1), (False, 1), (True, 2), (False, 3)])
def test_wsgi_variables(threaded: bool, workers: int) -> None:
    env = environ(
        make_request("/app/"), mounted(threaded=threaded, workers=workers), scheme="https"
    )
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "https"
    assert env["wsgi.multithread"] is threaded
    assert env["wsgi.multiprocess"] is (workers > 1)
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.input"] is EMPTY_BODY
    assert env["wsgi.file_wrapper"] is FileWrapper
    assert isinstance(env["wsgi.errors"], ErrorStream)


def test_each_request_gets_its_own_dict() -> None:
    where = mounted()
    first = environ(make_request("/app/a", [("Host", "h"), ("X-One", "1")]), where)
    first["SCRIPT_NAME"] = "/changed"
    second = environ(make_request("/app/b"), where)
    assert second["SCRIPT_NAME"] == "/app"
    assert "HTTP_X_ONE" not in second


def test_a_repeated_request_head_keeps_each_connection_its_own() -> None:
    # The parser hands the same Request back for a repeated head.
    where = mounted()
    request = make_request("/app/x?q=1", [("Host", "h"), ("Accept", "*/*")])
    first = environ(request, where, peer=("10.0.0.1", 1111))
    first["HTTP_PLANTED"] = "x"
    first["QUERY_STRING"] = "changed"
    second = environ(request, where, length=5, scheme="https", peer=("10.0.0.2", 2222))
    third = environ(request, where, local=("127.0.0.1", 9999))
    assert (second["REMOTE_ADDR"], second["REMOTE_PORT"]) == ("10.0.0.2", "2222")
    assert second["CONTENT_LENGTH"] == "5" and "CONTENT_LENGTH" not in third
    assert second["wsgi.url_scheme"] == "https" and third["wsgi.url_scheme"] == "http"
    assert "HTTP_PLANTED" not in second and second["QUERY_STRING"] == "q=1"
    assert second["HTTP_ACCEPT"] == "*/*" and second["PATH_INFO"] == "/x"
    assert third["SERVER_PORT"] == "9999" and second["SERVER_PORT"] == "8080"


def test_error_stream_logs_whole_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = ErrorStream("probe:app")
    with caplog.at_level(logging.ERROR, logger="localhost"):
        stream.write("one\ntw")
        stream.write("o\n\n")
        stream.writelines(["three", "\n"])
        stream.write("unfinished")
        assert [r.getMessage() for r in caplog.records] == [
            "probe:app: one",
            "probe:app: two",
            "probe:app: three",
        ]
        stream.flush()
    assert caplog.records[-1].getMessage() == "probe:app: unfinished"
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]


def test_file_wrapper_iterates_in_blocks_and_closes() -> None:
    file = io.BytesIO(b"abcdefg")
    wrapper = FileWrapper(file, 3)
    assert list(wrapper) == [b"abc", b"def", b"g"]
    wrapper.close()
    assert file.closed
