"""The pipeline's phases without sockets: 413/404/405 decisions, sessions, dispatch.

``FakeExchange`` records what a handler answers; the pipeline and the
handlers see it through the ``Exchange`` interface only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localhost.config import loads
from localhost.config.model import Config, ServerBlock
from localhost.handlers.base import BodyPolicy, Handler
from localhost.http.message import Headers, Request, Response
from localhost.http.target import normalize_target
from localhost.routing import Router
from localhost.server.pipeline import Pipeline
from localhost.services import Services


def make_request(
    method: str,
    target: str,
    length: int | None = None,
    headers: list[tuple[str, str]] | None = None,
    expect_continue: bool = False,
) -> Request:
    fields = Headers([("host", "x"), *(headers or [])])
    req = Request(method, target, "HTTP/1.1", fields, "x", True, length, False, expect_continue)
    req.path, req.query = normalize_target(target)
    return req


class FakeExchange:
    """The ``Exchange`` interface, recording the answer."""

    def __init__(self, request: Request, server: ServerBlock, services: Services) -> None:
        self.request = request
        self.server = server
        self.location = None
        self.peer = ("127.0.0.1", 40000)
        self.local = ("127.0.0.1", 8080)
        self.scheme = "http"
        self.session: str | None = None
        self.extra_headers: list[tuple[str, str]] = []
        self.services = services
        self.loop: Any = services.loop
        self.body = None
        self.captures = None
        self.header_filter = None
        self.cleanups = None
        self.rewritten = False
        self.redirects = 0
        self.started = False
        self.done = False
        self.response: Response | None = None
        self.streamed = bytearray()
        self.redirected: str | None = None
        self.writable = True

    def send(self, response: Response) -> None:
        if self.done:
            response.release()
            return
        self.done = True
        self.response = response

    def start(self, response: Response, length: int | None) -> None:
        self.response = response

    def write(self, data: bytes) -> bool:
        self.streamed += data
        return self.writable

    def finish(self) -> None:
        self.done = True

    def abort(self) -> None:
        self.done = True

    def internal_redirect(self, target: str) -> None:
        self.redirected = target

    def resume_body(self) -> None:
        pass


def run(pipeline: Pipeline, exchange: FakeExchange, body: bytes = b"") -> Response:
    """Drive the handler the way the protocol does; the answer (HTTPError → error page)."""
    from localhost.http.errors import HTTPError

    handler = pipeline.start(exchange)  # type: ignore[arg-type]
    try:
        policy = handler.on_head()
        if not exchange.done:
            if policy == BodyPolicy.STREAM and body:
                handler.on_body(body)
            handler.on_body_end()
    except HTTPError as exc:
        exchange.send(pipeline.error_response(exchange, exc))  # type: ignore[arg-type]
    assert exchange.response is not None
    return exchange.response


CONF = """
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
    location /files {
        root ./www
        methods GET POST DELETE
    }
    location /old {
        redirect /new
    }
    location /session {
        session on
    }
}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    www = tmp_path / "www"
    (www / "errors").mkdir(parents=True)
    (www / "index.html").write_text("home")
    (www / "errors" / "404.html").write_text("custom 404")
    return loads(CONF, tmp_path / "t.conf")


@pytest.fixture
def services(config: Config) -> Any:
    services = Services(config, None)  # type: ignore[arg-type]
    yield services
    services.close()


@pytest.fixture
def pipeline(config: Config, services: Services) -> Pipeline:
    return Pipeline(Router(config), services)


def exchange_for(
    config: Config, services: Services, method: str, target: str, **kw: Any
) -> FakeExchange:
    return FakeExchange(make_request(method, target, **kw), config.servers[0], services)


def test_413_comes_first_then_404_then_405(
    config: Config, services: Services, pipeline: Pipeline
) -> None:
    exchange = exchange_for(config, services, "POST", "/only", length=11)
    handler = pipeline.start(exchange)  # type: ignore[arg-type]
    # A 413 goes out in on_head: the body is never read.
    assert handler.on_head() == BodyPolicy.IGNORE
    assert exchange.response is not None and exchange.response.status == 413
    assert exchange.response.close
    assert b"10 bytes" in exchange.response.body
    response = run(pipeline, exchange_for(config, services, "POST", "/only", length=5))
    assert response.status == 405
    assert dict(response.headers)["Allow"] == "GET, HEAD, OPTIONS"
    response = run(pipeline, exchange_for(config, services, "GET", "/only/../index.html"))
    assert response.status == 200


def test_without_a_location_the_server_decides(tmp_path: Path, services: Services) -> None:
    (tmp_path / "www" / "errors" / "404.html").write_text("custom 404")
    config = loads(
        "server {\n port 80\n body_limit 100\n error_page 404 ./www/errors/404.html\n"
        " location /a {\n  root ./www\n }\n}\n",
        tmp_path / "u.conf",
    )
    pipeline = Pipeline(Router(config), services)
    big = FakeExchange(make_request("POST", "/x", 1000), config.servers[0], services)
    assert run(pipeline, big).status == 413
    response = run(pipeline, FakeExchange(make_request("GET", "/x"), config.servers[0], services))
    assert response.status == 404 and response.body == b"custom 404"


def test_allow_lists_what_the_location_allows_and_can_answer(
    config: Config, services: Services, pipeline: Pipeline
) -> None:
    response = run(pipeline, exchange_for(config, services, "OPTIONS", "/files/"))
    assert response.status == 200
    assert dict(response.headers)["Allow"] == "DELETE, GET, HEAD, OPTIONS, POST"
    # PUT is implemented, but nothing answers it in a plain location.
    response = run(pipeline, exchange_for(config, services, "PUT", "/files/x"))
    assert response.status == 405
    assert dict(response.headers)["Allow"] == "DELETE, GET, HEAD, OPTIONS, POST"
    # Without `methods`, uploads and DELETE are not offered.
    response = run(pipeline, exchange_for(config, services, "DELETE", "/index.html"))
    assert response.status == 405
    assert dict(response.headers)["Allow"] == "GET, HEAD, OPTIONS"
    response = run(pipeline, exchange_for(config, services, "OPTIONS", "/session"))
    assert dict(response.headers)["Allow"] == "DELETE, GET, HEAD, OPTIONS"


def test_a_redirect_answers_every_method_and_ignores_the_body(
    config: Config, services: Services, pipeline: Pipeline
) -> None:
    for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS"):
        exchange = exchange_for(config, services, method, "/old", length=5)
        handler = pipeline.start(exchange)  # type: ignore[arg-type]
        assert handler.on_head() == BodyPolicy.IGNORE
        handler.on_body_end()
        assert exchange.response is not None and exchange.response.status == 301, method
        assert dict(exchange.response.headers)["Location"] == "/new"


def test_a_safe_request_without_body_is_answered_in_on_head(
    config: Config, services: Services, pipeline: Pipeline
) -> None:
    exchange = exchange_for(config, services, "GET", "/index.html")
    handler = pipeline.start(exchange)  # type: ignore[arg-type]
    assert handler.on_head() == BodyPolicy.IGNORE
    assert exchange.done and exchange.response is not None
    assert exchange.response.body == b"home"
    # With a body it waits for on_body_end (the body may be all there already),
    # and with Expect: 100-continue the body is read first.
    exchange = exchange_for(config, services, "GET", "/index.html", length=3)
    assert pipeline.start(exchange).on_head() == BodyPolicy.IGNORE  # type: ignore[arg-type]
    assert not exchange.done
    exchange = exchange_for(config, services, "GET", "/index.html", length=3, expect_continue=True)
    assert pipeline.start(exchange).on_head() == BodyPolicy.DISCARD  # type: ignore[arg-type]


def test_an_error_before_the_body_with_expect_continue_goes_out_at_once(
    config: Config, services: Services, pipeline: Pipeline
) -> None:
    exchange = exchange_for(config, services, "POST", "/only", length=5, expect_continue=True)
    assert pipeline.start(exchange).on_head() == BodyPolicy.IGNORE  # type: ignore[arg-type]
    assert exchange.response is not None and exchange.response.status == 405
    assert exchange.response.close


def test_delete_reads_the_whole_body_first(
    config: Config, services: Services, pipeline: Pipeline, tmp_path: Path
) -> None:
    (tmp_path / "www" / "gone.txt").write_text("x")
    exchange = exchange_for(config, services, "DELETE", "/files/gone.txt", length=2)
    handler = pipeline.start(exchange)  # type: ignore[arg-type]
    assert handler.on_head() == BodyPolicy.DISCARD
    assert (tmp_path / "www" / "gone.txt").exists()
    handler.on_body_end()
    assert exchange.response is not None and exchange.response.status == 204
    assert not (tmp_path / "www" / "gone.txt").exists()


def test_session_middleware_sets_a_cookie_once(
    config: Config, services: Services, pipeline: Pipeline
) -> None:
    exchange = exchange_for(config, services, "GET", "/session")
    response = run(pipeline, exchange)
    assert response.status == 200 and exchange.session is not None
    cookies = [v for n, v in exchange.extra_headers if n == "Set-Cookie"]
    assert len(cookies) == 1 and cookies[0].startswith("LOCALHOST_SESSION=")
    sent = cookies[0].split(";", 1)[0]
    again = exchange_for(config, services, "GET", "/session", headers=[("cookie", sent)])
    response = run(pipeline, again)
    assert again.session == exchange.session and again.extra_headers == []
    assert b'"visits": 2' in response.body
    # DELETE ends it, and never creates one.
    gone = exchange_for(config, services, "DELETE", "/session", headers=[("cookie", sent)])
    assert run(pipeline, gone).status == 204
    fresh = exchange_for(config, services, "DELETE", "/session")
    assert run(pipeline, fresh).status == 204 and fresh.session is None
    assert fresh.extra_headers == []


def test_the_pipeline_never_raises(config: Config, services: Services) -> None:
    def explode(_exchange: Any) -> Handler:
        raise RuntimeError("bug")

    from localhost.handlers.base import HandlerSpec, register, unregister

    register(HandlerSpec("broken", lambda _l: frozenset({"PUT"}), explode, priority=1))
    try:
        pipeline = Pipeline(Router(config), services)
        response = run(pipeline, exchange_for(config, services, "PUT", "/x"))
        assert response.status == 500 and response.close
    finally:
        unregister("broken")
