"""The pure parts of the App API (localhost.app.api and localhost.app.mount):
Response construction, Request.args, route registration, the hook runners,
the root check of Response.file and the configuration App.serve builds."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from localhost.app.api import Action, App, Request, Response
from localhost.app.mount import _open_inside, app_config, run_setup_hooks, run_teardown_hooks
from localhost.app.routes import NotAllowed, RouteMatch
from localhost.config import ConfigError
from localhost.config.model import Location
from localhost.http.message import Headers
from localhost.http.message import Request as HTTPRequest
from localhost.http.target import normalize_target

# -- Response ---------------------------------------------------------------------


def test_response_defaults() -> None:
    response = Response()
    assert (response.status, response.headers, response.body) == (200, [], b"")
    assert response.path is None and response.root is None


def test_response_str_body_is_utf8() -> None:
    assert Response(200, body="héllo").body == "héllo".encode()


def test_response_headers_from_a_mapping_or_pairs_become_str_pairs() -> None:
    assert Response(200, {"X-A": "1", "X-N": 2}).headers == [("X-A", "1"), ("X-N", "2")]  # type: ignore[dict-item]
    pairs = (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"))
    assert Response(200, pairs).headers == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_response_iterable_body_is_kept_as_given() -> None:
    chunks = iter([b"a", b"b"])
    assert Response(200, body=chunks).body is chunks


def test_response_json() -> None:
    response = Response.json({"a": [1, None]}, status=201)
    assert response.status == 201
    assert response.headers == [("Content-Type", "application/json")]
    assert response.body == b'{"a": [1, null]}'


def test_response_redirect() -> None:
    assert Response.redirect("/there").headers == [("Location", "/there")]
    assert Response.redirect("/there").status == 302
    assert Response.redirect("/x", 301).status == 301


# -- Response.file ----------------------------------------------------------------


def test_file_default_root_is_the_first_folder_of_a_relative_path() -> None:
    response = Response.file(Path("static") / "css" / "site.css")
    assert response.path == Path("static/css/site.css")
    assert response.root == Path("static")
    assert Response.file("alone.txt").root == Path(".")


def test_file_default_root_of_an_absolute_path_is_its_folder() -> None:
    response = Response.file("/srv/www/a.txt")
    assert (response.path, response.root) == (Path("/srv/www/a.txt"), Path("/srv/www"))


def test_file_with_root_takes_a_relative_path_below_it() -> None:
    response = Response.file("sub/page.html", root="/srv/static")
    assert (response.path, response.root) == (
        Path("/srv/static/sub/page.html"),
        Path("/srv/static"),
    )
    # An absolute path stays what it is: the root check then keeps it out.
    escaped = Response.file("/etc/passwd", root="/srv/static")
    assert (escaped.path, escaped.root) == (Path("/etc/passwd"), Path("/srv/static"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("site.css", "text/css; charset=utf-8"),
        ("page.html", "text/html; charset=utf-8"),
        ("photo.PNG", "image/png"),
        ("data.bin", "application/octet-stream"),
        ("archive.tar.gz", "application/octet-stream"),
        ("no-extension", "application/octet-stream"),
    ],
)
def test_file_content_type_is_the_static_one(name: str, expected: str) -> None:
    assert Response.file(Path("static") / name).headers == [("Content-Type", expected)]


def test_file_content_type_given_is_kept() -> None:
    response = Response.file("static/a.css", headers={"content-type": "text/plain"})
    assert response.headers == [("content-type", "text/plain")]


def test_open_inside(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"12345")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "out.txt")
    os.symlink(root / "sub" / "a.txt", root / "in.txt")
    found = _open_inside(root / "sub" / "a.txt", root)
    assert found is not None
    try:
        assert (found.offset, found.count) == (0, 5)
        assert os.pread(found.fd, 5, 0) == b"12345"
    finally:
        found.close()
    inside = _open_inside(root / "in.txt", root)  # a symlink that stays inside
    assert inside is not None
    inside.close()
    assert _open_inside(root / "out.txt", root) is None
    assert _open_inside(root / ".." / "secret.txt", root) is None
    assert _open_inside(tmp_path / "secret.txt", root) is None
    assert _open_inside(root / "sub", root) is None  # a directory
    assert _open_inside(root / "missing", root) is None


# -- Request ------------------------------------------------------------------------


def make_request(target: str) -> Request:
    http = HTTPRequest(
        "GET", target, "HTTP/1.1", Headers([("host", "x")]), "x", True, None, False, False
    )
    http.path, http.query = normalize_target(target)
    exchange: Any = SimpleNamespace(
        request=http, peer=("10.0.0.1", 5555), local=("127.0.0.1", 8080), scheme="http"
    )
    return Request(exchange, http.path)


def test_request_args_are_parsed_and_decoded() -> None:
    req = make_request("/x?a=1&a=2&b=x%20y+z&c=&d=%C3%A9")
    assert req.query == "a=1&a=2&b=x%20y+z&c=&d=%C3%A9"
    assert req.args == {"a": ["1", "2"], "b": ["x y z"], "c": [""], "d": ["é"]}
    assert req.args is req.args  # parsed once


def test_request_without_query_has_no_args() -> None:
    req = make_request("/x")
    assert (req.query, req.args) == ("", {})


def test_request_attributes() -> None:
    req = make_request("/a%20b/c")
    assert (req.method, req.path, req.route_path) == ("GET", "/a b/c", "/a b/c")
    assert (req.peer, req.local, req.scheme) == (("10.0.0.1", 5555), ("127.0.0.1", 8080), "http")
    assert req.params == ()
    assert req.headers.get("host") == "x"


# -- route registration -----------------------------------------------------------


def test_route_decorator_returns_the_function_and_registers_it() -> None:
    app = App()

    def user(req: Request, id: str) -> str:
        return id

    assert app.route("get", "/user/:id")(user) is user  # the method is upper-cased
    found = app.routes.match("GET", "/user/7")
    assert isinstance(found, RouteMatch)
    assert found.target.handler is user and found.params == ("7",)
    assert found.target.inline is False and found.target.pattern == "/user/:id"
    assert app.routes.match("DELETE", "/user/7") == NotAllowed(frozenset({"GET", "HEAD"}))


def test_inline_and_any_method_routes() -> None:
    app = App()
    app.route("*", "/any", inline=True)(lambda req: "x")
    found = app.routes.match("BREW", "/any")
    assert isinstance(found, RouteMatch) and found.target.inline is True


@pytest.mark.parametrize(
    ("method", "pattern", "message"),
    [
        ("GET", "user/:id", "must start with '/'"),
        ("GET", "/a//b", "empty segment"),
        ("GET", "/**/x", "'**' must be the last segment"),
        ("GET", "/a*", "must be a whole segment"),
        ("GET", "/u/:", "without a param name"),
        ("GET", "/u/:1x", "not an identifier"),
        ("GET", "/u/:a/:a", "is repeated"),
        ("GET POST", "/x", "not an HTTP method token"),
        ("", "/x", "not an HTTP method token"),
    ],
)
def test_invalid_routes_raise_at_registration(method: str, pattern: str, message: str) -> None:
    app = App()
    with pytest.raises(ValueError, match=re.escape(message)):
        app.route(method, pattern)(lambda req: None)


def test_duplicate_route_raises() -> None:
    app = App()
    app.route("GET", "/u/:a")(lambda req, a: a)
    with pytest.raises(ValueError, match="already defined"):
        app.route("GET", "/u/:b")(lambda req, b: b)
    app.route("POST", "/u/:b")(lambda req, b: b)  # another method is another route


def test_fallback_with_and_without_arguments() -> None:
    app = App()

    def missing(req: Request) -> str:
        return "none"

    assert app.fallback(missing) is missing
    assert app.fallback_route is not None and app.fallback_route.handler is missing
    assert app.fallback(inline=True)(missing) is missing
    assert app.fallback_route.inline is True


def test_hooks_are_kept_in_order() -> None:
    app = App()

    def first(peer: Any, local: Any) -> Action:
        return Action.PROCEED

    def second(peer: Any, local: Any) -> Action:
        return Action.DROP

    assert app.connection_setup_hook(first) is first
    app.connection_setup_hook(second)
    assert app.setup_hooks == [first, second]
    assert app.pre_routing_hook(len) is len
    assert app.connection_teardown_hook(print) is print
    assert (app.pre_routing_hooks, app.teardown_hooks) == ([len], [print])


def test_app_settings() -> None:
    app = App()
    assert (app.threads, app.queue, app.body_limit) == (4, 1024, 1024 * 1024)  # README defaults
    with pytest.raises(ValueError):
        App(threads=-1)
    with pytest.raises(ValueError):
        App(body_limit=-1)


# -- hook runners -------------------------------------------------------------------


def test_setup_hooks_decide_in_order() -> None:
    calls: list[str] = []

    def log_call(name: str, result: Any) -> Any:
        def hook(peer: tuple[str, int], local: tuple[str, int]) -> Any:
            calls.append(f"{name} {peer[0]} {local[1]}")
            return result

        return hook

    peer, local = ("10.0.0.9", 4000), ("127.0.0.1", 8080)
    assert run_setup_hooks((log_call("a", Action.PROCEED), log_call("b", None)), peer, local)
    assert calls == ["a 10.0.0.9 8080", "b 10.0.0.9 8080"]
    calls.clear()
    hooks = (log_call("a", Action.DROP), log_call("b", Action.PROCEED))
    assert not run_setup_hooks(hooks, peer, local)
    assert calls == ["a 10.0.0.9 8080"]  # the first DROP decides


def test_setup_hook_that_raises_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    def broken(peer: tuple[str, int], local: tuple[str, int]) -> Action:
        raise RuntimeError("setup broke")

    with caplog.at_level(logging.ERROR, logger="localhost"):
        assert not run_setup_hooks((broken,), ("10.0.0.9", 4000), ("127.0.0.1", 80))
    assert "connection setup hook failed: dropping 10.0.0.9:4000" in caplog.text
    assert "RuntimeError: setup broke" in caplog.text


def test_teardown_hooks_all_run_even_when_one_raises(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[tuple[str, int], str | None]] = []

    def broken(peer: tuple[str, int], reason: str | None) -> None:
        raise RuntimeError("teardown broke")

    def record(peer: tuple[str, int], reason: str | None) -> None:
        seen.append((peer, reason))

    with caplog.at_level(logging.ERROR, logger="localhost"):
        run_teardown_hooks((broken, record), ("10.0.0.9", 4000), "timeout")
        run_teardown_hooks((record,), ("10.0.0.9", 4001), None)
    assert seen == [(("10.0.0.9", 4000), "timeout"), (("10.0.0.9", 4001), None)]
    assert "connection teardown hook failed" in caplog.text
    assert "RuntimeError: teardown broke" in caplog.text


# -- the configuration App.serve runs --------------------------------------------------


def test_direct_config_is_one_block_with_the_app_on_root() -> None:
    app = App(threads=2, queue=5, body_limit=123)
    config = app_config(app, "127.0.0.1", 9999, None)
    assert config.worker_processes == 1
    (server,) = config.servers
    assert server.addresses == (("127.0.0.1", 9999),)
    (location,) = server.locations
    assert location.prefix == "/" and location.body_limit == 123
    assert location.app is not None and location.app.obj is app
    assert (location.app.threads, location.app.queue) == (2, 5)
    assert not config.path.exists()  # nothing for a reload to re-read
    assert app_config(app, "", 9999, 3).worker_processes == 3
    assert app_config(app, "", 9999, None).servers[0].addresses == (("0.0.0.0", 9999),)


def test_from_config_mounts_the_app_where_the_file_has_no_location_root(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "site.conf").write_text(
        "worker_processes 3\n"
        "server {\n    port 8001\n    root ./www\n    location /files { root ./www }\n}\n"
        "server {\n    port 8002\n    location /x { root ./www }\n}\n"
        "server {\n    port 8003\n    root ./www\n    location / { methods GET }\n}\n"
        "server {\n    port 8004\n    protocol echo\n}\n"
        "server {\n    port 8005\n    location = / { root ./www }\n}\n"
    )
    app = App.from_config(tmp_path / "site.conf")
    config = app_config(app, "ignored", 1, None)
    assert config.worker_processes == 3
    assert app_config(app, "ignored", 1, 2).worker_processes == 2
    first, second, third, echo, exact = config.servers

    def on_root(server: Any) -> Any:
        return next(loc for loc in server.locations if loc.prefix == "/" and not loc.modifier)

    # The implicit "location /" of a block's root is replaced by the App...
    assert on_root(first).app is not None and on_root(first).app.obj is app
    assert [loc.prefix for loc in first.locations] == ["/files", "/"]
    # ...a block without one gets the App on /...
    assert on_root(second).app is not None and on_root(second).app.obj is app
    # ...and a location / written in the file is kept as written.
    assert on_root(third).app is None and on_root(third).methods == frozenset({"GET"})
    assert echo.locations == ()
    # "location = /" matches "/" alone: the App answers the other paths.
    assert [(loc.prefix, loc.modifier, loc.app is not None) for loc in exact.locations] == [
        ("/", "=", False),
        ("/", "", True),
    ]


def test_from_config_path_is_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = App.from_config("later.conf")
    assert app.config_path == tmp_path / "later.conf"
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        app_config(app, "", 1, None)


@pytest.mark.parametrize(
    ("location", "prefix"),
    [
        (Location("/"), ""),
        (Location("/api"), "/api"),
        (Location("/api", modifier="^~"), "/api"),
        (Location("/api", modifier="="), "/api"),
        (Location("^/api/", modifier="~"), ""),  # a pattern is no prefix of the path
        (Location("\\.php$", modifier="~*"), ""),
        (Location("@fallback", modifier="@"), ""),
    ],
)
def test_mounted_prefix_by_location_kind(location: Location, prefix: str) -> None:
    assert App().mounted(location).prefix == prefix
