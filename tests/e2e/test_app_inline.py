"""App API routes on the event loop (``inline=True``) answer as routes in
threads do: a real server mounts a small App whose every route exists twice,
under ``/i`` (inline) and ``/t`` (threaded), and raw sockets compare them.

The inline route of a request without a body takes a shorter path to the
client (``app_handler`` sends it with no handler object); what it does not
take (HEAD, 204, a Content-Length that disagrees with the body, a field that
would split the head, an invalid status, a non-``Response`` answer, a stream,
an exception) must still come out as the threaded route's answer.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Server, read_all, recv_until, start_server
from tests.proc import wait_for

APP = """
from localhost import App, Response

import enum

app = App()
RUNS = {"/i": 0, "/t": 0}
ERROR_PAGE_RUNS = []


class Kind(str, enum.Enum):
    A = "a"  # equal to "a", but str() gives "Kind.A"


def mutated(req):
    headers = {"x-a": "1"}
    answer = Response(200, headers, b"m")
    headers["x-b"] = "2"  # after the answer was made: not sent
    return answer


def error_page(req):
    ERROR_PAGE_RUNS.append(req.path)
    return Response(500, {}, b"the error page, run %d" % len(ERROR_PAGE_RUNS))


def big(req):  # 4 MiB in 64 pieces; counts its runs
    RUNS[req.path[:2]] += 1
    return Response(200, {}, (b"%06d" % i * 10923 for i in range(64)))


def routes(prefix, inline):
    def add(method, path, fn):
        app.route(method, prefix + path, inline=inline)(fn)

    add("GET", "/hello", lambda req: Response(200, {"content-type": "text/plain"}, b"hello"))
    add("GET", "/sized", lambda req: Response(200, [("Content-Length", "5")], b"hello"))
    add("GET", "/long", lambda req: Response(200, [("Content-Length", "3")], b"hello"))
    add("GET", "/short", lambda req: Response(200, [("Content-Length", "9")], b"hello"))
    add("GET", "/empty", lambda req: Response(204, {"x-empty": "yes"}))
    add("GET", "/split", lambda req: Response(200, {"x-value": req.query.replace("%0A", "\\n")}))
    add("GET", "/status/:code", lambda req, code: Response(int(code), {}, b"status"))
    add("GET", "/text", lambda req: "some text")
    add("GET", "/json", lambda req: {"a": 1})
    add("GET", "/str-body", lambda req: Response(200, {}, "caf\\u00e9"))
    add("GET", "/user/:id", lambda req, id: Response(200, {}, id.encode()))
    add("GET", "/scheme", lambda req: req.scheme)
    add("GET", "/number", lambda req: Response(200, {"x-number": 5}, b"n"))
    add("GET", "/stream", lambda req: Response(200, {}, (part for part in (b"ab", b"cd"))))
    add("GET", "/boom", lambda req: 1 / 0)
    add("GET", "/big", big)
    add("GET", "/runs", lambda req: Response(200, {}, str(RUNS[prefix]).encode()))
    add("GET", "/list-value", lambda req: Response(200, {"x-list": ["a", "b"]}, b"l"))
    add("GET", "/kind-str", lambda req: Response(200, {"x-kind": "a"}, b"k"))
    add("GET", "/kind-enum", lambda req: Response(200, {"x-kind": Kind.A}, b"k"))
    add("GET", "/mutated", mutated)
    add("GET", "/error-page", error_page)


routes("/i", True)
routes("/t", False)
"""

CONFIG = """
worker_processes 1
server {{
    host 127.0.0.1
    port {{port0}}
    wsgi_path {apps}
    location / {{
        app inline_probe:app
    }}
}}
"""

MODES = [pytest.param("/i", id="inline"), pytest.param("/t", id="threaded")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("inline")
    apps = root / "apps"
    apps.mkdir()
    (apps / "inline_probe.py").write_text(APP)
    server = start_server(CONFIG.format(apps=apps), root)
    yield server
    server.stop()


def ask(server: Server, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    """One request with ``Connection: close``: (status line, fields, body as sent)."""
    data = server.raw(f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head in {data[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields, body


def get(sock: socket.socket, path: str, host: str) -> bytes:
    """The status line and body of a GET on a kept-alive connection."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = recv_until(sock, b"\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head.split(b"\r\n")[0] + b" " + body[:64]


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize(
    ("path", "status", "body", "length"),
    [
        ("/hello", "200 OK", b"hello", "5"),
        ("/sized", "200 OK", b"hello", "5"),
        ("/long", "200 OK", b"hel", "3"),
        ("/text", "200 OK", b"some text", "9"),
        ("/json", "200 OK", b'{"a": 1}', "8"),
        ("/str-body", "200 OK", "caf\u00e9".encode(), "5"),
        ("/user/J%C3%BCrgen", "200 OK", "J\u00fcrgen".encode(), "7"),
        ("/status/201", "201 Created", b"status", "6"),
        ("/status/599", "599 ", b"status", "6"),
    ],
)
def test_whole_answers(
    site: Server, prefix: str, path: str, status: str, body: bytes, length: str
) -> None:
    line, fields, got = ask(site, prefix + path)
    assert line == f"HTTP/1.1 {status}"
    assert fields["content-length"] == length
    assert got == body


@pytest.mark.parametrize("prefix", MODES)
def test_head_has_the_get_length_and_no_body(site: Server, prefix: str) -> None:
    line, fields, body = ask(site, f"{prefix}/hello", "HEAD")
    assert line == "HTTP/1.1 200 OK"
    assert fields["content-length"] == "5" and fields["content-type"] == "text/plain"
    assert body == b""


@pytest.mark.parametrize("prefix", MODES)
def test_204_has_no_body_and_no_length(site: Server, prefix: str) -> None:
    line, fields, body = ask(site, f"{prefix}/empty")
    assert line == "HTTP/1.1 204 No Content"
    assert fields["x-empty"] == "yes"
    assert "content-length" not in fields and body == b""


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/short", "the body has 5 bytes, Content-Length says 9"),
        ("/split?a%0AX-Evil:%201", "CR, LF or NUL in a response field"),
        ("/status/600", "invalid status 600"),
        ("/status/100", "invalid status 100"),
    ],
)
def test_what_breaks_the_interface_is_500(
    site: Server, prefix: str, path: str, logged: str
) -> None:
    mark = len(site.log())
    line, fields, _ = ask(site, prefix + path)
    assert line == "HTTP/1.1 500 Internal Server Error"
    assert "x-evil" not in fields
    assert wait_for(lambda: logged in site.log()[mark:]), site.log()[mark:]


@pytest.mark.parametrize("prefix", MODES)
def test_keep_alive_answers_follow_each_other(site: Server, prefix: str) -> None:
    request = f"GET {prefix}/hello HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    with site.connect() as sock:
        sock.sendall(request * 3)
        data = recv_until(sock, b"hello", limit=5.0)
        while data.count(b"hello") < 3:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
        sock.shutdown(socket.SHUT_WR)
        data += read_all(sock)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert data.endswith(b"\r\n\r\nhello")


@pytest.mark.parametrize("prefix", MODES)
def test_the_scheme_is_the_transports(site: Server, tmp_path: Path, prefix: str) -> None:
    assert ask(site, f"{prefix}/scheme")[2] == b"http"
    # A TLS transport has ``scheme = "https"``; here the plain socket transport
    # says so, set before the server starts.
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "inline_probe.py").write_text(APP)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "sitecustomize.py").write_text(
        'from localhost.io.transport import SocketTransport\nSocketTransport.scheme = "https"\n'
    )
    env = {"PYTHONPATH": f"{tmp_path / 'boot'}:{REPO}"}
    server = start_server(CONFIG.format(apps=tmp_path / "apps"), tmp_path, env=env)
    try:
        assert ask(server, f"{prefix}/scheme")[2] == b"https"
    finally:
        server.stop()


@pytest.mark.parametrize("prefix", MODES)
def test_a_header_value_is_made_str(site: Server, prefix: str) -> None:
    line, fields, body = ask(site, f"{prefix}/number")
    assert line == "HTTP/1.1 200 OK"
    assert fields["x-number"] == "5" and body == b"n"


@pytest.mark.parametrize("prefix", MODES)
def test_a_streamed_answer_is_chunked(site: Server, prefix: str) -> None:
    line, fields, body = ask(site, f"{prefix}/stream")
    assert line == "HTTP/1.1 200 OK"
    assert fields["transfer-encoding"] == "chunked"
    assert body == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"


@pytest.mark.parametrize("prefix", MODES)
def test_an_exception_is_500_and_logged(site: Server, prefix: str) -> None:
    mark = len(site.log())
    line, _, _ = ask(site, f"{prefix}/boom")
    assert line == "HTTP/1.1 500 Internal Server Error"
    assert wait_for(lambda: "ZeroDivisionError" in site.log()[mark:]), site.log()[mark:]


@pytest.mark.parametrize("prefix", MODES)
def test_another_method_is_405_and_options_is_answered(site: Server, prefix: str) -> None:
    line, fields, _ = ask(site, f"{prefix}/hello", "DELETE")
    assert line == "HTTP/1.1 405 Method Not Allowed"
    assert fields["allow"] == "GET, HEAD, OPTIONS"
    line, fields, _ = ask(site, f"{prefix}/hello", "OPTIONS")
    assert line == "HTTP/1.1 200 OK" and fields["allow"] == "GET, HEAD, OPTIONS"


def test_one_request_at_a_time_on_a_kept_alive_connection(site: Server) -> None:
    """Each request arrives alone, after the previous answer: a head the
    server has seen before takes its shortest path, and each still gets its
    own answer (the same head again, then others, then the first again)."""
    paths = ["/i/hello", "/i/hello", "/i/user/1", "/t/user/2", "/i/nothing", "/i/hello"]
    with site.connect() as sock:
        answers = [get(sock, path, "t") for path in paths]
    assert answers[:4] == [
        b"HTTP/1.1 200 OK hello",
        b"HTTP/1.1 200 OK hello",
        b"HTTP/1.1 200 OK 1",
        b"HTTP/1.1 200 OK 2",
    ]
    assert answers[4].startswith(b"HTTP/1.1 404 Not Found ")
    assert answers[5] == b"HTTP/1.1 200 OK hello"


@pytest.mark.parametrize("prefix", MODES)
def test_a_stream_longer_than_the_socket_takes_runs_the_route_once(
    site: Server, prefix: str
) -> None:
    """4 MiB from a generator: the answer goes on as the client reads (the
    route is not run again when its handler takes over the answer)."""
    runs = int(ask(site, f"{prefix}/runs")[2])
    with site.connect() as sock:
        sock.sendall(f"GET {prefix}/big HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = recv_until(sock, b"0\r\n\r\n", limit=20.0)
        sock.sendall(f"GET {prefix}/runs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        after = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"chunked" in head.lower()
    parts = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        parts.append(body[:size])
        body = body[size + 2 :]
    assert b"".join(parts) == b"".join(b"%06d" % i * 10923 for i in range(64))
    assert after.endswith(str(runs + 1).encode())


@pytest.mark.parametrize("prefix", MODES)
def test_header_values_are_sent_as_str_gives_them(site: Server, prefix: str) -> None:
    assert ask(site, f"{prefix}/list-value")[1]["x-list"] == "['a', 'b']"
    # A str subclass equal to "a" that prints otherwise is sent as it prints,
    # also after a response with the plain "a".
    assert ask(site, f"{prefix}/kind-str")[1]["x-kind"] == "a"
    assert ask(site, f"{prefix}/kind-enum")[1]["x-kind"] == "Kind.A"


@pytest.mark.parametrize("prefix", MODES)
def test_a_dict_changed_after_the_response_was_made_is_not_sent(site: Server, prefix: str) -> None:
    _, fields, body = ask(site, f"{prefix}/mutated")
    assert fields["x-a"] == "1" and "x-b" not in fields and body == b"m"


ERROR_PAGE_CONFIG = """
worker_processes 1
server {{
    host 127.0.0.1
    port {{port0}}
    root ./www
    location / {{
        app inline_probe:app
        wsgi_path {apps}
        error_page 500 {page}
    }}
}}
"""


@pytest.mark.parametrize("page", MODES)
def test_a_failing_inline_route_with_an_error_page_runs_the_page_once(
    server_factory, tmp_path: Path, page: str
) -> None:
    """The error page of an inline route that raises is served by its own
    request (an internal redirect), once, whether the page's route runs
    inline or in a thread."""
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "inline_probe.py").write_text(APP)
    (tmp_path / "www").mkdir()
    config = ERROR_PAGE_CONFIG.format(apps=apps, page=f"{page}/error-page")
    server = server_factory(config)
    line, _, body = ask(server, "/i/boom")
    assert line == "HTTP/1.1 500 Internal Server Error"
    assert body == b"the error page, run 1"
    assert ask(server, "/i/boom")[2] == b"the error page, run 2"


RELOAD_STATIC = """
server {
    host 127.0.0.1
    port {port0}
    server_name example.com
    root ./a
    location / {
        methods GET
    }
}
"""

RELOAD_APP = """
server {{
    host 127.0.0.1
    port {{port0}}
    location /app {{
        app inline_probe:app
        wsgi_path {apps}
    }}
}}
"""


def reload(server: Server, old: str = "", new: str = "") -> None:
    """Replace ``old`` by ``new`` in the server's file, SIGHUP, and wait for the reload."""
    mark = len(server.log())
    server.config.write_text(server.config.read_text().replace(old, new))
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "configuration reloaded" in server.log()[mark:])


def test_a_kept_alive_connection_follows_a_reload(server_factory, tmp_path: Path) -> None:
    """SIGHUP in a single process: the next request of a connection open
    before it is routed by the new configuration, not by the server block
    the connection or the remembered head kept from the old one."""
    for root in ("a", "b"):
        (tmp_path / root).mkdir()
        (tmp_path / root / "x.txt").write_text(root.upper())
    server = server_factory(RELOAD_STATIC, args=["-w", "1"])
    with server.connect() as sock:
        assert get(sock, "/x.txt", "example.com") == b"HTTP/1.1 200 OK A"
        assert get(sock, "/x.txt", "example.com") == b"HTTP/1.1 200 OK A"
        reload(server, "root ./a", "root ./b")
        assert get(sock, "/x.txt", "example.com") == b"HTTP/1.1 200 OK B"


def test_a_kept_alive_connection_to_an_app_follows_a_reload(server_factory, tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "inline_probe.py").write_text(APP)
    server = server_factory(RELOAD_APP.format(apps=apps), args=["-w", "1"])
    with server.connect() as sock:
        for _ in range(2):
            assert get(sock, "/app/i/hello", "t") == b"HTTP/1.1 200 OK hello"
        reload(server)
        for _ in range(2):
            assert get(sock, "/app/i/hello", "t") == b"HTTP/1.1 200 OK hello"
