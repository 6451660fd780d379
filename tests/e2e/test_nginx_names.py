"""NGINX's spellings served end to end (index, autoindex, client_max_body_size,
alias, listen), keepalive_requests, and an include tree."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Server, free_port
from tests.proc import wait_for


@pytest.fixture
def site(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    (www / "docs").mkdir(parents=True)
    (www / "docs" / "b.html").write_text("b\n")
    (www / "docs" / "c.html").write_text("c\n")
    (www / "page.txt").write_text("page\n")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("js\n")
    return tmp_path


NGINX_STYLE = """
server {
    listen 127.0.0.1:{port0}
    root ./www
    index a.html b.html c.html
    location /docs {
        autoindex on
    }
    location /list {
        alias ./www/docs
        index none.html
        autoindex on
    }
    location /static {
        alias ./assets
    }
    location /upload {
        client_max_body_size 10
        methods POST
    }
}
"""


def test_index_serves_the_first_name_that_exists(server_factory, site: Path) -> None:
    server = server_factory(NGINX_STYLE)
    # a.html is missing in /docs/: b.html is the first that exists.
    assert requests.get(server.url("/docs/")).text == "b\n"


def test_autoindex_lists_a_folder_without_an_index(server_factory, site: Path) -> None:
    server = server_factory(NGINX_STYLE)
    response = requests.get(server.url("/list/"))
    assert response.status_code == 200
    assert 'href="b.html"' in response.text and 'href="c.html"' in response.text


def test_alias_replaces_the_prefix(server_factory, site: Path) -> None:
    server = server_factory(NGINX_STYLE)
    assert requests.get(server.url("/static/app.js")).text == "js\n"
    assert requests.get(server.url("/list/c.html")).text == "c\n"


def test_client_max_body_size_refuses_a_larger_body(server_factory, site: Path) -> None:
    server = server_factory(NGINX_STYLE)
    assert requests.post(server.url("/upload"), data=b"x" * 11).status_code == 413


def test_listen_puts_the_block_on_its_address(server_factory, site: Path) -> None:
    server = server_factory(NGINX_STYLE)
    assert requests.get(server.url("/page.txt")).text == "page\n"


# -- keepalive_requests ---------------------------------------------------------------


def responses(sock: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` pipelined responses of ``page.txt``, each whole."""
    end_of_one = b"\r\n\r\npage\n"
    found: list[bytes] = []
    data = b""
    sock.settimeout(10)
    while len(found) < count:
        while end_of_one not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(found)} responses"
            data += chunk
        end = data.index(end_of_one) + len(end_of_one)
        found.append(data[:end])
        data = data[end:]
    return found


def test_the_nth_response_closes_the_connection(server_factory, site: Path) -> None:
    server = server_factory(
        "server {\n    listen 127.0.0.1:{port0}\n    root ./www\n    keepalive_requests 3\n}\n"
    )
    with server.connect() as sock:
        sock.sendall(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
        first, second, third = responses(sock, 3)
        assert b"Connection: close" not in first and b"Connection: close" not in second
        assert b"\r\nConnection: close\r\n" in third
        # The fourth request is never answered: the connection closes.
        sock.settimeout(5)
        assert sock.recv(65536) == b""


def test_keepalive_requests_0_closes_after_every_response(server_factory, site: Path) -> None:
    server = server_factory(
        "keepalive_requests 0\nserver {\n    listen 127.0.0.1:{port0}\n    root ./www\n}\n"
    )
    response = requests.get(server.url("/page.txt"))
    assert response.headers["Connection"] == "close"


def test_the_default_is_1000_requests_per_connection(server_factory, site: Path) -> None:
    server = server_factory("server {\n    listen 127.0.0.1:{port0}\n    root ./www\n}\n")
    with server.connect() as sock:
        sock.sendall(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 1001)
        answers = responses(sock, 1000)
        assert not any(b"Connection: close" in answer for answer in answers[:999])
        assert b"\r\nConnection: close\r\n" in answers[999]
        sock.settimeout(5)
        assert sock.recv(65536) == b""


# -- an include tree ----------------------------------------------------------------------


def test_an_include_tree_serves_each_included_site(site: Path) -> None:
    port = free_port()
    (site / "sites").mkdir()
    (site / "snippets").mkdir()
    (site / "snippets" / "common.conf").write_text(f"listen 127.0.0.1:{port}\nindex c.html\n")
    for name, root in (("a", "./www"), ("b", "./www/docs")):
        (site / "sites" / f"{name}.conf").write_text(
            f"server {{\n    server_name {name}.test\n    root {root}\n"
            "    include snippets/common.conf\n}\n"
        )
    (site / "main.conf").write_text("include sites/*.conf\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "localhost", "main.conf"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=site,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    server = Server(process, [port], site / "main.conf", site / "none.log")
    try:
        assert wait_for(lambda: process.poll() is None and _accepts(port), 15)
        assert requests.get(server.url("/docs/"), headers={"Host": "a.test"}).text == "c\n"
        assert requests.get(server.url("/"), headers={"Host": "b.test"}).text == "c\n"
        assert requests.get(server.url("/page.txt"), headers={"Host": "a.test"}).text == "page\n"
        assert requests.get(server.url("/page.txt"), headers={"Host": "b.test"}).status_code == 404
    finally:
        server.stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_an_nginx_conf_with_http_events_and_conf_d_serves(server_factory, site: Path) -> None:
    """The layout of a distribution's nginx.conf: events, http holding a
    server and an include of conf.d/*.conf with another."""
    port = free_port()
    (site / "conf.d").mkdir()
    (site / "conf.d" / "docs.conf").write_text(
        f"server {{\n    listen 127.0.0.1:{port};\n    root ./www/docs;\n    index c.html;\n}}\n"
    )
    server = server_factory(
        "worker_processes 1;\nevents {\n    worker_connections 64;\n}\n"
        "http {\n    keepalive_timeout 65;\n    include conf.d/*.conf;\n"
        "    server {\n        listen 127.0.0.1:{port0};\n        root ./www;\n"
        "        index page.txt;\n    }\n}\n"
    )
    assert requests.get(server.url("/")).text == "page\n"
    assert wait_for(lambda: _accepts(port), 10)
    assert requests.get(server.url("/", port=port)).text == "c\n"
