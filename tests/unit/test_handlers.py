"""Handlers called directly: request phases, static files, listings, error pages."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from localhost.config import loads
from localhost.config.model import Location, ServerBlock
from localhost.handlers import check, handle, static
from localhost.handlers.error_pages import builtin_page, error_response
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response, response_head
from localhost.routing import Router, normalize_target

# Static files, listings and redirects never touch the connection.
NO_EXCHANGE: Any = None


def request(method: str, target: str, length: int | None = None) -> Request:
    req = Request(
        method, target, "HTTP/1.1", Headers([("host", "x")]), "x", True, length, False, False
    )
    req.path, req.query = normalize_target(target)
    return req


@pytest.fixture
def server(tmp_path: Path) -> ServerBlock:
    www = tmp_path / "www"
    (www / "dir").mkdir(parents=True)
    (www / "index.html").write_text("home")
    (www / "dir" / "f.txt").write_text("f")
    (www / "errors").mkdir()
    (www / "errors" / "404.html").write_text("custom 404")
    text = """
server {
    port 80
    root ./www
    body_limit 100
    error_page 404 ./www/errors/404.html
    location /only {
        root ./www
        methods GET
        body_limit 10
    }
}
"""
    return loads(text, tmp_path / "t.conf").servers[0]


def location_for(server: ServerBlock, path: str) -> Location | None:
    return Router.match(server, path)


def test_check_order_is_413_then_404_then_405(server: ServerBlock) -> None:
    only = location_for(server, "/only")
    assert only is not None
    response = check(request("POST", "/only", 11), server, only)
    assert response is not None and response.status == 413
    response = check(request("POST", "/only", 5), server, only)
    assert response is not None and response.status == 405
    assert dict(response.headers)["Allow"] == "GET, HEAD, OPTIONS"
    assert check(request("GET", "/only", 5), server, only) is None


def test_check_without_location_uses_the_server_settings(server: ServerBlock) -> None:
    response = check(request("POST", "/x", 1000), server, None)
    assert response is not None and response.status == 413
    response = check(request("GET", "/x"), server, None)
    assert response is not None and response.status == 404
    assert response.body == b"custom 404"


def test_static_file_response(server: ServerBlock) -> None:
    loc = location_for(server, "/dir/f.txt")
    assert loc is not None
    response = handle(request("GET", "/dir/f.txt"), loc, NO_EXCHANGE)
    assert response.status == 200
    assert response.body == b"f" and response.content_length == 1  # small: from memory
    assert dict(response.headers)["Content-Type"] == "text/plain; charset=utf-8"


def test_cache_is_validated_on_every_hit(server: ServerBlock, tmp_path: Path) -> None:
    loc = location_for(server, "/dir/f.txt")
    assert loc is not None
    assert handle(request("GET", "/dir/f.txt"), loc, NO_EXCHANGE).body == b"f"
    (tmp_path / "www" / "dir" / "f.txt").write_text("changed")
    response = handle(request("GET", "/dir/f.txt"), loc, NO_EXCHANGE)
    assert response.body == b"changed"
    (tmp_path / "www" / "dir" / "f.txt").unlink()
    with pytest.raises(HTTPError) as info:
        handle(request("GET", "/dir/f.txt"), loc, NO_EXCHANGE)
    assert info.value.status == 404


def test_large_files_are_sent_from_the_file(server: ServerBlock, tmp_path: Path) -> None:
    (tmp_path / "www" / "big.bin").write_bytes(b"x" * (static.CACHE_BODY_MAX + 1))
    loc = location_for(server, "/big.bin")
    assert loc is not None
    for _ in range(2):  # first from the full path, then from the cache
        response = handle(request("GET", "/big.bin"), loc, NO_EXCHANGE)
        assert response.file is not None and response.file.count == static.CACHE_BODY_MAX + 1
        response.file.close()


def test_directory_forms(server: ServerBlock) -> None:
    loc = location_for(server, "/dir")
    assert loc is not None
    response = handle(request("GET", "/dir?a=b"), loc, NO_EXCHANGE)
    assert response.status == 301 and dict(response.headers)["Location"] == "/dir/?a=b"
    with pytest.raises(HTTPError) as info:
        handle(request("GET", "/dir/"), loc, NO_EXCHANGE)  # no index.html, listing off
    assert info.value.status == 403
    response = handle(request("GET", "/"), loc, NO_EXCHANGE)
    assert response.status == 200 and response.body == b"home"


def test_missing_file_and_file_with_slash(server: ServerBlock) -> None:
    loc = location_for(server, "/")
    assert loc is not None
    for target in ("/missing.txt", "/dir/f.txt/", "/index.html/x"):
        with pytest.raises(HTTPError) as info:
            handle(request("GET", target), loc, NO_EXCHANGE)
        assert info.value.status == 404, target


def test_special_files_are_forbidden(server: ServerBlock, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "www" / "pipe")
    loc = location_for(server, "/")
    assert loc is not None
    with pytest.raises(HTTPError) as info:
        handle(request("GET", "/pipe"), loc, NO_EXCHANGE)
    assert info.value.status == 403


def test_error_pages_fall_back_to_builtin(tmp_path: Path) -> None:
    response = error_response(404, {404: tmp_path / "missing.html"})
    assert response.body == builtin_page(404)
    assert b"404 Not Found" in response.body
    big = tmp_path / "big.html"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    assert error_response(500, {500: big}).body == builtin_page(500)
    assert error_response(500).close is True
    assert error_response(404).close is False


def test_response_head_fields() -> None:
    head = response_head(Response(200, [("X-A", "1")], b"abc"), keep_alive=True, http10=False)
    assert head.startswith(b"HTTP/1.1 200 OK\r\nDate: ")
    assert b"\r\nServer: localhost/" in head
    assert b"\r\nX-A: 1\r\nContent-Length: 3\r\n\r\n" in head
    assert head.endswith(b"\r\n\r\n") and b"Connection" not in head
    head = response_head(Response(204), keep_alive=False, http10=False)
    assert b"Content-Length" not in head and b"Connection: close" in head
    head = response_head(Response(304), keep_alive=True, http10=True)
    assert b"Content-Length" not in head and b"Connection: keep-alive" in head
    head = response_head(Response(404), keep_alive=True, http10=False)
    assert b"Content-Length: 0\r\n" in head


def test_cached_descriptor_never_serves_a_replaced_file(
    server: ServerBlock, tmp_path: Path
) -> None:
    big = tmp_path / "www" / "big.bin"
    big.write_bytes(b"a" * (static.CACHE_BODY_MAX + 1))
    loc = location_for(server, "/big.bin")
    assert loc is not None
    for _ in range(2):
        response = handle(request("GET", "/big.bin"), loc, NO_EXCHANGE)
        assert response.file is not None
        assert os.pread(response.file.fd, 1, 0) == b"a"
        response.file.close()
    replacement = tmp_path / "www" / "new.bin"
    replacement.write_bytes(b"b" * (static.CACHE_BODY_MAX + 1))
    os.replace(replacement, big)  # same size, new inode
    response = handle(request("GET", "/big.bin"), loc, NO_EXCHANGE)
    assert response.file is not None and os.pread(response.file.fd, 1, 0) == b"b"
    response.file.close()


def test_a_permission_change_invalidates_the_cache(server: ServerBlock, tmp_path: Path) -> None:
    loc = location_for(server, "/dir/f.txt")
    assert loc is not None
    get = request("GET", "/dir/f.txt")
    handle(get, loc, NO_EXCHANGE)
    assert static._cached(get, loc) is not None
    time.sleep(0.05)  # past the file system's timestamp granularity
    (tmp_path / "www" / "dir" / "f.txt").chmod(0o000)
    # Nothing but the mode changed: the entry must still go, so that the full
    # path decides (403 for a server that may no longer read the file).
    assert static._cached(get, loc) is None
