"""Request phases after the head is parsed, as in NGINX.

``check`` runs before any body byte is read (location found, method allowed,
body size within ``body_limit``) and returns the error response or ``None``;
``handle`` is the content phase that picks the handler for the location.
Handlers share one signature, ``(request, location) -> Response``, and raise
``HTTPError`` for error statuses.
"""

from __future__ import annotations

from localhost.config.model import Location, ServerBlock
from localhost.handlers import static
from localhost.handlers.error_pages import error_response
from localhost.handlers.redirect import redirect
from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response

#: Methods the static handler answers itself.
STATIC_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check(request: Request, server: ServerBlock, location: Location | None) -> Response | None:
    """The error response a request gets before its body is read, or ``None``.

    In NGINX's order: 413 when Content-Length exceeds ``body_limit`` (RFC 9110
    §15.5.14; the server's limit when no location matches), 404 without a
    matching location, 405 (with ``Allow``) for a method the location does
    not allow.
    """
    limit = location.body_limit if location is not None else server.body_limit
    if limit and request.content_length is not None and request.content_length > limit:
        return error_response(413, location.error_pages if location else server.error_pages)
    if location is None:
        return error_response(404, server.error_pages)
    if not location.allows(request.method):
        return error_response(405, location.error_pages, [("Allow", location.allow_header())])
    return None


def handle(request: Request, location: Location) -> Response:
    """The content phase: redirect, OPTIONS, or a static file or listing.

    Raises ``HTTPError`` with the status to answer.
    """
    if location.redirect is not None:
        return redirect(location.redirect)
    method = request.method
    if method == "OPTIONS":
        return Response(200, [("Allow", location.allow_header())])
    if method == "GET" or method == "HEAD":
        return static.serve(request, location)
    allowed = [m for m in location.allow_header().split(", ") if m in STATIC_METHODS]
    raise HTTPError(405, f"{method} has no handler here", [("Allow", ", ".join(allowed))])


def error_for(exc: HTTPError, location: Location | None, server: ServerBlock | None) -> Response:
    """The response for an ``HTTPError`` raised while handling a request."""
    pages = location.error_pages if location is not None else server.error_pages if server else None
    return error_response(exc.status, pages, exc.headers)
