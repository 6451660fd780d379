"""A test site served by one real server process per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, start_server

SITE_CONFIG = """
# The end-to-end test site.
keepalive_timeout 30
server {
    host 127.0.0.1
    port {port0} {port1}
    root ./www
    error_page 404 ./www/errors/404.html
    error_page 403 ./www/errors/missing-on-purpose.html

    location / {
        methods GET
    }
    location /files {
        methods GET
        root ./www/files
        directory_listing on
    }
    location /noindex {
        root ./www/noindex
    }
    location /old-path {
        redirect http://example.com/new
    }
    location /small {
        root ./www/small
        methods GET POST
        body_limit 10
    }
    location /cgi-bin {
        root ./cgi-bin
        cgi .py python3
    }
}

server {
    host 127.0.0.1
    port {port0}
    server_name other.local *.other.local
    root ./other
}
"""

BIG_SIZE = 3 * 1024 * 1024 + 17


def build_site(root: Path) -> None:
    """The files the test config serves."""
    www = root / "www"
    (www / "files" / "sub").mkdir(parents=True)
    (www / "noindex").mkdir()
    (www / "errors").mkdir()
    (root / "other").mkdir()
    (root / "outside").mkdir()
    (root / "cgi-bin").mkdir()
    (www / "index.html").write_text("<h1>home</h1>\n")
    (www / "page.txt").write_text("plain text\n")
    (www / "data.json").write_text('{"a": 1}\n')
    (www / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (www / "errors" / "404.html").write_text("<p>CUSTOM 404 PAGE</p>\n")
    (www / "files" / "a.txt").write_text("file a\n")
    (www / "files" / "b.html").write_text("<b>b</b>\n")
    (www / "files" / ".secret").write_text("dot file\n")
    (www / "files" / "<odd> & name.txt").write_text("odd\n")
    (www / "files" / "space name.txt").write_text("space\n")
    (www / "files" / "ünï.txt").write_text("unicode\n")
    (www / "files" / "sub" / "inner.txt").write_text("inner\n")
    (www / "noindex" / "x.txt").write_text("x\n")
    (www / "small").mkdir()
    (www / "small" / "ok.txt").write_text("ok\n")
    (root / "other" / "index.html").write_text("<h1>other site</h1>\n")
    (root / "outside" / "secret.txt").write_text("TOP SECRET\n")
    (root / "cgi-bin" / "script.py").write_text("print('source code')\n")
    os.symlink(root / "outside", www / "files" / "escape")
    os.symlink(root / "outside" / "secret.txt", www / "link.txt")
    os.symlink(www / "files" / "a.txt", www / "files" / "inside-link.txt")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("site")
    build_site(root)
    server = start_server(SITE_CONFIG, root, nports=2)
    yield server
    server.stop()
