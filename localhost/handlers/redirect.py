"""``redirect URL``: answer 301 with ``Location`` (RFC 9110 §15.4.2).

``URL`` may hold variables (``localhost.variables``: ``$host``,
``$request_uri``, ``$1``...), compiled once at load and rendered per
request. This module also makes the redirects of ``return``, ``rewrite``
and ``error_page`` (``redirect``, ``absolute_url``).
"""

from __future__ import annotations

import html
from typing import Any, cast
from urllib.parse import quote

from lark import Token

from localhost.config.loader import LOCATION, Directive, Scope, Validator
from localhost.config.loader import quote as quoted
from localhost.config.model import Location
from localhost.handlers.base import ALL_METHODS, Exchange, HandlerSpec, function_handler
from localhost.http.message import Response
from localhost.routing import split_host
from localhost.variables import Template, VariableContext, VariableError, compile_template

#: What stays as it is in a Location value: the reserved and unreserved
#: characters of RFC 3986 §2, and "%" (a value may be encoded already).
_URL_SAFE = ":/?#[]@!$&'()*+,;=-._~%"

#: The port a scheme implies (NGINX's ``port_in_redirect`` leaves it out).
_DEFAULT_PORTS = {"http": 80, "https": 443}


def redirect(url: str, status: int = 301) -> Response:
    """A ``status`` redirect to ``url``, with a short HTML body linking to it."""
    link = html.escape(url, quote=True)
    body = (
        f"<!DOCTYPE html>\n<html><head><title>Moved</title></head>\n"
        f'<body><h1>Moved</h1><p><a href="{link}">{link}</a></p></body></html>\n'
    ).encode()
    return Response(status, [("Location", url), ("Content-Type", "text/html; charset=utf-8")], body)


def location_value(url: str) -> str:
    """``url`` fit for a Location field: spaces, controls and non-ASCII
    characters percent-encoded (UTF-8), everything else as it is."""
    if url.isascii() and url.isprintable() and " " not in url:
        return url
    return quote(url, safe=_URL_SAFE, errors="surrogateescape")


def absolute_url(exchange: Exchange, url: str) -> str:
    """``url`` made absolute when it is a path, as NGINX's ``absolute_redirect
    on``: ``scheme://host[:port]`` + ``url``. The host is the request's
    (``Host`` without its port; the server's first name, else the local
    address, when there is none), the port the one the connection came in on,
    left out when it is the scheme's default (``port_in_redirect on``)."""
    if url[:1] != "/" or url[:2] == "//":
        return url
    scheme = exchange.scheme
    request = exchange.request
    host = split_host(request.host) if request.host else ""
    if not host:
        names = [
            name
            for name in exchange.server.server_names
            if name[:1] not in "~*." and "*" not in name
        ]
        host = names[0] if names and names[0] else exchange.local[0]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = exchange.local[1]
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{url}"


def render(template: Template, exchange: Exchange) -> str:
    """``template`` for the request of ``exchange`` (what variables read)."""
    return template.render(cast(VariableContext, exchange))


class RedirectURL(str):
    """A ``redirect`` value: the URL as written (a ``str``), with its compiled
    ``template`` (None when it has no variables)."""

    template: Template | None = None


def _answer(exchange: Exchange) -> Response:
    location = exchange.location
    assert location is not None and location.redirect is not None
    url = location.redirect
    template = getattr(url, "template", None)
    if template is not None:
        url = location_value(render(template, exchange))
    return redirect(url)


def _is_redirect(location: Location) -> bool:
    return location.redirect is not None


def _methods(location: Location) -> frozenset[str]:
    return ALL_METHODS if location.redirect is not None else frozenset()


def compile_value(v: Validator, token: Token, what: str) -> Template:
    """``token`` compiled as a string with variables (``$1``..``$9`` allowed);
    an unknown variable fails at its column, ``what`` naming the value."""
    try:
        return compile_template(str(token), captures=True, named=v.location_names)
    except VariableError as exc:
        column = (token.column or 0) + exc.offset + (1 if token.type == "STRING" else 0)
        v.fail(None, f"{what} {quoted(token)}: {exc.message}", token.line or 0, column)


def _url(v: Validator, args: list[Token]) -> str:
    url = args[0]
    if not url.isprintable() or not url.isascii() or " " in url:
        v.fail(url, f"invalid redirect URL {quoted(url)}")
    value = RedirectURL(url)
    template = compile_value(v, url, "redirect URL")
    if template.static is None:
        value.template = template
    return value


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
