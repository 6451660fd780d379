"""``redirect URL``: answer 301 with ``Location`` (RFC 9110 §15.4.2)."""

from __future__ import annotations

import html
from typing import Any

from lark import Token

from localhost.config.loader import LOCATION, Directive, Scope, Validator, quote
from localhost.config.model import Location
from localhost.handlers.base import ALL_METHODS, Exchange, HandlerSpec, function_handler
from localhost.http.message import Response


def redirect(url: str, status: int = 301) -> Response:
    """A ``status`` redirect to ``url``, with a short HTML body linking to it."""
    link = html.escape(url, quote=True)
    body = (
        f"<!DOCTYPE html>\n<html><head><title>Moved</title></head>\n"
        f'<body><h1>Moved</h1><p><a href="{link}">{link}</a></p></body></html>\n'
    ).encode()
    return Response(status, [("Location", url), ("Content-Type", "text/html; charset=utf-8")], body)


def _answer(exchange: Exchange) -> Response:
    location = exchange.location
    assert location is not None and location.redirect is not None
    return redirect(location.redirect)


def _is_redirect(location: Location) -> bool:
    return location.redirect is not None


def _methods(location: Location) -> frozenset[str]:
    return ALL_METHODS if location.redirect is not None else frozenset()


def _url(v: Validator, args: list[Token]) -> str:
    url = args[0]
    if not url.isprintable() or not url.isascii() or " " in url:
        v.fail(url, f"invalid redirect URL {quote(url)}")
    return str(url)


def _own(scopes: tuple[Scope, Scope, Scope]) -> Any:
    return scopes[0].get("redirect")  # a location's own: not inherited


DIRECTIVES = {
    "redirect": Directive(
        (LOCATION,), 1, 1, _url, syntax="redirect URL", derive=_own, rootless=True
    ),
}

#: A location with ``redirect`` answers every request with it, ignoring the body.
SPEC = HandlerSpec(
    "redirect",
    _methods,
    function_handler(_answer, ignore_body=True, name="RedirectHandler"),
    priority=100,
    exclusive=_is_redirect,
    directives=DIRECTIVES,
)
