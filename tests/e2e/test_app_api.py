"""The App API (``localhost.App``) end to end: a real server process serves an
App module written into a temporary folder, started as
``python -m localhost MODULE:APP``, mounted from a configuration file
(``location /api { app ... }``), or run by its own ``App.from_config`` and
``serve``; driven by raw sockets and ``requests``.

The App's teardown hook appends ``HOST PORT REASON`` to ``events.log`` beside
the module, so a test knows how, and how many times, each of its connections
ended. Connections that must be told apart from the test's own come from other
loopback addresses (``127.0.0.2``...: the whole of 127/8 is local on Linux).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import (
    REPO,
    Server,
    free_port,
    read_all,
    recv_until,
    run_cli,
    start_server,
)
from tests.proc import live_children, wait_children, wait_for

#: The App under test. Hooks: 127.0.0.2 is dropped at accept, 127.0.0.3 makes
#: the setup hook raise, 127.0.0.4 the teardown hook; /admin needs a token.
APP_MODULE = """
import hashlib
import os
import threading
import time
from pathlib import Path

from localhost import Action, App, Response

HERE = Path(__file__).resolve().parent
EVENTS = HERE / "events.log"

app = App(body_limit=8 * 1024 * 1024)
small = App()  # the default body_limit
not_an_app = 42


@small.route("POST", "/size")
def size(req):
    return str(len(req.body().read()))


@app.connection_setup_hook
def setup(peer, local):
    if peer[0] == "127.0.0.2":
        return Action.DROP
    if peer[0] == "127.0.0.3":
        raise RuntimeError("setup hook exploded")
    return Action.PROCEED


@app.pre_routing_hook
def pre_routing(req):
    if req.route_path.startswith("/admin"):
        if req.headers.get("authorization") != "Bearer letmein":
            return Response(401, {"WWW-Authenticate": "Bearer"}, "token needed\\n")
    if req.route_path == "/drop":
        return Action.DROP
    if req.route_path == "/pre-raise":
        raise RuntimeError("pre-routing hook exploded")
    return None


@app.connection_teardown_hook
def teardown(peer, reason):
    with open(EVENTS, "a") as events:
        events.write(f"{peer[0]} {peer[1]} {reason}\\n")


@app.connection_teardown_hook
def teardown_raises(peer, reason):
    if peer[0] == "127.0.0.4":
        raise RuntimeError("teardown hook exploded")


@app.route("GET", "/")
def index(req):
    return "index of the app"


@app.route("GET", "/user/:id")
def user(req, id):
    return Response(200, {"content-type": "text/plain; charset=utf-8"}, id.encode())


@app.route("POST", "/upper")
def upper(req):
    return Response(200, body=req.body().read().upper())


@app.route("POST", "/upper-inline", inline=True)
def upper_inline(req):
    return Response(200, body=req.body().read().upper())


@app.route("POST", "/json")
def echo_json(req):
    return {"got": req.json()}


@app.route("GET", "/status/:code")
def status(req, code):
    return Response(int(code), body="odd status")


@app.route("POST", "/digest")
def digest(req):
    stream = req.body()
    sha = hashlib.sha256()
    size = reads = 0
    while True:
        piece = stream.read(65536)
        if not piece:
            break
        sha.update(piece)
        size += len(piece)
        reads += 1
    return {"size": size, "sha256": sha.hexdigest(), "reads": reads}


@app.route("POST", "/first/:n")
def first(req, n):
    return req.body().read(int(n))


@app.route("GET", "/api/v1/*")
def api(req, segment):
    return {"segment": segment}


@app.route("GET", "/static/**")
def static(req, rest):
    return Response.file(Path("static") / rest)


@app.route("GET", "/download")
def download(req):
    return Response.file(req.args["name"][0], root="static")


@app.route("GET", "/p/lit")
def p_literal(req):
    return "literal"


@app.route("GET", "/p/:x")
def p_param(req, x):
    return f"param {x}"


@app.route("GET", "/p/**")
def p_rest(req, rest):
    return f"rest {rest}"


@app.route("GET", "/q/*")
def q_star(req, segment):
    return f"star {segment}"


@app.route("GET", "/q/**")
def q_rest(req, rest):
    return f"rest {rest}"


@app.route("GET", "/stream")
def stream(req):
    def parts():
        for n in range(3):
            yield b"part %d\\n" % n

    return Response(200, {"Content-Type": "text/plain"}, parts())


@app.route("GET", "/stream-inline", inline=True)
def stream_inline(req):
    return Response(200, {"Content-Type": "text/plain"}, (b"part %d\\n" % n for n in range(3)))


@app.route("GET", "/stream-wait/:token")
def stream_wait(req, token):
    go = HERE / f"go-{token}"

    def parts():
        yield b"first\\n"
        deadline = time.monotonic() + 20
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"second\\n"

    return Response(200, {"Content-Type": "text/plain"}, parts())


@app.route("GET", "/hold/:token", inline=True)
def hold(req, token):
    # Blocks this worker's event loop until the test creates the file.
    (HERE / f"held-{token}").touch()
    go = HERE / f"go-{token}"
    deadline = time.monotonic() + 20
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return str(os.getpid())


@app.route("GET", "/boom")
def boom(req):
    raise RuntimeError("handler exploded")


@app.route("GET", "/boom-inline", inline=True)
def boom_inline(req):
    raise RuntimeError("inline handler exploded")


@app.route("GET", "/bytes")
def give_bytes(req):
    return b"raw bytes"


@app.route("GET", "/str")
def give_str(req):
    return "text \\u00e9"


@app.route("GET", "/dict")
def give_dict(req):
    return {"a": [1, 2], "b": None}


@app.route("GET", "/none")
def give_none(req):
    return None


@app.route("GET", "/thread")
def thread(req):
    return threading.current_thread().name


@app.route("GET", "/thread-inline", inline=True)
def thread_inline(req):
    return threading.current_thread().name


@app.route("GET", "/pid")
def pid(req):
    return str(os.getpid())


@app.route("GET", "/admin")
def admin(req):
    return "welcome"


@app.route("GET", "/request")
def request_view(req):
    return {
        "method": req.method,
        "path": req.path,
        "route_path": req.route_path,
        "query": req.query,
        "args": req.args,
        "agent": req.headers.get("user-agent"),
        "peer": req.peer[0],
        "local_port": req.local[1],
        "scheme": req.scheme,
    }


@app.route("*", "/any")
def any_method(req):
    return req.method


@app.fallback
def missing(req):
    return Response(404, {"Content-Type": "text/plain"}, f"no route for {req.route_path}\\n")
"""

#: A WSGI callable served as MODULE:APP.
WSGI_MODULE = """
def application(environ, start_response):
    body = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{environ['QUERY_STRING']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

#: ``App.from_config`` and ``serve`` from a script run as ``python mixed.py``.
MIXED_SCRIPT = """
import sys

from localhost import App

app = App.from_config("mixed.conf")


@app.route("GET", "/hello/:name")
def hello(req, name):
    return f"hello {name} from the app"


if __name__ == "__main__":
    sys.exit(app.serve())
"""

MIXED_CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /files {
        root ./static
    }
}
server {
    host 127.0.0.1
    port {port1}
    location /plain {
        root ./www
    }
    location = / {
        redirect /plain/index.html
    }
}
"""

MOUNT_CONFIG = """
client_header_timeout 1s
keepalive_timeout 1s
server {
    host 127.0.0.1
    port {port0}
    location /api {
        app webtest:app
        body_limit 6m
    }
    location /admin {
        root ./static
    }
    location ~ ^/q/ {
        app webtest:app
    }
}
"""

BIG_SIZE = 1024 * 1024 + 7
SECRET = "TOP SECRET\n"


def build(folder: Path) -> None:
    """The App module and the files its routes serve."""
    (folder / "webtest.py").write_text(APP_MODULE)
    static = folder / "static"
    (static / "sub").mkdir(parents=True)
    (static / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (static / "style.css").write_text("body { color: red }\n")
    (static / "sub" / "page.html").write_text("<p>page</p>\n")
    (static / "a.txt").write_text("file a\n")
    (folder / "outside").mkdir()
    (folder / "outside" / "secret.txt").write_text(SECRET)
    os.symlink(folder / "outside" / "secret.txt", static / "escape.txt")
    os.symlink(folder / "outside", static / "out")


def launch(
    args: list[str],
    cwd: Path,
    ports: list[int],
    logs: Path | None = None,
    ready_timeout: float = 15.0,
) -> Server:
    """Run ``python ARGS`` in ``cwd``, its output in a log file in ``logs`` (default
    ``cwd``); returns once every port accepts connections."""
    log_path = (logs or cwd) / f"server-{ports[0]}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    server = Server(process, ports, cwd / args[-1], log_path)
    deadline = time.monotonic() + ready_timeout
    for port in ports:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"exited with {process.returncode}:\n{server.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    server.stop(signal.SIGKILL)
                    raise AssertionError(f"did not listen in time:\n{server.log()}") from None
                time.sleep(0.02)
    return server


def serve_app(target: str, cwd: Path, *options: str, logs: Path | None = None) -> Server:
    """``python -m localhost TARGET --host 127.0.0.1 --port N OPTIONS`` in ``cwd``."""
    port = free_port()
    args = ["-m", "localhost", target, "--host", "127.0.0.1", "--port", str(port), *options]
    return launch(args, cwd, [port], logs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = tmp_path_factory.mktemp("app")
    build(found)
    return found


@pytest.fixture(scope="module")
def site(folder: Path) -> Iterator[Server]:
    server = serve_app("webtest:app", folder)
    yield server
    server.stop()


# -- helpers ------------------------------------------------------------------


def get(server: Server, path: str, port: int | None = None, **kwargs: object) -> requests.Response:
    return requests.get(server.url(path, port), timeout=10, **kwargs)  # type: ignore[arg-type]


def exchange(
    server: Server, data: bytes, source: str = "127.0.0.1", timeout: float = 10.0
) -> tuple[bytes, int]:
    """Send ``data`` from ``source``, read until the server closes; (bytes, local port)."""
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=timeout, source_address=(source, 0)
    ) as sock:
        port = sock.getsockname()[1]
        sock.sendall(data)
        return read_all(sock), port


def request_bytes(path: str, close: bool = True, method: str = "GET") -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{connection}\r\n".encode()


def split(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head in {data[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields, body


def dechunk(body: bytes) -> bytes:
    """The data of a complete chunked body (AssertionError if incomplete)."""
    out = b""
    while True:
        line, sep, body = body.partition(b"\r\n")
        assert sep, "chunked body cut short"
        size = int(line.split(b";")[0], 16)
        if size == 0:
            assert body.startswith(b"\r\n"), "no end of the chunked body"
            return out
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


def events(folder: Path) -> list[tuple[str, int, str]]:
    """``(host, port, reason)`` per teardown hook call so far."""
    path = folder / "events.log"
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        host, port, reason = line.split(" ", 2)
        found.append((host, int(port), reason))
    return found


def reasons_of(folder: Path, host: str, port: int) -> list[str]:
    return [reason for h, p, reason in events(folder) if (h, p) == (host, port)]


def after_barrier(server: Server, folder: Path, host: str, port: int) -> list[str]:
    """The teardown reasons recorded for ``host:port``, read after a barrier:
    another connection (from 127.0.0.5, never the same peer) is opened,
    answered, closed and torn down, so that a call for ``host:port`` due
    before it has been recorded by then."""
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=10, source_address=("127.0.0.5", 0)
    ) as sock:
        own = sock.getsockname()[1]
        sock.sendall(request_bytes("/"))
        read_all(sock)
    assert wait_for(lambda: reasons_of(folder, "127.0.0.5", own), 10), "barrier not torn down"
    return reasons_of(folder, host, port)


def wait_teardown(server: Server, folder: Path, host: str, port: int) -> list[str]:
    """Every reason recorded for ``host:port``, once there is one (then after a barrier)."""
    assert wait_for(lambda: reasons_of(folder, host, port), 10), (
        f"no teardown for {host}:{port}: {events(folder)[-5:]}"
    )
    return after_barrier(server, folder, host, port)


def log_mark(server: Server) -> int:
    return len(server.log())


def wait_log(server: Server, mark: int, text: str, limit: float = 10.0) -> str:
    """The log written since ``mark``, once it holds ``text``."""
    found = wait_for(lambda: text in server.log()[mark:], limit)
    new = server.log()[mark:]
    assert found, f"{text!r} not logged; new log:\n{new}"
    return new


# -- routes ------------------------------------------------------------------


def test_param_is_percent_decoded(site: Server) -> None:
    response = get(site, "/user/J%C3%BCrgen")
    assert response.status_code == 200
    assert response.text == "Jürgen"
    assert get(site, "/user/a%20b").text == "a b"
    assert get(site, "/user/42").text == "42"


def test_encoded_slash_splits_segments(site: Server) -> None:
    # The path is decoded before routing: %2F is a separator, so /user/a/b.
    response = get(site, "/user/a%2Fb")
    assert response.status_code == 404
    assert response.text == "no route for /user/a/b\n"


def test_star_is_exactly_one_segment(site: Server) -> None:
    assert get(site, "/api/v1/things").json() == {"segment": "things"}
    assert get(site, "/api/v1/a/b").status_code == 404
    assert get(site, "/api/v1/").status_code == 404  # * takes no empty segment
    assert get(site, "/api/v1").status_code == 404


def test_precedence_literal_param_star_rest(site: Server) -> None:
    assert get(site, "/p/lit").text == "literal"
    assert get(site, "/p/other").text == "param other"
    assert get(site, "/p/a/b/c").text == "rest a/b/c"
    assert get(site, "/p").text == "rest "  # ** takes zero segments too
    assert get(site, "/q/one").text == "star one"
    assert get(site, "/q/one/two").text == "rest one/two"


def test_fallback_answers_unrouted_paths(site: Server) -> None:
    response = get(site, "/nothing/here")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/plain"
    assert response.text == "no route for /nothing/here\n"


def test_root_route(site: Server) -> None:
    assert get(site, "/").text == "index of the app"


def test_405_with_allow_when_another_method_matches(site: Server) -> None:
    response = requests.post(site.url("/user/7"), data=b"x", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    response = requests.delete(site.url("/upper"), timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"


def test_options_lists_the_route_methods(site: Server) -> None:
    response = requests.options(site.url("/user/7"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.content == b""


def test_head_uses_the_get_route(site: Server) -> None:
    data, _ = exchange(site, request_bytes("/user/12345", method="HEAD"))
    status, fields, body = split(data)
    assert status == "HTTP/1.1 200 OK"
    assert fields["content-length"] == "5"
    assert body == b""


def test_any_method_route(site: Server) -> None:
    assert requests.put(site.url("/any"), data=b"x", timeout=10).text == "PUT"
    assert requests.patch(site.url("/any"), data=b"x", timeout=10).text == "PATCH"
    assert requests.delete(site.url("/any"), timeout=10).text == "DELETE"


def test_request_attributes(site: Server) -> None:
    response = get(site, "/request?a=1&a=2&b=x%20y&c=", headers={"User-Agent": "probe/1"})
    assert response.json() == {
        "method": "GET",
        "path": "/request",
        "route_path": "/request",
        "query": "a=1&a=2&b=x%20y&c=",
        "args": {"a": ["1", "2"], "b": ["x y"], "c": [""]},
        "agent": "probe/1",
        "peer": "127.0.0.1",
        "local_port": site.port,
        "scheme": "http",
    }


# -- what a handler returns -----------------------------------------------------


def test_handler_returns_bytes(site: Server) -> None:
    response = get(site, "/bytes")
    assert (response.status_code, response.content) == (200, b"raw bytes")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_handler_returns_str(site: Server) -> None:
    response = get(site, "/str")
    assert (response.status_code, response.content) == (200, "text é".encode())
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_handler_returns_dict(site: Server) -> None:
    response = get(site, "/dict")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"a": [1, 2], "b": None}


def test_handler_returns_none(site: Server) -> None:
    data, _ = exchange(site, request_bytes("/none"))
    status, fields, body = split(data)
    assert status == "HTTP/1.1 204 No Content"
    assert "content-length" not in fields and body == b""


def test_inline_routes_run_on_the_loop(site: Server) -> None:
    assert get(site, "/thread-inline").text == "MainThread"
    assert get(site, "/thread").text != "MainThread"


@pytest.mark.parametrize("code", ["103", "199", "600", "99"])
def test_status_that_is_not_final_is_500(site: Server, code: str) -> None:
    status, _, body = split(exchange(site, request_bytes(f"/status/{code}"))[0])
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert b"odd status" not in body


def test_final_statuses_pass(site: Server) -> None:
    for code in (201, 299, 418, 599):
        response = get(site, f"/status/{code}")
        assert (response.status_code, response.text) == (code, "odd status")


# -- request bodies ----------------------------------------------------------------


def test_post_with_content_length(site: Server) -> None:
    response = requests.post(site.url("/upper"), data=b"hello world", timeout=10)
    assert (response.status_code, response.content) == (200, b"HELLO WORLD")


def test_post_chunked(site: Server) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    head = b"POST /upper HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    status, _, answer = split(exchange(site, head + body)[0])
    assert status == "HTTP/1.1 200 OK"
    assert answer == b"HELLO WORLD"


def test_inline_handler_gets_the_whole_body(site: Server) -> None:
    data = os.urandom(300_000)  # spooled to a file past 64 KiB
    response = requests.post(site.url("/upper-inline"), data=data, timeout=10)
    assert response.content == data.upper()
    chunked = requests.post(site.url("/upper-inline"), data=iter([b"ab", b"cd"]), timeout=10)
    assert chunked.content == b"ABCD"


def test_request_json(site: Server) -> None:
    response = requests.post(site.url("/json"), json={"a": [1, 2]}, timeout=10)
    assert response.json() == {"got": {"a": [1, 2]}}


def test_five_mib_body_streams_through(site: Server) -> None:
    data = os.urandom(5 * 1024 * 1024)
    chunks = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    response = requests.post(site.url("/digest"), data=chunks, timeout=30)  # chunked
    answer = response.json()
    assert answer["size"] == len(data)
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    assert answer["reads"] > 1
    upper = requests.post(site.url("/upper"), data=data, timeout=30)  # Content-Length
    assert upper.content == data.upper()


def test_handler_reads_the_body_before_it_has_all_arrived(site: Server) -> None:
    # The handler answers from the first 5 bytes while the rest of a 1 MiB body
    # was never sent: the body reaches the handler as a stream.
    with site.connect(timeout=10) as sock:
        sock.sendall(b"POST /first/5 HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\nhello")
        data = recv_until(sock, b"hello", limit=10)
    status, fields, body = split(data)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"hello"
    assert fields["connection"] == "close"  # the rest of the body is never read


def test_body_limit_of_the_app(site: Server) -> None:
    data, _ = exchange(site, b"POST /upper HTTP/1.1\r\nHost: t\r\nContent-Length: 8388609\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 ")


def test_default_body_limit_is_one_mib(folder: Path) -> None:
    server = serve_app("webtest:small", folder)
    try:
        limit = 1024 * 1024  # README: body_limit default 1m
        ok = requests.post(server.url("/size"), data=b"x" * limit, timeout=10)
        assert (ok.status_code, ok.text) == (200, str(limit))
        over = requests.post(server.url("/size"), data=b"x" * (limit + 1), timeout=10)
        assert over.status_code == 413
    finally:
        server.stop()


# -- files ---------------------------------------------------------------------------


def test_static_file_bytes_and_type(site: Server, folder: Path) -> None:
    response = get(site, "/static/big.bin")
    assert response.status_code == 200
    assert response.content == (folder / "static" / "big.bin").read_bytes()
    assert response.headers["Content-Length"] == str(BIG_SIZE)
    assert response.headers["Content-Type"] == "application/octet-stream"
    css = get(site, "/static/style.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert css.text == "body { color: red }\n"
    assert get(site, "/static/sub/page.html").text == "<p>page</p>\n"


def test_static_head(site: Server) -> None:
    status, fields, body = split(exchange(site, request_bytes("/static/big.bin", method="HEAD"))[0])
    assert status == "HTTP/1.1 200 OK"
    assert fields["content-length"] == str(BIG_SIZE)
    assert body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/static/escape.txt",  # a symlink to a file outside
        "/static/out/secret.txt",  # through a symlinked folder outside
        "/static/missing.txt",
        "/static/sub",  # a directory
        "/static/",
        "/static/%2e%2e/outside/secret.txt",  # normalised to /outside/...: not a file route
        "/download?name=../outside/secret.txt",
        "/download?name=/etc/hostname",
    ],
)
def test_file_outside_the_root_or_missing_is_404(site: Server, path: str) -> None:
    response = get(site, path)
    assert response.status_code == 404
    assert SECRET not in response.text


def test_file_from_a_query_inside_the_root(site: Server) -> None:
    assert get(site, "/download?name=sub/page.html").text == "<p>page</p>\n"


# -- streaming responses --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/stream", "/stream-inline"])
def test_generator_is_chunked_on_http11(site: Server, path: str) -> None:
    status, fields, body = split(exchange(site, request_bytes(path))[0])
    assert status == "HTTP/1.1 200 OK"
    assert fields["transfer-encoding"] == "chunked"
    assert "content-length" not in fields
    assert dechunk(body) == b"part 0\npart 1\npart 2\n"


@pytest.mark.parametrize("path", ["/stream", "/stream-inline"])
def test_generator_is_close_delimited_on_http10(site: Server, path: str) -> None:
    data, _ = exchange(site, f"GET {path} HTTP/1.0\r\n\r\n".encode())
    status, fields, body = split(data)
    assert status == "HTTP/1.1 200 OK"
    assert "transfer-encoding" not in fields and "content-length" not in fields
    assert body == b"part 0\npart 1\npart 2\n"


def test_stream_goes_out_as_it_is_produced(site: Server, folder: Path) -> None:
    token = "streamed"
    with site.connect(timeout=10) as sock:
        sock.sendall(request_bytes(f"/stream-wait/{token}"))
        # The first part arrives while the generator still waits for the file.
        recv_until(sock, b"first\n", limit=10)
        (folder / f"go-{token}").touch()
        data = recv_until(sock, b"0\r\n\r\n", limit=10)
    assert b"second\n" in data


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [("/boom", "handler exploded"), ("/boom-inline", "inline handler exploded")],
)
def test_handler_exception_is_500_and_logged(site: Server, path: str, message: str) -> None:
    before = get(site, "/pid").text
    mark = log_mark(site)
    status, fields, _ = split(exchange(site, request_bytes(path, close=False))[0])
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert fields["connection"] == "close"
    log = wait_log(site, mark, f"RuntimeError: {message}")
    assert "Traceback (most recent call last)" in log
    assert get(site, "/pid").text == before  # the same worker goes on
    assert site.process.poll() is None


# -- hooks --------------------------------------------------------------------------------


def test_setup_hook_drop_closes_before_any_byte(site: Server, folder: Path) -> None:
    with socket.create_connection(
        ("127.0.0.1", site.port), timeout=10, source_address=("127.0.0.2", 0)
    ) as sock:
        port = sock.getsockname()[1]
        assert read_all(sock) == b""  # closed with nothing sent, before any request
    # A connection dropped at accept never started: no teardown call for it.
    assert after_barrier(site, folder, "127.0.0.2", port) == []


def test_setup_hook_proceed_serves(site: Server, folder: Path) -> None:
    data, port = exchange(site, request_bytes("/user/5"), source="127.0.0.6")
    assert split(data)[2] == b"5"
    assert wait_teardown(site, folder, "127.0.0.6", port) == ["None"]


def test_setup_hook_that_raises_drops_and_is_logged(site: Server) -> None:
    before = get(site, "/pid").text
    mark = log_mark(site)
    data, _ = exchange(site, request_bytes("/user/5"), source="127.0.0.3")
    assert data == b""
    log = wait_log(site, mark, "RuntimeError: setup hook exploded")
    assert "connection setup hook failed" in log
    assert get(site, "/pid").text == before


def test_pre_routing_hook_answers_early(site: Server) -> None:
    response = get(site, "/admin")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.text == "token needed\n"
    allowed = get(site, "/admin", headers={"Authorization": "Bearer letmein"})
    assert (allowed.status_code, allowed.text) == (200, "welcome")


def test_pre_routing_hook_none_goes_on(site: Server) -> None:
    assert get(site, "/user/x").text == "x"


def test_pre_routing_hook_drop_closes(site: Server, folder: Path) -> None:
    data, port = exchange(site, request_bytes("/drop", close=False))
    assert data == b""
    assert wait_teardown(site, folder, "127.0.0.1", port) == ["dropped"]


def test_pre_routing_hook_that_raises_is_500_and_logged(site: Server) -> None:
    before = get(site, "/pid").text
    mark = log_mark(site)
    assert get(site, "/pre-raise").status_code == 500
    wait_log(site, mark, "RuntimeError: pre-routing hook exploded")
    assert get(site, "/pid").text == before


def test_teardown_clean_when_client_closes_idle_keepalive(site: Server, folder: Path) -> None:
    with site.connect(timeout=10) as sock:
        port = sock.getsockname()[1]
        for _ in range(2):  # two requests on the connection, then the client closes it
            sock.sendall(request_bytes("/user/1", close=False))
            recv_until(sock, b"\r\n\r\n1", limit=10)
    assert wait_teardown(site, folder, "127.0.0.1", port) == ["None"]


def test_teardown_clean_after_connection_close(site: Server, folder: Path) -> None:
    data, port = exchange(site, request_bytes("/user/1"))
    assert split(data)[1]["connection"] == "close"
    assert wait_teardown(site, folder, "127.0.0.1", port) == ["None"]


def test_teardown_when_client_leaves_mid_head(site: Server, folder: Path) -> None:
    with site.connect(timeout=10) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"GET /user/1 HTTP/1.1\r\nHo")
    assert wait_teardown(site, folder, "127.0.0.1", port) == ["client went away"]


def test_teardown_when_client_leaves_while_the_handler_streams(site: Server, folder: Path) -> None:
    token = "left"
    with site.connect(timeout=10) as sock:
        port = sock.getsockname()[1]
        sock.sendall(request_bytes(f"/stream-wait/{token}", close=False))
        recv_until(sock, b"first\n", limit=10)
    try:
        assert wait_teardown(site, folder, "127.0.0.1", port) == ["client went away"]
    finally:
        (folder / f"go-{token}").touch()


def test_teardown_hook_that_raises_is_logged_and_others_run(site: Server, folder: Path) -> None:
    before = get(site, "/pid").text
    mark = log_mark(site)
    data, port = exchange(site, request_bytes("/user/1"), source="127.0.0.4")
    assert split(data)[2] == b"1"
    log = wait_log(site, mark, "RuntimeError: teardown hook exploded")
    assert "connection teardown hook failed" in log
    assert wait_teardown(site, folder, "127.0.0.4", port) == ["None"]  # the first hook ran
    assert get(site, "/pid").text == before


# -- mounted from a configuration ----------------------------------------------------------


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("mounted")
    build(root)
    server = start_server(MOUNT_CONFIG, root)
    yield server, root
    server.stop()


def test_mounted_routes_match_below_the_prefix(mounted: tuple[Server, Path]) -> None:
    server, _ = mounted
    assert get(server, "/api/user/1").text == "1"
    assert get(server, "/api/user/J%C3%BCrgen").text == "Jürgen"
    assert get(server, "/api").text == "index of the app"
    assert get(server, "/api/").text == "index of the app"
    assert get(server, "/api/api/v1/x").json() == {"segment": "x"}
    response = get(server, "/api/nothing")
    assert (response.status_code, response.text) == (404, "no route for /nothing\n")
    answer = get(server, "/api/request?q=1").json()
    assert (answer["path"], answer["route_path"]) == ("/api/request", "/request")


def test_app_on_a_regex_location_routes_the_whole_path(mounted: tuple[Server, Path]) -> None:
    server, _ = mounted
    assert get(server, "/q/one").text == "star one"
    assert get(server, "/q/one/two").text == "rest one/two"


def test_mounted_file_and_body(mounted: tuple[Server, Path]) -> None:
    server, root = mounted
    data = os.urandom(5 * 1024 * 1024)
    answer = requests.post(server.url("/api/digest"), data=data, timeout=30).json()
    assert (answer["size"], answer["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert get(server, "/api/static/big.bin").content == (root / "static" / "big.bin").read_bytes()


def test_mounted_pre_routing_hook_sees_only_its_requests(mounted: tuple[Server, Path]) -> None:
    server, _ = mounted
    # /api/admin is the App's /admin: its hook asks for the token.
    assert get(server, "/api/admin").status_code == 401
    headers = {"Authorization": "Bearer letmein"}
    assert get(server, "/api/admin", headers=headers).text == "welcome"
    # /admin is a static location of the same server: the hook is not asked.
    response = get(server, "/admin/a.txt")
    assert (response.status_code, response.text) == (200, "file a\n")


def test_mounted_connection_hooks_apply_to_the_server(mounted: tuple[Server, Path]) -> None:
    server, root = mounted
    # Even a connection that only asks for a static file goes through them.
    data, port = exchange(server, request_bytes("/admin/a.txt"))
    assert split(data)[2] == b"file a\n"
    assert wait_teardown(server, root, "127.0.0.1", port) == ["None"]
    dropped, _ = exchange(server, request_bytes("/admin/a.txt"), source="127.0.0.2")
    assert dropped == b""


def test_teardown_reason_timeout(mounted: tuple[Server, Path]) -> None:
    server, root = mounted
    with server.connect(timeout=10) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"GET /api/user/1 HTTP/1.1\r\nHo")  # client_header_timeout 1s
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert wait_teardown(server, root, "127.0.0.1", port) == ["timeout"]


def test_teardown_clean_after_keepalive_timeout(mounted: tuple[Server, Path]) -> None:
    server, root = mounted
    with server.connect(timeout=10) as sock:
        port = sock.getsockname()[1]
        sock.sendall(request_bytes("/api/user/1", close=False))
        data = read_all(sock)  # keepalive_timeout 1s: the server closes the idle connection
    assert split(data)[2] == b"1"
    assert wait_teardown(server, root, "127.0.0.1", port) == ["None"]


def test_mounted_app_directive_errors(tmp_path: Path) -> None:
    (tmp_path / "webtest.py").write_text(APP_MODULE)
    cases = [
        ("nosuch:app", 'app "nosuch:app": no module named "nosuch"'),
        ("webtest:not_an_app", 'app "webtest:not_an_app": int object is not a localhost.App'),
        ("webtest:absent", 'app "webtest:absent": "absent" not found in'),
    ]
    for target, message in cases:
        config = tmp_path / "bad.conf"
        config.write_text(
            f"server {{\n    port {free_port()}\n    location /api {{\n        app {target}\n    }}\n}}\n"
        )
        for args in (["-t", str(config)], [str(config)]):
            result = run_cli(args, cwd=tmp_path)
            assert result.returncode == 1, result.stderr
            assert f"{config}:4:9: {message}" in result.stderr, result.stderr


# -- python -m localhost MODULE:APP ----------------------------------------------------------


def test_help_documents_the_defaults() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "MODULE:APP" in text
    assert "(default 127.0.0.1)" in text
    assert "(default 8080)" in text


def test_two_workers(folder: Path) -> None:
    server = serve_app("webtest:app", folder, "-w", "2")
    try:
        assert len(wait_children(server.process.pid, 2)) == 2
        token = "workers"
        with server.connect(timeout=20) as held:
            held.sendall(request_bytes(f"/hold/{token}"))
            assert wait_for((folder / f"held-{token}").exists, 10)
            # That worker's loop is stuck in the inline handler: another
            # worker takes the next connection.
            other = get(server, "/pid").text
            (folder / f"go-{token}").touch()
            first = split(read_all(held))[2].decode()
        workers = set(live_children(server.process.pid))
        assert {int(first), int(other)} <= workers
        assert first != other
    finally:
        assert server.stop() == 0, server.log()


def test_wsgi_callable_as_module_app(tmp_path: Path) -> None:
    (tmp_path / "wsgimod.py").write_text(WSGI_MODULE)
    server = serve_app("wsgimod:application", tmp_path)
    try:
        response = get(server, "/a/b?x=1")
        assert (response.status_code, response.text) == (200, "|/a/b|x=1")
    finally:
        assert server.stop() == 0


def test_sigterm_stops_cleanly(folder: Path) -> None:
    server = serve_app("webtest:app", folder)
    assert get(server, "/user/1").text == "1"
    assert server.stop(signal.SIGTERM) == 0, server.log()
    assert "stopped" in server.log()


def test_sighup_keeps_the_app(folder: Path, tmp_path: Path) -> None:
    # An app.conf in the working directory is not the App's configuration.
    work = tmp_path / "work"
    work.mkdir()
    (work / "webtest.py").write_text(APP_MODULE)
    (work / "app.conf").write_text(
        f"server {{\n    host 127.0.0.1\n    port {free_port()}\n    root .\n}}\n"
    )
    server = serve_app("webtest:app", work)
    try:
        mark = log_mark(server)
        server.process.send_signal(signal.SIGHUP)
        wait_log(server, mark, "reload failed")
        assert get(server, "/user/1").text == "1"
    finally:
        assert server.stop() == 0


# -- App.from_config ----------------------------------------------------------------------------


def test_from_config_mixes_config_locations_and_the_app(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<h1>www</h1>\n")
    ports = [free_port(), free_port()]
    (tmp_path / "mixed.conf").write_text(
        MIXED_CONFIG.replace("{port0}", str(ports[0])).replace("{port1}", str(ports[1]))
    )
    (tmp_path / "mixed.py").write_text(MIXED_SCRIPT)
    server = launch(["mixed.py"], tmp_path, ports)
    try:
        # The configuration's locations answer as written...
        assert get(server, "/files/a.txt").text == "file a\n"
        assert get(server, "/plain/index.html", port=ports[1]).text == "<h1>www</h1>\n"
        # ...and the App the rest, in place of the block's implicit "location /".
        assert get(server, "/hello/ann").text == "hello ann from the app"
        assert get(server, "/index.html").status_code == 404
        assert get(server, "/hello/bob", port=ports[1]).text == "hello bob from the app"
        # "location = /" answers "/" alone; the App has the other paths.
        exact = get(server, "/", port=ports[1], allow_redirects=False)
        assert (exact.status_code, exact.headers["Location"]) == (301, "/plain/index.html")
        # SIGHUP re-reads the file and keeps the App mounted (Config.rebuild).
        mark = log_mark(server)
        server.process.send_signal(signal.SIGHUP)
        wait_log(server, mark, "reloaded")
        assert get(server, "/hello/ann").text == "hello ann from the app"
        assert get(server, "/files/a.txt").text == "file a\n"
    finally:
        assert server.stop() == 0, server.log()


def test_from_config_error_is_reported(tmp_path: Path) -> None:
    (tmp_path / "mixed.conf").write_text("server {\n    port 80\n    bogus on\n}\n")
    (tmp_path / "mixed.py").write_text(MIXED_SCRIPT)
    result = subprocess.run(
        [sys.executable, "mixed.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"{tmp_path / 'mixed.conf'}:3:5: unknown directive" in result.stderr


# -- the example -----------------------------------------------------------------------------------


def test_example_app_runs(tmp_path: Path) -> None:
    example = REPO / "examples" / "app"
    server = serve_app("web:app", example, "--no-access-log", logs=tmp_path)
    try:
        assert get(server, "/hello/J%C3%BCrgen").text == "Hello, Jürgen!\n"
        assert get(server, "/api/v1/books?id=3").json() == {
            "resource": "books",
            "args": {"id": ["3"]},
        }
        assert get(server, "/static/style.css").headers["Content-Type"] == "text/css; charset=utf-8"
        assert requests.post(server.url("/upper"), data=b"abc", timeout=10).content == b"ABC"
        assert get(server, "/admin/stats").status_code == 401
        token = {"X-Token": "secret"}
        # The teardown hook counts the connections that ended (each get above is one).
        assert wait_for(
            lambda: (
                get(server, "/admin/stats", headers=token).json()["endings"].get("clean", 0) >= 5
            )
        )
        assert get(server, "/countdown/3").text == "3\n2\n1\nliftoff\n"
        assert get(server, "/nowhere").status_code == 404
        dropped, _ = exchange(server, request_bytes("/ping"), source="127.0.0.2")
        assert dropped == b""
        assert get(server, "/ping").text == "pong\n"
    finally:
        assert server.stop() == 0, server.log()
