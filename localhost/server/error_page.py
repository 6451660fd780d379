"""Internal redirects shared by the HTTP/1.1 and HTTP/2 protocols: ``error_page``
for a server-made error, and the GET a local redirect serves (``redirected``).

NGINX's ``ngx_http_send_error_page``: an error response the server made
(an ``ErrorResponse``: 404, 403, 413, a failed handler's 500...) is sent as
it is, with another status (``error_page 404 =200 /x.html`` of a file), as a
redirect (a URL target), or served by an internal redirect to a URI or a
named location, whose answer then takes the error's status.
"""

from __future__ import annotations

from localhost.handlers.error_pages import ErrorPageRequest, error_page_request, error_target
from localhost.handlers.redirect import location_value, redirect, render
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response
from localhost.http.target import normalize_target
from localhost.modules.base import MAX_REWRITES
from localhost.server.exchange import Exchange

#: Fields of the original request that a body-less GET does not carry.
_BODY_FIELDS = frozenset({"content-length", "transfer-encoding", "content-type", "expect"})


def redirected(request: Request, target: str) -> tuple[Request, HTTPError | None]:
    """The GET for ``target`` that replaces ``request`` in a local redirect (RFC
    3875 §6.2.2: a CGI's ``Location: /path``): its fields without the body's,
    and the error (a 400) when ``target`` is not a valid origin-form target,
    in which case the request has no path yet."""
    headers = Headers([(n, v) for n, v in request.headers if n not in _BODY_FIELDS])
    new = Request(
        "GET", target, request.version, headers, request.host, request.keep_alive,
        None, False, False,
    )  # fmt: skip
    try:
        new.path, new.query = normalize_target(target)
    except HTTPError as exc:
        return new, exc
    return new, None


def error_page(
    exchange: Exchange, response: Response, bare: bool = False
) -> Response | tuple[Request, str | None]:
    """The response to send for the error ``response`` of ``exchange``, or
    ``(request, named)``: the request to serve in its place (from the start
    of the pipeline, or at the named location ``named``).

    Not again for an error of an error page (``recursive_error_pages off``),
    nor for an answer outside any request (``bare``), nor past the rewrite
    limit. When it returns a request, ``response`` is released and the
    exchange counts one more redirect and is open again (``done`` False).
    """
    request = exchange.request
    if bare or type(request) is ErrorPageRequest or exchange.redirects >= MAX_REWRITES:
        return response
    location = exchange.location
    pages = location.error_pages if location is not None else exchange.server.error_pages
    target = error_target(pages, response.status)
    if target is None:
        return response
    kind = target.kind
    if kind == "file":
        response.status = target.status or 200
        return response
    if kind == "url":
        response.release()
        url = location_value(render(target.template, exchange))
        moved = redirect(url, target.status or 302)
        moved.close = response.close
        return moved
    try:
        redirected = error_page_request(exchange, target, response.status, response.close)
    except HTTPError:
        return response
    response.release()
    exchange.redirects += 1
    exchange.done = False  # the error page's answer is still to come
    return redirected, target.text if kind == "named" else None
