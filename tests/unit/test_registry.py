"""The handler registry: a handler registered by a test is routed to and appears in Allow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localhost.config import ConfigError, loader, loads
from localhost.config.loader import LOCATION, Directive
from localhost.config.model import Config, Location
from localhost.handlers import base, redirect
from localhost.handlers.base import (
    BodyPolicy,
    Handler,
    HandlerSpec,
    allow_header,
    function_handler,
    register,
    unregister,
)
from localhost.http.message import Response
from localhost.routing import Router
from localhost.server.pipeline import Pipeline
from localhost.services import Services
from tests.unit.test_pipeline import FakeExchange, make_request, run


class Echo(Handler):
    """A streaming toy: PUT answers with the body it got, in pieces."""

    __slots__ = ("got",)

    def __init__(self, exchange: Any) -> None:
        super().__init__(exchange)
        self.got = bytearray()

    def on_head(self) -> BodyPolicy:
        return BodyPolicy.STREAM

    def on_body(self, data: bytes) -> bool:
        self.got += data
        return True

    def on_body_end(self) -> None:
        self.exchange.start(Response(200), len(self.got))
        self.exchange.write(bytes(self.got))
        self.exchange.finish()


def _toy_methods(location: Location) -> frozenset[str]:
    return frozenset({"PUT"}) if location.prefix == "/toy" else frozenset()


@pytest.fixture
def toy() -> Iterator[None]:
    register(HandlerSpec("toy", _toy_methods, Echo, priority=250))
    yield
    unregister("toy")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "www").mkdir()
    text = "server {\n port 80\n root ./www\n location /toy {\n  root ./www\n }\n}\n"
    return loads(text, tmp_path / "t.conf")


@pytest.fixture
def services(config: Config) -> Iterator[Services]:
    services = Services(config, None)  # type: ignore[arg-type]
    yield services
    services.close()


def test_a_registered_handler_is_routed_to_and_in_allow(
    toy: None, config: Config, services: Services
) -> None:
    pipeline = Pipeline(Router(config), services)
    exchange = FakeExchange(make_request("PUT", "/toy/a", 5), config.servers[0], services)
    response = run(pipeline, exchange, b"hello")
    assert response.status == 200 and bytes(exchange.streamed) == b"hello"
    toy_location = Router(config).match(config.servers[0], "/toy/a")
    assert toy_location is not None
    assert allow_header(toy_location) == "GET, HEAD, OPTIONS, PUT"
    # Elsewhere it does not answer: PUT stays a 405 without it in Allow.
    other = FakeExchange(make_request("PUT", "/x", 5), config.servers[0], services)
    response = run(pipeline, other, b"hello")
    assert response.status == 405 and dict(response.headers)["Allow"] == "GET, HEAD, OPTIONS"


def test_without_the_registration_the_method_is_not_allowed(
    config: Config, services: Services
) -> None:
    pipeline = Pipeline(Router(config), services)
    exchange = FakeExchange(make_request("PUT", "/toy/a", 5), config.servers[0], services)
    assert run(pipeline, exchange, b"hello").status == 405


def test_priority_and_select_decide_who_answers(config: Config, services: Services) -> None:
    def first(_exchange: Any) -> Response:
        return Response(200, [], b"first")

    def second(_exchange: Any) -> Response:
        return Response(200, [], b"second")

    register(
        HandlerSpec(
            "picky",
            lambda _l: frozenset({"GET"}),
            function_handler(first),
            priority=10,
            select=lambda request, _l: request.query == "picky",
        )
    )
    register(HandlerSpec("fallback", lambda _l: frozenset({"GET"}), function_handler(second), 20))
    try:
        pipeline = Pipeline(Router(config), services)
        server = config.servers[0]
        picked = run(pipeline, FakeExchange(make_request("GET", "/x?picky"), server, services))
        assert picked.body == b"first"
        other = run(pipeline, FakeExchange(make_request("GET", "/x"), server, services))
        assert other.body == b"second"
    finally:
        unregister("picky")
        unregister("fallback")


def test_the_builtin_handlers_are_registered_in_order() -> None:
    names = [spec.name for spec in base.specs()]
    assert names == [
        "redirect",
        "websocket",
        "proxy",
        "wsgi",
        "app",
        "cgi",
        "options",
        "session",
        "upload",
        "delete",
        "precompressed",
        "static",
    ]


def test_a_directive_belongs_to_one_handler() -> None:
    register(HandlerSpec("a", lambda _l: frozenset(), Handler, directives={"thing": object()}))
    try:
        with pytest.raises(ValueError, match="thing"):
            register(
                HandlerSpec("b", lambda _l: frozenset(), Handler, directives={"thing": object()})
            )
        assert "thing" in base.directives()
    finally:
        unregister("a")


def _greeting(v: Any, args: list[Any]) -> str:
    if not args[0].isalpha():
        v.fail(args[0], f"invalid greeting {str(args[0])!r}")
    return str(args[0])


GREETING = Directive((LOCATION,), 1, 1, _greeting, syntax="greeting WORD")


def test_a_handler_brings_its_own_directive_to_the_loader(tmp_path: Path) -> None:
    text = "server {\n port 80\n location / {\n  root .\n  greeting hello\n }\n}\n"
    with pytest.raises(ConfigError, match='unknown directive "greeting"'):
        loads(text, tmp_path / "t.conf")
    register(HandlerSpec("greet", lambda _l: frozenset(), Handler, directives=GREETING_ROWS))
    try:
        loads(text, tmp_path / "t.conf")
        with pytest.raises(ConfigError) as error:
            loads(text.replace("hello", "h3llo"), tmp_path / "t.conf")
        assert (error.value.line, error.value.column) == (5, 12)
        assert "invalid greeting 'h3llo'" in str(error.value)
        with pytest.raises(ConfigError, match=r"syntax: greeting WORD"):
            loads(text.replace("hello", "hello there"), tmp_path / "t.conf")
    finally:
        unregister("greet")


GREETING_ROWS = {"greeting": GREETING}


def test_a_handler_cannot_take_a_directive_of_the_loader(tmp_path: Path) -> None:
    register(HandlerSpec("greedy", lambda _l: frozenset(), Handler, directives={"root": GREETING}))
    try:
        with pytest.raises(ValueError, match="root"):
            loads("server {\n port 80\n root .\n}\n", tmp_path / "t.conf")
    finally:
        unregister("greedy")


def test_cgi_and_redirect_directives_live_in_their_handlers(tmp_path: Path) -> None:
    assert not {"cgi", "cgi_timeout", "redirect"} & set(loader.DIRECTIVES)
    text = "server {\n port 80\n location /a {\n  redirect /b\n }\n}\n"
    assert loads(text, tmp_path / "t.conf").servers[0].locations[0].redirect == "/b"
    unregister("redirect")
    try:
        with pytest.raises(ConfigError, match='unknown directive "redirect"'):
            loads(text, tmp_path / "t.conf")
    finally:
        register(redirect.SPEC)
