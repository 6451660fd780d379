"""WSGI applications (PEP 3333) end to end: a real server process runs
``tests/apps/wsgi_probe.py`` on the event loop (``wsgi_threads 0``) and in
threads (the default), driven by raw sockets and ``requests``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Server, read_all, recv_until, run_cli, start_server
from tests.proc import rss_kib, wait_children, wait_for

APPS = REPO / "tests" / "apps"

CONFIG = f"""
server {{
    host 127.0.0.1
    port {{port0}}
    root ./www
    wsgi_path {APPS}
    location /static {{
        root ./www
    }}
    location / {{
        wsgi wsgi_probe:app
    }}
    location /t {{
        wsgi wsgi_probe:app
        error_page 500 ./www/500.html
        body_limit 6M
    }}
    location /i {{
        wsgi wsgi_probe:app
        wsgi_threads 0
        error_page 500 ./www/500.html
        body_limit 6M
    }}
    location /v {{
        wsgi wsgi_validated:application
    }}
    location /vi {{
        wsgi wsgi_validated:application
        wsgi_threads 0
    }}
    location /one {{
        wsgi wsgi_probe:app
        wsgi_threads 1
        wsgi_queue 1
    }}
    location /fifo {{
        wsgi wsgi_probe:app
        wsgi_threads 1
    }}
    location /eight {{
        wsgi wsgi_probe:app
        wsgi_threads 8
    }}
}}
"""

#: The two ways of running an application: in the worker's threads, and on the loop.
MODES = [pytest.param("/t", id="threaded"), pytest.param("/i", id="inline")]
CUSTOM_500 = "<p>PROBE 500 PAGE</p>\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("wsgi")
    (root / "www").mkdir()
    (root / "www" / "page.txt").write_text("static page\n")
    (root / "www" / "500.html").write_text(CUSTOM_500)
    server = start_server(CONFIG, root)
    yield server
    server.stop()


@pytest.fixture
def scratch(site: Server, tmp_path: Path) -> Path:
    """A folder for the marker files of one test."""
    return tmp_path


# -- helpers ------------------------------------------------------------------


def raw(
    server: Server,
    method: str,
    path: str,
    version: str = "HTTP/1.1",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[str, dict[str, str], bytes]:
    """One request with ``Connection: close``; ``(status line, fields, body as sent)``."""
    fields = {"Host": "probe.test", "Connection": "close", **(headers or {})}
    if body:
        fields.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    data = server.raw(head.encode("latin-1") + b"\r\n" + body, timeout=10)
    return split_response(data)


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head in {data[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields, rest


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The data of a chunked body and whether its last chunk arrived."""
    out = b""
    while body:
        line, sep, body = body.partition(b"\r\n")
        if not sep:
            return out, False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return out, body.startswith(b"\r\n")
        out += body[:size]
        if len(body) < size + 2:
            return out, False
        body = body[size + 2 :]
    return out, False


def log_mark(server: Server) -> int:
    return len(server.log())


def wait_log(server: Server, mark: int, text: str, limit: float = 5.0) -> str:
    """The log written since ``mark``, once it holds ``text``."""
    found = wait_for(lambda: text in server.log()[mark:], limit)
    new = server.log()[mark:]
    assert found, f"{text!r} not logged; new log:\n{new}"
    return new


def wait_file(path: Path, limit: float = 10.0) -> str:
    """The text of ``path`` once it has some (the app creates, then writes it)."""
    assert wait_for(lambda: path.exists() and path.stat().st_size > 0, limit), (
        f"{path.name} never written"
    )
    return path.read_text()


def send_request(server: Server, path: str, timeout: float = 20.0) -> socket.socket:
    sock = server.connect(timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return sock


def barrier(server: Server) -> None:
    """A static request answered: the loop has taken every request sent before it."""
    assert requests.get(server.url("/static/page.txt"), timeout=5).status_code == 200


def assert_alive(server: Server) -> None:
    assert server.process.poll() is None, server.log()
    for prefix in ("/t", "/i"):
        assert requests.get(server.url(f"{prefix}/hello"), timeout=5).text == "hello from wsgi"


# -- bodies and framing -------------------------------------------------------


@pytest.mark.parametrize("prefix", MODES)
def test_list_body_gets_content_length(site: Server, prefix: str) -> None:
    status, fields, body = raw(site, "GET", f"{prefix}/hello")
    assert status == "HTTP/1.1 200 OK"
    assert fields["content-length"] == "15"
    assert "transfer-encoding" not in fields
    assert body == b"hello from wsgi"


@pytest.mark.parametrize("prefix", MODES)
def test_generator_body_is_chunked_on_http11(site: Server, prefix: str) -> None:
    status, fields, body = raw(site, "GET", f"{prefix}/gen")
    assert status == "HTTP/1.1 200 OK"
    assert fields["transfer-encoding"] == "chunked"
    assert "content-length" not in fields
    assert dechunk(body) == (b"one,two,three", True)


@pytest.mark.parametrize("prefix", MODES)
def test_generator_body_is_close_delimited_on_http10(site: Server, prefix: str) -> None:
    status, fields, body = raw(
        site, "GET", f"{prefix}/gen", "HTTP/1.0", {"Connection": "keep-alive"}
    )
    assert status.startswith("HTTP/1.1 200")
    assert "transfer-encoding" not in fields and "content-length" not in fields
    assert fields.get("connection", "close").lower() == "close"
    assert body == b"one,two,three"  # and the server closed: read_all returned


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize("probe", ["/cl-long", "/cl-long-gen"])
def test_body_longer_than_content_length_is_cut(site: Server, prefix: str, probe: str) -> None:
    with requests.Session() as session:
        response = session.get(site.url(prefix + probe), timeout=5)
        assert response.headers["Content-Length"] == "5"
        assert response.content == b"01234"
        # The framing held: the connection serves the next request.
        assert session.get(site.url(f"{prefix}/hello"), timeout=5).text == "hello from wsgi"


@pytest.mark.parametrize("prefix", MODES)
def test_endless_body_stops_at_content_length_and_is_closed(
    site: Server, prefix: str, scratch: Path
) -> None:
    marker = scratch / "closed"
    response = requests.get(site.url(f"{prefix}/cl-long-gen?marker={marker}"), timeout=5)
    assert response.content == b"xxxxx"
    assert wait_file(marker) == "closed"


@pytest.mark.parametrize("prefix", MODES)
def test_streamed_body_shorter_than_content_length_drops_the_connection(
    site: Server, prefix: str
) -> None:
    mark = log_mark(site)
    status, fields, body = raw(site, "GET", f"{prefix}/cl-short-gen")
    assert status == "HTTP/1.1 200 OK"
    assert fields["content-length"] == "10"
    assert body == b"01234"  # then the connection ended
    wait_log(site, mark, "sent 5 of 10 body bytes")


@pytest.mark.parametrize("prefix", MODES)
def test_whole_body_shorter_than_content_length_is_500(site: Server, prefix: str) -> None:
    mark = log_mark(site)
    status, _, body = raw(site, "GET", f"{prefix}/cl-short")
    assert status.startswith("HTTP/1.1 500")
    assert body.decode() == CUSTOM_500
    wait_log(site, mark, "the body has 5 bytes, Content-Length says 10")


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize("query", ["", "?stream=1"])
def test_head_keeps_the_application_content_length(site: Server, prefix: str, query: str) -> None:
    status, fields, body = raw(site, "HEAD", f"{prefix}/sized{query}")
    assert status == "HTTP/1.1 200 OK"
    assert fields["content-length"] == "1000"
    assert body == b""
    expected = b"a" * 500 + b"b" * 500 if query else b"a" * 1000
    assert requests.get(site.url(f"{prefix}/sized{query}"), timeout=5).content == expected


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize("code", ["204", "304"])
@pytest.mark.parametrize("query", ["", "&stream=1"])
def test_204_and_304_have_no_body(site: Server, prefix: str, code: str, query: str) -> None:
    first = f"GET {prefix}/status?code={code}{query} HTTP/1.1\r\nHost: x\r\n\r\n"
    second = f"GET {prefix}/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = site.raw((first + second).encode())
    status, fields, rest = split_response(data)
    assert status.startswith(f"HTTP/1.1 {code}")
    assert "content-length" not in fields and "transfer-encoding" not in fields
    assert fields["x-probe"] == "status"
    assert b"must not be sent" not in data
    # The next response follows the head at once: nothing was sent between.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"hello from wsgi")


@pytest.mark.parametrize("prefix", MODES)
def test_write_callable(site: Server, prefix: str) -> None:
    status, fields, body = raw(site, "GET", f"{prefix}/write")
    assert status == "HTTP/1.1 200 OK"
    assert fields["transfer-encoding"] == "chunked"
    assert dechunk(body) == (b"written-1,written-2,returned", True)


@pytest.mark.parametrize("prefix", MODES)
def test_start_response_in_the_first_iteration(site: Server, prefix: str) -> None:
    response = requests.get(site.url(f"{prefix}/late-start"), timeout=5)
    assert response.status_code == 201
    assert response.headers["X-Late"] == "yes"
    assert response.text == "started in the first iteration"


@pytest.mark.parametrize("prefix", MODES)
def test_exc_info_before_the_head_replaces_it(site: Server, prefix: str) -> None:
    response = requests.get(site.url(f"{prefix}/exc-before"), timeout=5)
    # (The reason phrase is the server's: RFC 9112 §4 lets clients ignore it.)
    assert response.status_code == 500
    assert "X-First" not in response.headers
    assert response.headers["X-Second"] == "1"
    assert response.text == "handled by the app"


@pytest.mark.parametrize("prefix", MODES)
def test_exc_info_after_the_head_reraises_and_drops(site: Server, prefix: str) -> None:
    mark = log_mark(site)
    status, fields, body = raw(site, "GET", f"{prefix}/exc-after")
    assert status == "HTTP/1.1 200 OK"
    data, complete = dechunk(body)
    assert data == b"first part,"
    assert not complete  # no last chunk: the client sees a broken response
    new = wait_log(site, mark, "KeyError: 'exc-after-probe'")
    assert "Traceback" in new
    assert_alive(site)


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize(
    ("probe", "logged"),
    [
        ("/hop", 'hop-by-hop field "Connection"'),
        ("/bad-status", "invalid status 'OK'"),
        ("/str-body", "the body must be bytes, not str"),
        ("/str-body?stream=1", "the body must be bytes, not str"),
        ("/second-start", "start_response called a second time"),
    ],
)
def test_interface_errors_are_500(site: Server, prefix: str, probe: str, logged: str) -> None:
    mark = log_mark(site)
    status, fields, body = raw(site, "GET", prefix + probe)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert body.decode() == CUSTOM_500  # the location's error_page
    wait_log(site, mark, logged)


@pytest.mark.parametrize("prefix", MODES)
def test_exception_is_500_with_traceback_and_the_worker_serves_on(
    site: Server, prefix: str
) -> None:
    mark = log_mark(site)
    response = requests.get(site.url(f"{prefix}/boom"), timeout=5)
    assert response.status_code == 500
    assert response.text == CUSTOM_500
    new = wait_log(site, mark, "RuntimeError: probe failure in the application")
    assert "Traceback (most recent call last)" in new
    assert "wsgi_probe.py" in new
    assert_alive(site)


@pytest.mark.parametrize("prefix", MODES)
def test_sys_exit_in_the_application_is_a_500(site: Server, prefix: str) -> None:
    mark = log_mark(site)
    assert requests.get(site.url(f"{prefix}/exit"), timeout=5).status_code == 500
    wait_log(site, mark, "SystemExit: 3")
    assert_alive(site)


# -- the environ ----------------------------------------------------------------


def environ_of(server: Server, path: str, **kwargs: object) -> dict[str, object]:
    status, _, body = raw(server, "GET", path, **kwargs)  # type: ignore[arg-type]
    assert status == "HTTP/1.1 200 OK", body
    return dict(json.loads(body))


@pytest.mark.parametrize(("prefix", "threaded"), [("/t", True), ("/i", False)])
def test_environ(site: Server, prefix: str, threaded: bool) -> None:
    sock = site.connect()
    with sock:
        head = (
            f"POST {prefix}/env?a=%20b&c=d%2F HTTP/1.1\r\nHost: example.test:8080\r\n"
            "X-Multi: one\r\nX-Multi: two\r\nCookie: c=1\r\nCookie: d=2\r\n"
            "Content-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
        )
        sock.sendall(head.encode())
        client_port = sock.getsockname()[1]
        _, _, body = split_response(read_all(sock))
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == prefix
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "a=%20b&c=d%2F"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "4"
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env
    assert env["SERVER_NAME"] == "example.test"
    assert env["SERVER_PORT"] == str(site.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["HTTP_X_MULTI"] == "one,two"
    assert env["HTTP_COOKIE"] == "c=1; d=2"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is threaded
    assert env["wsgi.multiprocess"] is False  # one worker
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["has.file_wrapper"] is True


def test_environ_at_the_root_location_has_an_empty_script_name(site: Server) -> None:
    env = environ_of(site, "/env", version="HTTP/1.0")
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/env"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["QUERY_STRING"] == ""
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")


@pytest.mark.parametrize("prefix", MODES)
def test_path_info_is_the_bytes_of_the_path_as_latin1(site: Server, prefix: str) -> None:
    # "é" percent-encoded as UTF-8, and a raw byte that is not UTF-8.
    env = environ_of(site, f"{prefix}/env/caf%C3%A9/%FF%20x")
    assert env["PATH_INFO"] == "/env/caf\u00c3\u00a9/\u00ff x"
    assert env["PATH_INFO"].encode("latin-1") == "/env/café/".encode() + b"\xff x"  # type: ignore[union-attr]


@pytest.mark.parametrize("prefix", MODES)
def test_wsgi_errors_goes_to_the_error_log(site: Server, prefix: str) -> None:
    mark = log_mark(site)
    assert requests.get(site.url(f"{prefix}/errors"), timeout=5).text == "logged"
    new = wait_log(site, mark, "probe error line three")
    assert "probe error line one" in new
    assert "probe error line two" in new
    assert "[ERROR]" in new


# -- wsgi.input -------------------------------------------------------------

INPUT_CASES = [
    ("all", ["line one\nline two\nend"]),
    ("none", ["line one\nline two\nend"]),
    ("n3", ["lin", "e o", "ne\n", "lin", "e t", "wo\n", "end", ""]),
    ("line", ["line one\n", "line two\n", "end", ""]),
    ("line5", ["line ", "one\n", "line ", "two\n", "end", ""]),
    ("lines", ["line one\n", "line two\n", "end"]),
    ("iter", ["line one\n", "line two\n", "end"]),
]


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize(("how", "expected"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_wsgi_input(
    site: Server, prefix: str, chunked: bool, how: str, expected: list[str]
) -> None:
    data = b"line one\nline two\nend"
    body: object = data
    if chunked:
        # requests sends a generator chunked; pieces cut across the lines.
        body = iter([data[:4], data[4:13], data[13:14], data[14:]])
    response = requests.post(
        site.url(f"{prefix}/input?how={how}"),
        data=body,
        headers={"Content-Type": "text/x-lines"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["got"] == expected
    assert answer["content_type"] == "text/x-lines"
    if not chunked:
        assert answer["content_length"] == str(len(data))


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_body_larger_than_the_window_reaches_a_slow_reader(
    site: Server, prefix: str, chunked: bool
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    body: object = data
    if chunked:
        body = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    # The threaded app sleeps 1 ms per 64 KiB read: the client is paused and resumed.
    response = requests.post(site.url(f"{prefix}/digest?pause=1"), data=body, timeout=30)
    assert response.status_code == 200
    assert response.text == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def post_chunked_until_refused(server: Server, path: str, total: int) -> bytes:
    """POST ``total`` bytes chunked (the length is not announced); the answer."""
    sock = server.connect(timeout=10)
    with sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = b"%x\r\n" % 65536 + b"z" * 65536 + b"\r\n"
        try:
            for _ in range(total // 65536):
                sock.sendall(piece)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the end
        return read_all(sock)


@pytest.mark.parametrize("prefix", MODES)
def test_body_limit_stops_the_body_with_413(site: Server, prefix: str, scratch: Path) -> None:
    marker = scratch / "consumed"
    data = post_chunked_until_refused(site, f"{prefix}/consume?marker={marker}", 8 * 1024 * 1024)
    assert data.startswith(b"HTTP/1.1 413 ")
    if prefix == "/t":
        # The application was reading: it stops with an error, never past the limit.
        text = wait_file(marker)
        name, _, size = text.partition(" after ")
        assert name == "ClientGone"
        assert int(size) <= 6 * 1024 * 1024
    assert_alive(site)


@pytest.mark.parametrize("prefix", MODES)
def test_expect_100_continue(site: Server, prefix: str) -> None:
    with site.connect() as sock:
        sock.sendall(
            f"POST {prefix}/input?how=all HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        interim = recv_until(sock, b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        status, _, body = split_response(read_all(sock))
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)["got"] == ["hello"]


# -- files and memory ---------------------------------------------------------


def download(server: Server, path: str, pid: int, pace: bool = True) -> tuple[bytes, int]:
    """GET ``path`` with a small receive buffer, reading slower than a server
    would produce; the body's sha256 and the most ``pid``'s RSS grew (KiB)."""
    base = rss_kib(pid)
    peak = base
    hasher = hashlib.sha256()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", server.port))
    received = 0
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = recv_until(sock, b"\r\n\r\n")
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        hasher.update(rest)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            hasher.update(data)
            received += len(data)
            if received >= 1 << 20:
                received = 0
                peak = max(peak, rss_kib(pid))
                if pace:
                    time.sleep(0.005)  # a slow reader: the server must wait, not buffer
    return hasher.digest(), peak - base


@pytest.mark.parametrize("prefix", MODES)
def test_file_wrapper_sends_the_file(site: Server, prefix: str, scratch: Path) -> None:
    path = scratch / "big.bin"
    data = os.urandom(20 * 1024 * 1024)
    path.write_bytes(data)
    requests.get(site.url(f"{prefix}/file?path={path}&length=10"), timeout=5)  # warm up
    # The file's read() lies (tests/apps/wsgi_probe.py NoRead): the true
    # bytes arrive only if the server sends the descriptor with sendfile.
    query = f"?path={path}&trap=1"
    digest, growth = download(site, f"{prefix}/file{query}", site.process.pid, pace=False)
    assert digest == hashlib.sha256(data).digest()
    assert growth < 8 * 1024, f"RSS grew by {growth} KiB for a 20 MiB file"
    part = requests.get(site.url(f"{prefix}/file?path={path}&skip=10&length=100"), timeout=5)
    assert part.headers["Content-Length"] == "100"
    assert part.content == data[10:110]


@pytest.mark.parametrize("prefix", MODES)
def test_a_50_mib_stream_to_a_slow_reader_stays_small(site: Server, prefix: str) -> None:
    # README: a 50 MiB streamed body with a slow reader keeps the RSS growth under 16 MiB.
    requests.get(site.url(f"{prefix}/stream?mib=1"), timeout=5)  # warm up (threads, buffers)
    digest, growth = download(site, f"{prefix}/stream?mib=50&length=1", site.process.pid)
    assert digest == hashlib.sha256(b"x" * 50 * 1024 * 1024).digest()
    assert growth < 16 * 1024, f"RSS grew by {growth} KiB"


@pytest.mark.parametrize("prefix", MODES)
def test_a_client_leaving_mid_stream_closes_the_iterable(
    site: Server, prefix: str, scratch: Path
) -> None:
    marker = scratch / "closed"
    sock = send_request(site, f"{prefix}/forever?marker={marker}")
    recv_until(sock, b"xxxx")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # a reset, mid-body
    assert wait_file(marker) == "closed"
    assert_alive(site)


# -- threads: queue, order, isolation ----------------------------------------


def blocking_path(prefix: str, scratch: Path, ident: str) -> str:
    return (
        f"{prefix}/blocking?started={scratch / 'started'}&release={scratch / 'release'}&id={ident}"
    )


def started(scratch: Path) -> list[str]:
    path = scratch / "started"
    return path.read_text().split() if path.exists() else []


def test_beyond_the_queue_requests_get_503(site: Server, scratch: Path) -> None:
    running = send_request(site, blocking_path("/one", scratch, "a"))
    assert wait_for(lambda: started(scratch) == ["a"])
    waiting = send_request(site, blocking_path("/one", scratch, "b"))
    barrier(site)
    refused = requests.get(site.url(blocking_path("/one", scratch, "c")), timeout=5)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    (scratch / "release").touch()
    with running, waiting:
        assert read_all(running).endswith(b"released a")
        assert read_all(waiting).endswith(b"released b")
    assert started(scratch) == ["a", "b"]


def test_requests_wait_for_a_thread_in_arrival_order(site: Server, scratch: Path) -> None:
    socks = [send_request(site, blocking_path("/fifo", scratch, "first"))]
    assert wait_for(lambda: started(scratch) == ["first"])
    names = ["second", "third", "fourth", "fifth"]
    for name in names:
        socks.append(send_request(site, blocking_path("/fifo", scratch, name)))
        barrier(site)
    (scratch / "release").touch()
    for sock, name in zip(socks, ["first", *names], strict=True):
        with sock:
            assert read_all(sock).endswith(f"released {name}".encode())
    assert started(scratch) == ["first", *names]


def test_a_slow_application_does_not_slow_static_files(site: Server, scratch: Path) -> None:
    socks = [send_request(site, blocking_path("/eight", scratch, str(n))) for n in range(8)]
    try:
        assert wait_for(lambda: len(started(scratch)) == 8)
        latencies = []
        for _ in range(3):
            begin = time.perf_counter()
            response = requests.get(site.url("/static/page.txt"), timeout=5)
            latencies.append(time.perf_counter() - begin)
            assert response.text == "static page\n"
        assert min(latencies) < 0.050, latencies
    finally:
        (scratch / "release").touch()
        for sock in socks:
            with sock:
                assert b"released" in read_all(sock)


# -- the validator ---------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v", "/vi"])
def test_wsgiref_validator_finds_nothing_wrong(site: Server, prefix: str) -> None:
    mark = log_mark(site)
    with requests.Session() as session:
        assert session.get(site.url(f"{prefix}/"), timeout=5).text == "validated ok"
        head = session.head(site.url(f"{prefix}/"), timeout=5)
        assert head.headers["Content-Length"] == "12" and head.content == b""
        posted = session.post(site.url(f"{prefix}/form"), data=b"a=1&b=2", timeout=5)
        assert posted.text == "posted a=1&b=2"
        assert session.get(site.url(f"{prefix}/stream"), timeout=5).text == "streamed body"
        assert session.get(site.url(f"{prefix}/write"), timeout=5).text == "written and returned"
    barrier(site)
    new = site.log()[mark:]
    for problem in ("AssertionError", "WSGIWarning", "Traceback", "Exception ignored"):
        assert problem not in new, new


# -- the configuration ------------------------------------------------------


def position(after: str, token: str, text: str) -> str:
    """``line:column`` (1-based) in ``text`` of the first ``token`` in its tail ``after``."""
    index = len(text) - len(after) + after.index(token)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{line}:{column}"


#: (lines of a location, the text the error points at, the message)
BAD_CONFIGS = [
    ("wsgi nosuchmodule:app", "wsgi", 'no module named "nosuchmodule"'),
    ("wsgi wsgi_probe:missing", "wsgi", '"missing" not found in'),
    ("wsgi wsgi_broken:app", "wsgi", "RuntimeError: wsgi_broken refuses to import"),
    ("wsgi wsgi_probe:not_callable", "wsgi", "int object is not callable"),
    ("wsgi wsgi_probe", "wsgi_probe", "is not MODULE:ATTRIBUTE"),
    ("wsgi wsgi_probe:app\n        wsgi_threads -1", "-1", "wsgi_threads: expected a number"),
    ("wsgi wsgi_probe:app\n        wsgi_threads abc", "abc", "wsgi_threads: expected a number"),
    ("wsgi wsgi_probe:app\n        cgi .py python3", "wsgi", '"wsgi" and "cgi" cannot share'),
]


@pytest.mark.parametrize(
    ("body", "token", "message"), BAD_CONFIGS, ids=[c[0].split()[-1] for c in BAD_CONFIGS]
)
def test_configuration_errors(tmp_path: Path, body: str, token: str, message: str) -> None:
    text = (
        f"server {{\n    host 127.0.0.1\n    port 1\n    wsgi_path {APPS}\n"
        f"    location /app {{\n        {body}\n    }}\n}}\n"
    )
    config = tmp_path / "bad.conf"
    config.write_text(text)
    where = f"{config}:{position(text[text.index('location') :], token, text)}: "
    for args in (["-t", str(config)], [str(config)]):
        result = run_cli(args, cwd=tmp_path)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if where in line]
        assert lines, result.stderr
        assert message in lines[0], result.stderr


RELOADABLE = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [{text!r}.encode(), b" multiprocess=%r" % environ["wsgi.multiprocess"]]
"""


def test_wsgi_path_is_relative_to_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "in_lib.py").write_text(RELOADABLE.format(text="from lib"))
    (tmp_path / "beside.py").write_text(RELOADABLE.format(text="from the config folder"))
    config = (
        "server {\n host 127.0.0.1\n port {port0}\n"
        " location /lib {\n  wsgi in_lib:app\n  wsgi_path ./lib\n }\n"
        " location /beside {\n  wsgi beside:app\n }\n}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = start_server(config, tmp_path)
    try:
        assert requests.get(server.url("/lib"), timeout=5).text.startswith("from lib ")
        assert requests.get(server.url("/beside"), timeout=5).text.startswith(
            "from the config folder "
        )
    finally:
        server.stop()
    # Started from another folder: the paths are still the configuration's.
    result = run_cli(["-t", str(tmp_path / "test.conf")], cwd=elsewhere)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reimports_the_application(tmp_path: Path, workers: int) -> None:
    module = tmp_path / "reloadable.py"
    module.write_text(RELOADABLE.format(text="version one"))
    config = (
        f"worker_processes {workers}\nserver {{\n host 127.0.0.1\n port {{port0}}\n"
        " location / {\n  wsgi reloadable:app\n }\n}\n"
    )
    server = start_server(config, tmp_path)
    try:
        if workers > 1:
            wait_children(server.process.pid, workers)
        multi = "True" if workers > 1 else "False"
        first = requests.get(server.url("/"), timeout=5).text
        assert first == f"version one multiprocess={multi}"
        # Another length too: a module rewritten in the same second must not
        # be taken from a stale bytecode cache.
        module.write_text(RELOADABLE.format(text="version two, reloaded"))
        server.process.send_signal(signal.SIGHUP)

        def reloaded() -> bool:
            try:
                text = requests.get(server.url("/"), timeout=5).text
            except requests.ConnectionError:
                return False
            return text == f"version two, reloaded multiprocess={multi}"

        assert wait_for(reloaded, 15), server.log()
        assert server.process.poll() is None
    finally:
        server.stop()


def test_a_request_waiting_for_a_thread_is_dropped_when_its_client_leaves(
    site: Server, scratch: Path
) -> None:
    running = send_request(site, blocking_path("/one", scratch, "a"))
    assert wait_for(lambda: started(scratch) == ["a"])
    leaving = send_request(site, blocking_path("/one", scratch, "gone"))
    barrier(site)
    mark = log_mark(site)
    leaving.close()
    wait_log(site, mark, "client went away")
    (scratch / "release").touch()
    with running:
        assert read_all(running).endswith(b"released a")
    # The next request is taken: the one that left never ran.
    after = requests.get(site.url("/one/hello"), timeout=5)
    assert after.text == "hello from wsgi"
    assert started(scratch) == ["a"]


def test_the_worker_survived_everything(site: Server) -> None:
    """Last in the file: every test above ran against the same worker."""
    assert_alive(site)
    mark = log_mark(site)
    assert requests.get(site.url("/env"), timeout=5).status_code == 200
    barrier(site)
    assert "Traceback" not in site.log()[mark:]


def test_a_body_the_server_paused_has_no_body_deadline(tmp_path: Path) -> None:
    """The application reads slowly: while the server holds the client back
    (the body window is full), the client's silence is not a 408."""
    server = start_server(
        f"""
server {{
    host 127.0.0.1
    port {{port0}}
    client_body_timeout 1s
    location / {{
        wsgi wsgi_probe:app
        wsgi_path {APPS}
        body_limit 2M
    }}
}}
""",
        tmp_path,
    )
    try:
        data = os.urandom(640 * 1024)
        # 10 blocks of 64 KiB, 700 ms apart: the window (256 KiB) stays full
        # for well over a second at a time.
        response = requests.post(server.url("/digest?pause=700"), data=data, timeout=40)
        assert response.status_code == 200, response.text
        assert response.text == f"{len(data)} {hashlib.sha256(data).hexdigest()}"
    finally:
        server.stop()
