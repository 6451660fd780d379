"""return, rewrite, try_files, internal and error_page targets without sockets.

Configurations are loaded for real; requests go through the real pipeline
(``Pipeline.start``) with a recording exchange, so the rewrite module's steps,
the location search after a rewrite and the 10-rewrite limit are the ones the
server runs. Expected behaviour is NGINX 1.22's documented one
(ngx_http_rewrite_module, try_files, error_page).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localhost.config import ConfigError, loads
from localhost.config.model import Config, ErrorPages, ErrorTarget
from localhost.handlers.base import BodyPolicy
from localhost.handlers.error_pages import (
    ErrorPageRequest,
    ErrorResponse,
    clean_path,
    error_page_answer,
    error_page_request,
    error_response,
    error_target,
)
from localhost.handlers.redirect import absolute_url, location_value
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response
from localhost.http.target import normalize_target
from localhost.modules.rewrite import ReturnRule, RewriteRule, TryFiles
from localhost.routing import Router
from localhost.server.pipeline import Pipeline
from localhost.services import Services


def make_request(
    method: str, target: str, host: str = "example.test", extra: tuple[tuple[str, str], ...] = ()
) -> Request:
    fields = Headers([("host", host), *extra])
    request = Request(method, target, "HTTP/1.1", fields, host, True, None, False, False)
    request.path, request.query = normalize_target(target)
    return request


class Exchange:
    """What the pipeline, the steps and the variables read; records the answer."""

    def __init__(self, request: Request, config: Config, services: Services) -> None:
        self.request = request
        self.server = config.servers[0]
        self.location: Any = None
        self.peer = ("127.0.0.1", 40000)
        self.local = ("127.0.0.1", 8080)
        self.scheme = "http"
        self.session: str | None = None
        self.extra_headers: list[tuple[str, str]] = []
        self.services = services
        self.loop: Any = None
        self.body = None
        self.captures: Any = None
        self.header_filter = None
        self.cleanups = None
        self.rewritten = False
        self.redirects = 0
        self.started = False
        self.done = False
        self.aborted = ""
        self.response: Response | None = None
        # what variables read besides
        self.uri: str | None = None
        self.log_status = 0
        self.log_bytes = 0
        self.start_time = 0.0
        self.request_id: str | None = None

    def send(self, response: Response) -> None:
        if self.done:
            return
        self.done = True
        self.response = response

    def abort(self, reason: str = "aborted") -> None:
        self.done = True
        self.aborted = reason


def answer(pipeline: Pipeline, exchange: Exchange) -> Response | None:
    """Drive the handler as the protocol does; an HTTPError becomes its error
    page (None: the exchange was aborted)."""
    handler = pipeline.start(exchange)  # type: ignore[arg-type]
    try:
        policy = handler.on_head()
        if not exchange.done:
            assert policy in (BodyPolicy.IGNORE, BodyPolicy.DISCARD)
            handler.on_body_end()
    except HTTPError as exc:
        exchange.send(pipeline.error_response(exchange, exc))  # type: ignore[arg-type]
    assert exchange.response is not None or exchange.aborted
    return exchange.response


@pytest.fixture
def site(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    (www / "app" / "assets").mkdir(parents=True)
    (www / "docs" / "guide").mkdir(parents=True)
    (www / "errors").mkdir()
    (www / "index.html").write_text("home")
    (www / "app" / "index.html").write_text("spa shell")
    (www / "app" / "assets" / "app.js").write_text("js")
    (www / "docs" / "guide" / "index.html").write_text("guide")
    (www / "docs" / "page.html").write_text("page")
    (www / "errors" / "404.html").write_text("custom 404")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "outside" / "secret.txt", www / "app" / "leak.txt")
    return tmp_path


class Site:
    def __init__(self, text: str, folder: Path) -> None:
        self.config = loads(text, folder / "t.conf")
        self.services = Services(self.config, None)  # type: ignore[arg-type]
        self.pipeline = Pipeline(Router(self.config), self.services)

    def get(self, target: str, method: str = "GET", host: str = "example.test") -> Exchange:
        exchange = Exchange(make_request(method, target, host), self.config, self.services)
        answer(self.pipeline, exchange)
        return exchange


@pytest.fixture
def make(site: Path) -> Iterator[Any]:
    made: list[Site] = []

    def build(text: str) -> Site:
        made.append(Site(text, site))
        return made[-1]

    yield build
    for one in made:
        one.services.close()


def body(exchange: Exchange) -> bytes:
    response = exchange.response
    assert response is not None
    if response.file is not None:
        data = os.pread(response.file.fd, response.file.count, response.file.offset)
        response.release()
        return data
    return response.body


def header(exchange: Exchange, name: str) -> str | None:
    assert exchange.response is not None
    return dict(exchange.response.headers).get(name)


def status(exchange: Exchange) -> int:
    assert exchange.response is not None
    return exchange.response.status


# -- return ------------------------------------------------------------------------


def test_return_forms(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    root ./www
    error_page 404 ./www/errors/404.html
    location = /text { return 200 "hello $remote_addr on $uri" }
    location = /moved { return 301 /docs/page.html }
    location = /away { return https://example.org$request_uri }
    location = /see { return 303 $scheme://$host/x?y=1 }
    location = /gone { return 410 }
    location = /empty { return 204 }
    location = /missing { return 404 }
    location = /close { return 444 }
}
"""
    )
    text = site.get("/text")
    assert (status(text), body(text)) == (200, b"hello 127.0.0.1 on /text")
    assert header(text, "Content-Type") == "text/plain; charset=utf-8"
    # A path is made absolute with the request's host and the local port (absolute_redirect on).
    moved = site.get("/moved")
    assert status(moved) == 301
    assert header(moved, "Location") == "http://example.test:8080/docs/page.html"
    away = site.get("/away?a=b")
    assert (status(away), header(away, "Location")) == (302, "https://example.org/away?a=b")
    see = site.get("/see", host="Other.Test:9999")
    assert (status(see), header(see, "Location")) == (303, "http://other.test/x?y=1")
    gone = site.get("/gone")
    assert status(gone) == 410 and type(gone.response) is ErrorResponse
    assert status(site.get("/empty")) == 204 and body(site.get("/empty")) == b""
    # return 404 is the location's error page (error_page applies to it).
    missing = site.get("/missing")
    assert (status(missing), body(missing)) == (404, b"custom 404")
    closed = site.get("/close")
    assert closed.aborted == "return 444" and closed.log_status == 444


def test_return_in_a_server_runs_before_any_location(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    root ./www
    return 301 https://$host$request_uri
    location / { return 200 "location" }
    location = /exact { return 200 "exact" }
}
"""
    )
    for target in ("/", "/exact", "/nothing/here?q=1"):
        exchange = site.get(target)
        assert status(exchange) == 301
        assert header(exchange, "Location") == f"https://example.test{target}"
        assert exchange.location is None  # decided before a location was chosen


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("return /x", 16, 'invalid return code "/x" (a path needs a code: return 302 /x)'),
        ("return ok", 16, 'invalid return code "ok"'),
        ("return 199", 16, 'invalid return code "199" (expected 200 to 599, or 444)'),
        ("return 444 bye", 20, "return 444 closes the connection: it takes no text"),
        ("return 204 x", 20, "a 204 answer has no body"),
        ("return 200 $nope", 20, 'return text "$nope": unknown "nope" variable'),
        ("return 301 /a$bogus", 22, 'unknown "bogus" variable'),
        ("return 200 a b", 22, 'invalid number of values in "return"'),
    ],
)
def test_return_errors(line: str, column: int, message: str) -> None:
    text = f"server {{\n    port 80\n    location / {{\n        {line}\n    }}\n}}\n"
    with pytest.raises(ConfigError) as caught:
        loads(text)
    assert (caught.value.line, caught.value.column) == (4, column)
    assert message in caught.value.message


# -- rewrite ---------------------------------------------------------------------------


REWRITES = """
server {
    port 8080
    root ./www
    rewrite ^/old/(.*)$ /docs/$1 last
    location /docs { }
    location /r {
        rewrite ^/r/args$ /docs/page.html?a=1 last
        rewrite ^/r/drop$ /docs/page.html? last
        rewrite ^/r/only$ /docs/page.html?a=1? last
        rewrite ^/r/keep$ /docs/page.html last
        rewrite ^/r/(?<name>[a-z]+)/named$ /docs/$name.html break
        rewrite ^/r/chain$ /r/chain2
        rewrite ^/r/chain2$ /docs/page.html last
        rewrite ^/r/flagless$ /docs/page.html
        rewrite ^/r/perm/(.*)$ /docs/$1 permanent
        rewrite ^/r/temp$ /docs/page.html redirect
        rewrite ^/r/abs$ https://example.org/new
        rewrite ^/r/abs2$ https://example.org/new?x=1
        rewrite ^/r/absq$ https://example.org/new?
        rewrite ^/r/break$ /docs/page.html break
        return 200 "fell through $uri"
    }
    location = /loop { rewrite ^ /loop last }
    location = /away { rewrite ^ /elsewhere break }
}
"""


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/r/args?b=2", "/docs/page.html", "a=1&b=2"),  # new args, then the request's
        ("/r/args", "/docs/page.html", "a=1"),
        ("/r/drop?b=2", "/docs/page.html", ""),  # a final "?" drops them
        ("/r/only?b=2", "/docs/page.html", "a=1"),
        ("/r/keep?b=2", "/docs/page.html", "b=2"),  # no "?": kept
        ("/r/page/named", "/docs/page.html", ""),  # a named capture
        ("/r/chain?z=9", "/docs/page.html", "z=9"),  # no flag: the next rewrite sees the result
        ("/old/page.html", "/docs/page.html", ""),  # a server-level rewrite
    ],
)
def test_rewrite_changes_the_uri_and_query(make: Any, target: str, path: str, query: str) -> None:
    exchange = make(REWRITES).get(target)
    assert status(exchange) == 200 and body(exchange) == b"page"
    assert (exchange.request.path, exchange.request.query) == (path, query)


def test_rewrite_last_chooses_the_location_again_break_stays(make: Any) -> None:
    site = make(REWRITES)
    last = site.get("/r/keep")
    assert last.location.prefix == "/docs"
    # break: served by /r with the new URI (its root maps it), the return never runs
    stay = site.get("/r/break")
    assert stay.location.prefix == "/r" and body(stay) == b"page"
    assert body(site.get("/r/nomatch")) == b"fell through /r/nomatch"
    # Without a flag the next directives run too (NGINX): here the return.
    assert body(site.get("/r/flagless")) == b"fell through /docs/page.html"


@pytest.mark.parametrize(
    ("target", "code", "location"),
    [
        ("/r/perm/page.html?q=1", 301, "http://example.test:8080/docs/page.html?q=1"),
        ("/r/temp", 302, "http://example.test:8080/docs/page.html"),
        ("/r/abs?q=1", 302, "https://example.org/new?q=1"),
        ("/r/abs2?q=1", 302, "https://example.org/new?x=1&q=1"),
        ("/r/absq?q=1", 302, "https://example.org/new"),
    ],
)
def test_rewrite_redirects(make: Any, target: str, code: int, location: str) -> None:
    exchange = make(REWRITES).get(target)
    assert (status(exchange), header(exchange, "Location")) == (code, location)


def test_ten_rewrites_then_500(make: Any) -> None:
    exchange = make(REWRITES).get("/loop")
    assert status(exchange) == 500
    assert exchange.redirects == 11


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("rewrite ^/(a $1", 19, 'invalid regular expression "^/(a"'),
        ("rewrite ^ /x later", 22, 'invalid rewrite flag "later"'),
        ("rewrite ^ x", 19, "must start with / (a path), http://, https:// or $scheme"),
        ("rewrite ^ /$2$nope", 22, 'unknown "nope" variable'),
        ("rewrite ^ /x?$nope", 22, 'unknown "nope" variable'),
        ("rewrite (?P<uri>.*) /x", 17, 'the duplicate "uri" variable'),
    ],
)
def test_rewrite_errors(line: str, column: int, message: str) -> None:
    text = f"server {{\n    port 80\n    location / {{\n        {line}\n    }}\n}}\n"
    with pytest.raises(ConfigError) as caught:
        loads(text)
    assert (caught.value.line, caught.value.column) == (4, column)
    assert message in caught.value.message


def test_return_and_rewrite_run_in_written_order(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    root ./www
    location /o {
        rewrite ^/o/first$ /docs/page.html last
        return 200 "returned"
        rewrite ^ /docs/page.html last
    }
}
"""
    )
    assert body(site.get("/o/first")) == b"page"
    assert body(site.get("/o/other")) == b"returned"
    program = site.config.servers[0].locations[0].options["rewrite"]
    assert [type(rule) for rule in program] == [RewriteRule, ReturnRule, RewriteRule]


def test_nested_locations_do_not_inherit(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    root ./www
    location /docs {
        return 403
        try_files $uri =404
        location ~ \\.html$ { }
        location /docs/guide { internal }
    }
    location /app { root ./www/app; internal; location /app/assets { } }
}
"""
    )
    assert status(site.get("/docs/other")) == 403
    assert body(site.get("/docs/page.html")) == b"page"  # the nested regex location
    assert status(site.get("/docs/guide/")) == 404  # internal
    assert body(site.get("/app/assets/app.js")) == b"js"
    assert status(site.get("/app/")) == 404


# -- try_files -------------------------------------------------------------------------


SPA = """
server {
    port 8080
    root ./www
    error_page 404 ./www/errors/404.html
    location / { try_files $uri $uri/ /app/index.html }
    location /api { try_files $uri @backend }
    location @backend { return 200 "backend $uri" }
    location /code { try_files $uri =404 }
    location /files { root ./www/app; try_files $uri /files/index.html?from=$uri }
    location /gone { try_files /nothing =410 }
}
"""


@pytest.mark.parametrize(
    ("target", "expected", "path"),
    [
        ("/docs/page.html", b"page", "/docs/page.html"),  # the file itself
        ("/docs/guide/", b"guide", "/docs/guide/"),  # a folder, with its slash
        ("/some/client/route?x=1", b"spa shell", "/app/index.html"),  # the fallback URI
        ("/app/leak.txt", b"spa shell", "/app/index.html"),  # escapes the root: not found
        ("/api/users", b"backend /api/users", "/api/users"),  # a named location
        ("/files/assets/app.js", b"js", "/files/assets/app.js"),  # an alias root
    ],
)
def test_try_files(make: Any, target: str, expected: bytes, path: str) -> None:
    exchange = make(SPA).get(target)
    assert status(exchange) == 200
    assert body(exchange) == expected
    assert exchange.request.path == path


def test_try_files_folder_without_slash_redirects_like_nginx(make: Any) -> None:
    exchange = make(SPA).get("/docs/guide")
    # $uri/ found the folder: the URI stays /docs/guide, whose static answer is 301 to /docs/guide/.
    assert status(exchange) == 301
    assert header(exchange, "Location") == "/docs/guide/"


def test_try_files_fallback_query_and_codes(make: Any) -> None:
    site = make(SPA)
    fallback = site.get("/files/nothing?q=1")
    assert fallback.request.path == "/files/index.html"
    assert fallback.request.query == "from=/files/nothing"  # the URI's own query only
    assert body(fallback) == b"spa shell"
    code = site.get("/code/x")
    assert (status(code), body(code)) == (404, b"custom 404")  # with the error page
    assert status(site.get("/gone")) == 410


def test_try_files_in_a_server_applies_to_its_implicit_location(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    root ./www
    try_files $uri /app/index.html
    location /docs { }
}
"""
    )
    assert body(site.get("/anything")) == b"spa shell"
    assert status(site.get("/docs/nothing")) == 404  # an explicit location has its own


def test_try_files_errors() -> None:
    for line, message in [
        ("try_files $uri", 'invalid number of values in "try_files"'),
        ("try_files $uri =99", 'invalid try_files code "=99"'),
        ("try_files $uri index.html", 'the last try_files value "index.html" must be a URI'),
        ("try_files $nope /x", 'try_files "$nope": unknown "nope" variable'),
        ("try_files $uri @", 'invalid named location "@"'),
    ]:
        with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
            loads(f"server {{\n port 80\n location / {{ {line} }}\n}}\n")


def test_try_files_value_shape(make: Any) -> None:
    locations = {loc.prefix: loc for loc in make(SPA).config.servers[0].locations}
    rule = locations["/"].options["try_files"]
    assert isinstance(rule, TryFiles)
    # "$uri/" is "$uri" that must be a folder
    assert [(t.text, folder) for t, folder in rule.files] == [("$uri", False), ("$uri", True)]
    assert rule.uri is not None and rule.uri.text == "/app/index.html"
    assert locations["/api"].options["try_files"].named == "@backend"
    assert locations["/gone"].options["try_files"].code == 410


# -- internal --------------------------------------------------------------------------


def test_internal_locations_answer_internal_redirects_only(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    root ./www
    location /errors { internal }
    location = /x { rewrite ^ /errors/404.html last }
}
"""
    )
    assert status(site.get("/errors/404.html")) == 404
    reached = site.get("/x")
    assert (status(reached), body(reached)) == (200, b"custom 404")
    internal = {loc.prefix: loc.internal for loc in site.config.servers[0].locations}
    assert internal == {"/errors": True, "/x": False, "/": False}


# -- error_page targets ----------------------------------------------------------------------


def test_error_page_forms(site: Path) -> None:
    config = loads(
        f"""
error_page 500 ./www/errors/404.html
server {{
    port 80
    error_page 404 /errors/404.html
    error_page 403 =200 /ok?from=$uri
    error_page 502 503 = @fallback
    error_page 410 http://example.org/gone
    error_page 451 =301 https://example.org/law
    error_page 409 =418 ./www/errors/404.html
    error_page 408 {site}/www/errors/404.html
    error_page 400 /www/errors/404.html
    location / {{ root ./www; error_page 404 ./www/errors/404.html }}
    location @fallback {{ return 200 }}
}}
""",
        site / "t.conf",
    )
    server = config.servers[0]
    pages = server.error_pages
    assert isinstance(pages, ErrorPages)
    page = site / "www" / "errors" / "404.html"
    assert dict(pages) == {500: page, 409: page, 408: page}  # the files
    targets = pages.targets
    assert (targets[404].kind, targets[404].status, targets[404].text) == (
        "uri",
        None,
        "/errors/404.html",
    )
    assert (targets[403].kind, targets[403].status) == ("uri", 200)
    assert (targets[502].kind, targets[502].status, targets[502].text) == ("named", 0, "@fallback")
    assert targets[503] == targets[502]
    assert (targets[410].kind, targets[410].status) == ("url", None)
    assert (targets[451].kind, targets[451].status) == ("url", 301)
    assert (targets[409].kind, targets[409].status, targets[409].path) == ("file", 418, page)
    assert 408 not in targets  # an absolute path naming a file is that file
    assert targets[400].kind == "uri"  # an absolute path naming nothing is a URI
    # A location's own setting for a code replaces the inherited one, whatever its kind.
    location = server.locations[0] if server.locations[0].prefix == "/" else server.locations[1]
    assert location.error_pages[404] == page and 404 not in location.error_pages.targets
    assert location.error_pages.targets[403].kind == "uri"
    assert error_target(location.error_pages, 404) is None
    assert error_target({404: page}, 404) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("error_page 404 =99 /x", 'invalid status "=99"'),
        ("error_page =200 /x", 'invalid number of values in "error_page"'),
        ("error_page 404 =200 500 /x", '"=200" goes just before the target'),
        ("error_page 404 =200 http://x/", "must be 301, 302, 303, 307 or 308"),
        ("error_page 404 /x$nope", 'unknown "nope" variable'),
        ("error_page 404 @a/b", 'invalid named location "@a/b"'),
    ],
)
def test_error_page_errors(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(f"server {{\n    port 80\n    {line}\n}}\n")
    assert message in caught.value.message
    assert caught.value.line == 3


def test_error_page_request_and_answer(make: Any) -> None:
    site = make(SPA)
    conditional = (("if-none-match", '"x"'), ("range", "bytes=0-1"))
    request = make_request("POST", "/a/b?x=1", extra=conditional)
    exchange = Exchange(request, site.config, site.services)
    uri = ErrorTarget("uri", "/err?c=$uri", None, template=_compiled("/err/../e?c=$uri"))
    request = error_page_request(exchange, uri, 404, True)  # type: ignore[arg-type]
    assert type(request) is ErrorPageRequest
    assert (request.method, request.path, request.query) == ("GET", "/e", "c=/a/b")
    assert (request.status, request.close, request.error) == (404, True, 404)
    # conditional and range fields are dropped: the page is answered in full
    assert "if-none-match" not in request.headers and "range" not in request.headers
    named = error_page_request(exchange, ErrorTarget("named", "@x", 0), 502, False)  # type: ignore[arg-type]
    assert (named.method, named.path, named.query, named.status) == ("POST", "/a/b", "x=1", 0)
    head = Exchange(make_request("HEAD", "/a"), site.config, site.services)
    assert error_page_request(head, uri, 404, False).method == "HEAD"  # type: ignore[arg-type]
    # The answer takes the error's status; a failed page is the error's built-in page.
    assert error_page_answer(request, Response(200, [], b"page")).status == 404
    failed = error_page_answer(request, error_response(403))
    assert failed.status == 404 and b"404 Not Found" in failed.body and failed.close
    request.status = 0
    assert error_page_answer(request, Response(201)).status == 201
    request.status = 200
    assert error_page_answer(request, error_response(403)).status == 404


def _compiled(text: str) -> Any:
    from localhost.variables import compile_template

    return compile_template(text)


def test_clean_path() -> None:
    assert clean_path("/a/./b//c/../d/") == "/a/b/d/"
    assert clean_path("a") == "/a"
    assert clean_path("/plain") == "/plain"
    with pytest.raises(HTTPError):
        clean_path("/a/../../etc")


def test_location_value_and_absolute_url(make: Any) -> None:
    assert location_value("/a b/é") == "/a%20b/%C3%A9"
    assert location_value("/a%20b?x=1&y") == "/a%20b?x=1&y"
    site = make(SPA)
    exchange = Exchange(make_request("GET", "/", host="[::1]:8080"), site.config, site.services)
    assert absolute_url(exchange, "/p") == "http://[::1]:8080/p"  # type: ignore[arg-type]
    exchange.local = ("127.0.0.1", 80)
    assert absolute_url(exchange, "/p") == "http://[::1]/p"  # type: ignore[arg-type]
    exchange.request.host = ""
    assert absolute_url(exchange, "/p") == "http://127.0.0.1/p"  # type: ignore[arg-type]
    assert absolute_url(exchange, "https://x/p") == "https://x/p"  # type: ignore[arg-type]


def test_redirect_takes_variables(make: Any) -> None:
    site = make(
        """
server {
    port 8080
    location /old { redirect https://new.example$request_uri }
    location ~ ^/user/(\\d+)$ { redirect /u/$1 }
}
"""
    )
    moved = site.get("/old/a?b=1")
    assert (status(moved), header(moved, "Location")) == (301, "https://new.example/old/a?b=1")
    user = site.get("/user/42")
    assert header(user, "Location") == "/u/42"
