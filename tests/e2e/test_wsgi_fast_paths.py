"""What the WSGI hot path remembers between requests must never show: a real
server runs a small application on the loop (``wsgi_threads 0``) and in
threads, and raw sockets send the same request heads again and again.

- the response head of a header list is checked and encoded once per content
  (``runner.app_head``): a list changed in place is sent as it is now, and a
  field that would split the head is refused every time;
- the environ of a request head is built once (``wsgi.wsgi_environ``): the
  connection's variables are each request's own, and what an application
  writes into its environ is never seen by the next request;
- ``wsgi.url_scheme`` is the connection transport's ``scheme``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Server, recv_until, start_server
from tests.proc import wait_for

APP = """
import json

COUNTED = [("Content-Type", "text/plain"), ("X-Count", "0")]
calls = 0


def app(environ, start_response):
    global calls
    path = environ["PATH_INFO"]
    if path == "/count":
        calls += 1
        COUNTED[1] = ("X-Count", str(calls))  # the same list object, changed in place
        start_response("200 OK", COUNTED)
        return [b"counted"]
    if path == "/field":
        value = environ["QUERY_STRING"].replace("%0D", "\\r").replace("%0A", "\\n")
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Value", value)])
        return [b"field"]
    if path == "/env":
        seen = {k: v for k, v in environ.items() if isinstance(v, str)}
        environ["HTTP_X_PLANTED"] = "by the application"
        environ["REMOTE_PORT"] = "1"
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]
"""

CONFIG = """
worker_processes 1
server {{
    host 127.0.0.1
    port {{port0}}
    wsgi_path {apps}
    location /i {{
        wsgi fast_probe:app
        wsgi_threads 0
    }}
    location /t {{
        wsgi fast_probe:app
        wsgi_threads 2
    }}
}}
"""

MODES = [pytest.param("/i", id="inline"), pytest.param("/t", id="threaded")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fast")
    apps = root / "apps"
    apps.mkdir()
    (apps / "fast_probe.py").write_text(APP)
    server = start_server(CONFIG.format(apps=apps), root)
    yield server
    server.stop()


def exchange(sock: socket.socket, path: str) -> tuple[str, dict[str, str], bytes]:
    """One GET on a kept-alive connection: (status line, fields, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: fast.test\r\n\r\n".encode())
    data = recv_until(sock, b"\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    length = int(fields["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of a body"
        body += chunk
    assert len(body) == length, "more than one response arrived"
    return lines[0], fields, body


@pytest.mark.parametrize("prefix", MODES)
def test_a_header_list_changed_in_place_is_sent_as_it_is_now(site: Server, prefix: str) -> None:
    with site.connect() as sock:
        counts = [int(exchange(sock, f"{prefix}/count")[1]["x-count"]) for _ in range(4)]
    assert counts == list(range(counts[0], counts[0] + 4))


@pytest.mark.parametrize("prefix", MODES)
def test_a_field_that_would_split_the_head_is_500_every_time(site: Server, prefix: str) -> None:
    mark = len(site.log())
    with site.connect() as sock:
        for _ in range(3):
            status, fields, body = exchange(sock, f"{prefix}/field?clean")
            assert status == "HTTP/1.1 200 OK" and fields["x-value"] == "clean"
            assert body == b"field"
    for _ in range(3):
        with site.connect() as sock:
            status, fields, _ = exchange(sock, f"{prefix}/field?a%0D%0AX-Evil:%201")
            assert status == "HTTP/1.1 500 Internal Server Error"
            assert "x-evil" not in fields and "x-value" not in fields
    assert wait_for(lambda: site.log()[mark:].count("CR, LF or NUL in a response field") >= 3)


@pytest.mark.parametrize("prefix", MODES)
def test_each_request_has_its_own_connection_variables_and_environ(
    site: Server, prefix: str
) -> None:
    with site.connect() as first, site.connect() as second:
        seen = []
        for sock in (first, second, first, second):
            status, _, body = exchange(sock, f"{prefix}/env?same")
            assert status == "HTTP/1.1 200 OK"
            seen.append(json.loads(body))
        ports = [str(sock.getsockname()[1]) for sock in (first, second)]
    assert [env["REMOTE_PORT"] for env in seen] == ports * 2
    assert all(env["REMOTE_ADDR"] == "127.0.0.1" for env in seen)
    assert all("HTTP_X_PLANTED" not in env for env in seen)
    assert all(env["PATH_INFO"] == "/env" and env["QUERY_STRING"] == "same" for env in seen)
    assert all(env["SCRIPT_NAME"] == prefix and env["HTTP_HOST"] == "fast.test" for env in seen)
    assert all(env["SERVER_PORT"] == str(site.port) for env in seen)


@pytest.mark.parametrize("prefix", MODES)
def test_url_scheme_is_http_on_a_plain_connection(site: Server, prefix: str) -> None:
    with site.connect() as sock:
        assert json.loads(exchange(sock, f"{prefix}/env")[2])["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("prefix", MODES)
def test_url_scheme_follows_the_transport_scheme(tmp_path: Path, prefix: str) -> None:
    # A TLS transport has ``scheme = "https"``; here the plain socket transport
    # says so, set before the server starts.
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "fast_probe.py").write_text(APP)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "sitecustomize.py").write_text(
        'from localhost.io.transport import SocketTransport\nSocketTransport.scheme = "https"\n'
    )
    env = {"PYTHONPATH": f"{tmp_path / 'boot'}:{REPO}"}
    server = start_server(CONFIG.format(apps=tmp_path / "apps"), tmp_path, env=env)
    try:
        with server.connect() as sock:
            assert json.loads(exchange(sock, f"{prefix}/env")[2])["wsgi.url_scheme"] == "https"
    finally:
        server.stop()
