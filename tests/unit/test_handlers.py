"""Handlers called directly: request phases, static files, listings, error pages."""

from __future__ import annotations

import json
import os
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from localhost.config import loads
from localhost.config.model import Config, Location, ServerBlock
from localhost.handlers import autoindex, static
from localhost.handlers.base import Answer
from localhost.handlers.error_pages import (
    Refusal,
    builtin_page,
    error_response,
    prefers_html,
    prefers_json,
    refusal_response,
)
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response
from localhost.http.target import normalize_target
from localhost.http.writer import response_head
from localhost.limits import LIMITS
from localhost.routing import Router
from localhost.server.pipeline import Pipeline
from localhost.services import Services
from tests.unit.test_pipeline import FakeExchange

CACHE_BODY_MAX = LIMITS.cache_body_max_bytes


def request(method: str, target: str, length: int | None = None) -> Request:
    req = Request(
        method, target, "HTTP/1.1", Headers([("host", "x")]), "x", True, length, False, False
    )
    req.path, req.query = normalize_target(target)
    return req


@pytest.fixture
def server(config: Config) -> ServerBlock:
    return config.servers[0]


@pytest.fixture
def config(tmp_path: Path) -> Config:
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
    return loads(text, tmp_path / "t.conf")


def location_for(server: ServerBlock, path: str) -> Location | None:
    return Router(Config(Path("t.conf"), (server,))).match(server, path)


@pytest.fixture
def files() -> Any:
    cache = static.FileCache()
    yield cache
    cache.clear()


def handle(req: Request, location: Location, files: static.FileCache) -> Response:
    return static.serve(req, location, files)


def check(req: Request, server: ServerBlock, config: Config) -> Response | None:
    """The pipeline's answer decided before the body, or None for a content handler."""
    services = Services(config, None)  # type: ignore[arg-type]
    handler = Pipeline(Router(config), services).start(
        FakeExchange(req, server, services)  # type: ignore[arg-type]
    )
    return handler.response if isinstance(handler, Answer) else None


def test_check_order_is_413_then_404_then_405(server: ServerBlock, config: Config) -> None:
    response = check(request("POST", "/only", 11), server, config)
    assert response is not None and response.status == 413
    response = check(request("POST", "/only", 5), server, config)
    assert response is not None and response.status == 405
    assert dict(response.headers)["Allow"] == "GET, HEAD, OPTIONS"
    assert check(request("GET", "/only", 5), server, config) is None


def test_check_uses_the_inherited_body_limit(server: ServerBlock, config: Config) -> None:
    # The "/" location made for the server's root inherits its body_limit;
    # without any location, see test_pipeline.py.
    response = check(request("POST", "/x", 1000), server, config)
    assert response is not None and response.status == 413
    assert b"100 bytes" in response.body


def test_static_file_response(server: ServerBlock, files: static.FileCache) -> None:
    loc = location_for(server, "/dir/f.txt")
    assert loc is not None
    response = handle(request("GET", "/dir/f.txt"), loc, files)
    assert response.status == 200
    assert response.body == b"f" and response.content_length == 1  # small: from memory
    assert dict(response.headers)["Content-Type"] == "text/plain; charset=utf-8"


def test_cache_is_validated_on_every_hit(
    server: ServerBlock, tmp_path: Path, files: static.FileCache
) -> None:
    loc = location_for(server, "/dir/f.txt")
    assert loc is not None
    assert handle(request("GET", "/dir/f.txt"), loc, files).body == b"f"
    (tmp_path / "www" / "dir" / "f.txt").write_text("changed")
    response = handle(request("GET", "/dir/f.txt"), loc, files)
    assert response.body == b"changed"
    (tmp_path / "www" / "dir" / "f.txt").unlink()
    with pytest.raises(HTTPError) as info:
        handle(request("GET", "/dir/f.txt"), loc, files)
    assert info.value.status == 404


def test_large_files_are_sent_from_the_file(
    server: ServerBlock, tmp_path: Path, files: static.FileCache
) -> None:
    (tmp_path / "www" / "big.bin").write_bytes(b"x" * (CACHE_BODY_MAX + 1))
    loc = location_for(server, "/big.bin")
    assert loc is not None
    for _ in range(2):  # first from the full path, then from the cache
        response = handle(request("GET", "/big.bin"), loc, files)
        assert response.file is not None and response.file.count == CACHE_BODY_MAX + 1
        response.file.close()


def test_directory_forms(server: ServerBlock, files: static.FileCache) -> None:
    loc = location_for(server, "/dir")
    assert loc is not None
    response = handle(request("GET", "/dir?a=b"), loc, files)
    assert response.status == 301 and dict(response.headers)["Location"] == "/dir/?a=b"
    with pytest.raises(HTTPError) as info:
        handle(request("GET", "/dir/"), loc, files)  # no index.html, listing off
    assert info.value.status == 403
    response = handle(request("GET", "/"), loc, files)
    assert response.status == 200 and response.body == b"home"


def test_missing_file_and_file_with_slash(server: ServerBlock, files: static.FileCache) -> None:
    loc = location_for(server, "/")
    assert loc is not None
    for target in ("/missing.txt", "/dir/f.txt/", "/index.html/x"):
        with pytest.raises(HTTPError) as info:
            handle(request("GET", target), loc, files)
        assert info.value.status == 404, target


def test_special_files_are_forbidden(
    server: ServerBlock, tmp_path: Path, files: static.FileCache
) -> None:
    os.mkfifo(tmp_path / "www" / "pipe")
    loc = location_for(server, "/")
    assert loc is not None
    with pytest.raises(HTTPError) as info:
        handle(request("GET", "/pipe"), loc, files)
    assert info.value.status == 403


def test_error_pages_fall_back_to_builtin(tmp_path: Path) -> None:
    response = error_response(404, {404: tmp_path / "missing.html"})
    assert response.body == builtin_page(404)
    assert b"404 Not Found" in response.body
    big = tmp_path / "big.html"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    assert error_response(500, {500: big}).body == builtin_page(500)
    # Whether the connection closes is decided by where the error came from
    # (server/http1.py), not by the page.
    assert error_response(500).close is False


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
    server: ServerBlock, tmp_path: Path, files: static.FileCache
) -> None:
    big = tmp_path / "www" / "big.bin"
    big.write_bytes(b"a" * (CACHE_BODY_MAX + 1))
    loc = location_for(server, "/big.bin")
    assert loc is not None
    for _ in range(2):
        response = handle(request("GET", "/big.bin"), loc, files)
        assert response.file is not None
        assert os.pread(response.file.fd, 1, 0) == b"a"
        response.file.close()
    replacement = tmp_path / "www" / "new.bin"
    replacement.write_bytes(b"b" * (CACHE_BODY_MAX + 1))
    os.replace(replacement, big)  # same size, new inode
    response = handle(request("GET", "/big.bin"), loc, files)
    assert response.file is not None and os.pread(response.file.fd, 1, 0) == b"b"
    response.file.close()


def test_a_permission_change_invalidates_the_cache(
    server: ServerBlock, tmp_path: Path, files: static.FileCache
) -> None:
    loc = location_for(server, "/dir/f.txt")
    assert loc is not None
    get = request("GET", "/dir/f.txt")
    handle(get, loc, files)
    assert files.cached(get, loc) is not None
    time.sleep(0.05)  # past the file system's timestamp granularity
    (tmp_path / "www" / "dir" / "f.txt").chmod(0o000)
    # Nothing but the mode changed: the entry must still go, so that the full
    # path decides (403 for a server that may no longer read the file).
    assert files.cached(get, loc) is None


# -- listings --------------------------------------------------------------------


class _Tags(HTMLParser):
    """Checks that every element is closed in order, and collects what tests read."""

    VOID = frozenset({"meta", "link", "br", "hr", "img", "input"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.links: list[str] = []
        self.column_scopes: list[str | None] = []
        self.ids: list[str] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "a":
            self.links.append(fields["href"] or "")
        if tag == "th":
            self.column_scopes.append(fields.get("scope"))
        if "id" in fields:
            self.ids.append(fields["id"] or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    site = tmp_path / "site" / "files"
    (site / "sub").mkdir(parents=True)
    (site / "a.txt").write_bytes(b"x" * 7)
    (site / "big.bin").write_bytes(b"x" * 1300)
    (site / '<odd> & "q".txt').write_text("odd")
    (site / ".hidden").write_text("hidden")
    (site / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name")
    os.utime(site / "a.txt", (0, 1_700_000_000))
    return site


def test_listing_is_a_valid_escaped_table(folder: Path) -> None:
    response = autoindex.listing(str(folder), "/files/")
    assert dict(response.headers)["Content-Type"] == "text/html; charset=utf-8"
    text = response.body.decode()
    page = _Tags(text)
    # wget -r and screen readers: plain relative links, column headers.
    assert page.links[-6:] == [
        "../",
        "sub/",
        "%3Codd%3E%20%26%20%22q%22.txt",
        "a.txt",
        "big.bin",
        "caf%E9.txt",
    ]
    assert page.column_scopes == ["col", "col", "col"]
    assert "<odd>" not in text and "&lt;odd&gt; &amp; &quot;q&quot;.txt" in text
    assert "caf\ufffd.txt" in text and ".hidden" not in page.links
    assert "f-a.txt" in page.ids and "f-caf%E9.txt" in page.ids


def test_listing_sizes_are_human_and_exact_and_times_iso(folder: Path) -> None:
    text = autoindex.listing(str(folder), "/files/").body.decode()
    assert '<td class="size" title="1300 bytes"><data value="1300">1.3 KiB</data></td>' in text
    assert '<td class="size" title="7 bytes"><data value="7">7 B</data></td>' in text
    assert '<time datetime="2023-11-14T22:13:20Z">2023-11-14T22:13:20Z</time>' in text


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1300, "1.3 KiB"),
        (10 * 1024, "10 KiB"),
        (36 * 1024 * 1024 + 1, "36 MiB"),
        (5 * 1024**3, "5.0 GiB"),
    ],
)
def test_human_sizes(size: int, shown: str) -> None:
    assert autoindex.human_size(size) == shown


def test_listing_without_a_header_fragment_is_plain_but_styled(folder: Path) -> None:
    text = autoindex.listing(str(folder), "/files/").body.decode()
    assert "<style>" in text and 'href="/style.css"' not in text  # no 404 for other sites
    assert '<nav aria-label="Site"><a href="/">Home</a></nav>' in text
    # A way back up without the navigation bar: breadcrumbs.
    assert '<h1>Index of <a href="../">/</a>files/</h1>' in text
    nested = autoindex.listing(str(folder / "sub"), "/files/sub/").body.decode()
    assert '<h1>Index of <a href="../../">/</a><a href="../">files/</a>sub/</h1>' in nested


def test_listing_takes_the_nearest_header_fragment_within_the_url_depth(folder: Path) -> None:
    site = folder.parent
    (site / ".header.html").write_text('<header id="site-header">nav</header>\n')
    assert 'id="site-header"' in autoindex.listing(str(folder / "sub"), "/files/sub/").body.decode()
    assert 'id="site-header"' in autoindex.listing(str(folder), "/files/").body.decode()
    # /sub/ is one level deep: site/ is two levels above files/sub/.
    assert 'id="site-header"' not in autoindex.listing(str(folder / "sub"), "/sub/").body.decode()
    (folder / ".header.html").write_text('<header id="files-header">nav</header>\n')
    text = autoindex.listing(str(folder / "sub"), "/files/sub/").body.decode()
    assert 'id="files-header"' in text and 'id="site-header"' not in text


def test_listing_script_is_only_an_addition(folder: Path) -> None:
    # Everything is in the HTML; the script only adds the notice and the
    # Delete buttons, asking the server (OPTIONS) whether DELETE is allowed.
    text = autoindex.listing(str(folder), "/files/").body.decode()
    script = text[text.index("<script>") :]
    assert 'method: "OPTIONS"' in script and 'method: "DELETE"' in script
    assert text.index("</table>") < text.index("<script>")


# -- error pages with a reason, and what the client accepts ----------------------


def test_the_builtin_page_shows_the_reason_escaped() -> None:
    response = error_response(400, None, reason='file name "<b>" not allowed')
    assert b'<p class="reason">file name &quot;&lt;b&gt;&quot; not allowed</p>' in response.body
    assert b"400 Bad Request" in response.body
    assert error_response(400).body == builtin_page(400)


def test_a_configured_page_shows_the_reason_at_its_mark_or_before_body_end(
    tmp_path: Path,
) -> None:
    marked = tmp_path / "marked.html"
    marked.write_text("<html><body><h1>Bad</h1><!--reason--><p>end</p></body></html>")
    body = error_response(400, {400: marked}, reason="a & b").body
    assert (
        body == b'<html><body><h1>Bad</h1><p class="reason">a &amp; b</p><p>end</p></body></html>'
    )
    plain = tmp_path / "plain.html"
    plain.write_text("<html><BODY><h1>Bad</h1></BODY></html>")
    body = error_response(400, {400: plain}, reason="why").body
    assert body == b'<html><BODY><h1>Bad</h1><p class="reason">why</p>\n</BODY></html>'
    fragment = tmp_path / "fragment.html"
    fragment.write_text("<p>Bad</p>")
    assert error_response(400, {400: fragment}, reason="why").body.endswith(
        b'<p>Bad</p><p class="reason">why</p>\n'
    )
    # Without a reason the file is served as it is.
    assert error_response(400, {400: marked}).body == marked.read_bytes()


def test_json_errors() -> None:
    response = error_response(400, None, reason="no file in the upload", as_json=True)
    assert dict(response.headers)["Content-Type"] == "application/json"
    assert json.loads(response.body) == {"error": "no file in the upload", "status": 400}
    assert json.loads(error_response(413, None, as_json=True).body) == {
        "error": "Content Too Large",
        "status": 413,
    }


def test_refusal_response_negotiates(tmp_path: Path) -> None:
    refusal = Refusal(400, "no file in the upload", "detail for the log only")
    response = refusal_response(refusal, None, "application/json")
    assert json.loads(response.body)["error"] == "no file in the upload"
    response = refusal_response(refusal, None, "*/*")
    assert b"no file in the upload" in response.body and b"detail" not in response.body
    # A plain HTTPError's detail is never shown.
    response = refusal_response(HTTPError(404, "/srv/secret/path"), None, "*/*")
    assert b"/srv/secret" not in response.body


BROWSER = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html", "as_json"),
    [
        (BROWSER, True, False),
        (FIREFOX, True, False),
        ("*/*", False, False),  # curl
        (None, False, False),
        ("", False, False),
        ("application/json", False, True),
        ("application/json, text/plain, */*", False, True),  # axios
        ("text/html;q=0.5, application/json", False, True),
        ("text/html, application/json", True, False),
        ("text/html;q=0", False, False),
        ("TEXT/HTML", True, False),
        ("text/*", False, False),
        ("application/json;q=0, */*", False, False),
    ],
)
def test_accept_preferences(accept: str | None, html: bool, as_json: bool) -> None:
    assert prefers_html(accept) is html
    assert prefers_json(accept) is as_json
