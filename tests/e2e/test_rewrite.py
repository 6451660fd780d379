"""return, rewrite, try_files, internal and error_page targets, end to end.

One real server process for the module, driven with ``requests`` and raw
sockets. What is checked is NGINX 1.22's documented behaviour (and the
README's): a single-page app's ``try_files``, an HTTPS-style redirect with
``$host$request_uri``, the rewrite flags, the 10-rewrite 500, server-level
``return`` before any location, named-location fallbacks, ``error_page`` to
a URI and to ``@name`` with and without ``=``, and ``internal``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import Server, read_all, recv_until, start_server

CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    error_page 404 /errors/404.html
    error_page 405 /errors/405.html

    location /errors { internal }
    location /private { internal }
    location /docs { }
    location /spa {
        root ./www/spa
        try_files $uri $uri/ /spa/index.html
    }
    location /r {
        rewrite ^/r/last/(.*)$ /docs/$1 last
        rewrite ^/r/break/(.*)$ /docs/$1 break
        rewrite ^/r/temp/(.*)$ /docs/$1 redirect
        rewrite ^/r/perm/(.*)$ /docs/$1 permanent
        rewrite ^/r/args$ /docs/page.html?from=r last
        rewrite ^/r/loop$ /r/loop last
        return 404
    }
    location /api { try_files $uri @backend }
    location @backend { return 200 "backend: $uri $args" }
    location /named { error_page 404 @fallback }
    location /named-eq { error_page 404 = @fallback }
    location @fallback { return 200 "fallback: $uri" }
    location /ok { error_page 404 =200 /errors/404.html }
    location /teapot { error_page 404 =418 ./www/errors/404.html }
    location /away { error_page 404 http://example.org/missing$uri }
    location /again { error_page 404 /nothing/here }
    location /cgi-bin { root ./cgi-bin; cgi .py {python} }
    location /cgi-page { error_page 404 /cgi-bin/page.py }
    location /app-404 { root ./cgi-bin; cgi .py {python}; error_page 404 /errors/404.html }
    location = /hello { return 200 "hello $arg_name" }
    location = /close { return 444 }
    location = /old { redirect /docs/$arg_to }
}

server {
    host 127.0.0.1
    port {port0}
    server_name secure.test
    return 301 https://$host$request_uri
    location / { return 200 "a location answered" }
}
"""

PAGE_404 = "<p>THE 404 PAGE</p>\n"
PAGE_405 = "<p>THE 405 PAGE</p>\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import sys

    root = tmp_path_factory.mktemp("rewrite")
    www = root / "www"
    for folder in ("spa/assets", "docs/guide", "errors", "private"):
        (www / folder).mkdir(parents=True)
    (root / "cgi-bin").mkdir()
    (www / "index.html").write_text("home\n")
    (www / "spa" / "index.html").write_text("SPA SHELL\n")
    (www / "spa" / "assets" / "app.js").write_text("JS\n")
    (www / "docs" / "page.html").write_text("PAGE\n")
    (www / "docs" / "guide" / "index.html").write_text("GUIDE\n")
    (www / "errors" / "404.html").write_text(PAGE_404)
    (www / "errors" / "405.html").write_text(PAGE_405)
    (www / "private" / "secret.txt").write_text("SECRET\n")
    cgi = root / "cgi-bin"
    (cgi / "page.py").write_text(
        'import os\nprint("Content-Type: text/plain")\nprint()\n'
        'print("CGI PAGE for", os.environ["REQUEST_METHOD"], os.environ["SCRIPT_NAME"])\n'
    )
    (cgi / "own404.py").write_text(
        'print("Status: 404 Not Found")\nprint("Content-Type: text/plain")\nprint()\n'
        'print("THE APP SAYS 404")\n'
    )
    server = start_server(CONFIG.replace("{python}", sys.executable), root)
    yield server
    server.stop()


def get(server: Server, path: str, **kw: object) -> requests.Response:
    return requests.get(server.url(path), allow_redirects=False, timeout=10, **kw)  # type: ignore[arg-type]


# -- try_files: a single-page app ----------------------------------------------------------


def test_single_page_app(server: Server) -> None:
    asset = get(server, "/spa/assets/app.js")
    assert (asset.status_code, asset.text) == (200, "JS\n")
    assert asset.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))
    for route in ("/spa/", "/spa/users/42", "/spa/settings?tab=2"):
        page = get(server, route)
        assert (page.status_code, page.text) == (200, "SPA SHELL\n"), route
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"


def test_try_files_named_location_fallback(server: Server) -> None:
    response = get(server, "/api/users?id=7")
    assert (response.status_code, response.text) == (200, "backend: /api/users id=7")


# -- return ----------------------------------------------------------------------------------


def test_https_redirect_from_the_server_level(server: Server) -> None:
    headers = {"Host": "secure.test"}
    for path in ("/", "/any/path?x=1&y=2", "/hello"):
        response = get(server, path, headers=headers)
        assert response.status_code == 301
        assert response.headers["Location"] == f"https://secure.test{path}"


def test_return_text_and_relative_redirects(server: Server) -> None:
    hello = get(server, "/hello?name=world")
    assert (hello.status_code, hello.text) == (200, "hello world")
    assert hello.headers["Content-Type"] == "text/plain; charset=utf-8"
    # redirect URL takes variables (and stays as written: relative)
    old = get(server, "/old?to=page.html")
    assert (old.status_code, old.headers["Location"]) == (301, "/docs/page.html")


def test_return_444_closes_without_an_answer(server: Server) -> None:
    assert server.raw(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n") == b""


# -- rewrite ---------------------------------------------------------------------------------


def test_rewrite_flags(server: Server) -> None:
    last = get(server, "/r/last/page.html")
    assert (last.status_code, last.text) == (200, "PAGE\n")
    # break: served by /r itself with the new URI (the return after it never runs)
    broken = get(server, "/r/break/page.html")
    assert (broken.status_code, broken.text) == (200, "PAGE\n")
    temp = get(server, "/r/temp/page.html?q=1")
    assert temp.status_code == 302
    assert temp.headers["Location"] == f"http://127.0.0.1:{server.port}/docs/page.html?q=1"
    perm = get(server, "/r/perm/guide/")
    assert perm.status_code == 301
    assert perm.headers["Location"] == f"http://127.0.0.1:{server.port}/docs/guide/"
    assert get(server, perm.headers["Location"].split(str(server.port), 1)[1]).text == "GUIDE\n"
    args = get(server, "/r/args?x=1")
    assert (args.status_code, args.text) == (200, "PAGE\n")
    # nothing matched: the location's return 404, with the error page
    none = get(server, "/r/other")
    assert (none.status_code, none.text) == (404, PAGE_404)


def test_ten_rewrites_then_500(server: Server) -> None:
    response = get(server, "/r/loop")
    assert response.status_code == 500
    assert response.headers["Connection"] == "close"  # as after any 500


# -- error_page targets ------------------------------------------------------------------------


def test_error_page_uri_keeps_the_status(server: Server) -> None:
    missing = get(server, "/no/such/file")
    assert (missing.status_code, missing.text) == (404, PAGE_404)
    assert missing.headers["Content-Type"] == "text/html; charset=utf-8"
    head = requests.head(server.url("/no/such/file"), timeout=10)
    assert head.status_code == 404
    assert head.headers["Content-Length"] == str(len(PAGE_404))
    # a POST that is refused becomes a GET of the page, with its status
    post = requests.post(server.url("/docs/page.html"), data=b"x", timeout=10)
    assert (post.status_code, post.text) == (405, PAGE_405)
    # conditional fields do not turn the page into a 304
    etag = get(server, "/errors/404.html")  # internal: itself a 404, with the page
    assert (etag.status_code, etag.text) == (404, PAGE_404)
    again = get(server, "/nope", headers={"If-None-Match": "*"})
    assert (again.status_code, again.text) == (404, PAGE_404)


def test_error_page_named_location_with_and_without_equals(server: Server) -> None:
    kept = get(server, "/named/missing")
    assert (kept.status_code, kept.text) == (404, "fallback: /named/missing")
    taken = get(server, "/named-eq/missing")
    assert (taken.status_code, taken.text) == (200, "fallback: /named-eq/missing")


def test_error_page_new_status_and_redirect(server: Server) -> None:
    ok = get(server, "/ok/missing")
    assert (ok.status_code, ok.text) == (200, PAGE_404)
    # a page file (relative to the config) with a new status
    teapot = get(server, "/teapot/x")
    assert (teapot.status_code, teapot.text) == (418, PAGE_404)
    away = get(server, "/away/x")
    assert away.status_code == 302
    assert away.headers["Location"] == "http://example.org/missing/away/x"


def test_an_error_of_the_error_page_is_not_redirected_again(server: Server) -> None:
    response = get(server, "/again/x")
    assert response.status_code == 404
    assert "404 Not Found" in response.text and PAGE_404 not in response.text


def test_error_page_served_by_a_cgi_script_keeps_the_connection(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /cgi-page/x HTTP/1.1\r\nHost: x\r\n\r\n")
        first = recv_until(sock, b"\r\n0\r\n\r\n")  # the last chunk
        assert first.startswith(b"HTTP/1.1 404 ")
        assert b"CGI PAGE for GET /cgi-bin/page.py\n" in first
        sock.sendall(b"GET /hello?name=again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(sock, b"hello again").count(b"HTTP/1.1 200 ") == 1


def test_an_applications_own_404_is_not_intercepted(server: Server) -> None:
    response = get(server, "/app-404/own404.py")
    assert (response.status_code, response.text) == (404, "THE APP SAYS 404\n")


def test_error_page_before_the_body_closes_the_connection(server: Server) -> None:
    # The 405 is decided before the body arrives: the page answers, the body is
    # not read, and the connection closes (as any early answer does).
    request = (
        b"POST /docs/page.html HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 10
    )
    with server.connect() as sock:
        sock.sendall(request)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert answer.endswith(PAGE_405.encode())
    assert b"Connection: close" in answer


# -- internal ------------------------------------------------------------------------------------


def test_internal_locations_are_404_from_outside(server: Server) -> None:
    response = get(server, "/private/secret.txt")
    assert (response.status_code, response.text) == (404, PAGE_404)


def test_pipelined_requests_after_error_pages(server: Server) -> None:
    requests_bytes = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for path in ("/no/such", "/named/x", "/hello?name=end")
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(requests_bytes)
        data = recv_until(sock, b"hello end")
    assert re.findall(rb"HTTP/1\.1 (\d+) ", data) == [b"404", b"404", b"200"]
    assert PAGE_404.encode() in data and b"fallback: /named/x" in data
