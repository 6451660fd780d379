"""Request phases after the head is parsed, as in NGINX.

``check`` runs before any body byte is read (body size within
``body_limit``, location found, method allowed) and returns the error
response or ``None``. ``start`` picks a *streaming* handler that consumes
the body as it arrives and answers through the connection (CGI, uploads);
otherwise the body is discarded and ``handle``, the content phase, returns
the whole response (redirect, session, OPTIONS, static files, DELETE).
Handlers raise ``HTTPError`` for error statuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from localhost.config.model import IMPLEMENTED_METHODS, Location, ServerBlock
from localhost.handlers import cgi, session, static
from localhost.handlers.error_pages import error_response, prefers_json, refusal_response
from localhost.handlers.redirect import redirect
from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response

if TYPE_CHECKING:
    from localhost.server.loop import EventLoop
    from localhost.sessions import SessionStore


class Exchange(Protocol):
    """What a handler sees of the connection its request came on."""

    loop: EventLoop
    peer: tuple[str, int]
    local: tuple[str, int]
    server: ServerBlock
    session: str | None
    extra_headers: list[tuple[str, str]]

    def send(self, response: Response) -> None:
        """Send a whole response."""

    def start_response(self, response: Response, length: int | None) -> None:
        """Send a head whose body follows through ``write``."""

    def write(self, data: bytes) -> bool:
        """Queue body bytes; False asks the producer to pause until ``output_drained``."""

    def finish(self) -> None:
        """End a streamed response."""

    def abort(self) -> None:
        """Drop the connection mid-response."""

    def internal_redirect(self, target: str) -> None:
        """Serve ``target`` as a GET in place of the current request."""

    def session_store(self) -> SessionStore:
        """The worker's session store."""


class Streaming(Protocol):
    """A handler that takes the request body as it arrives."""

    def body_data(self, data: bytes) -> None:
        """A piece of the (decoded) body. May raise ``HTTPError``."""

    def body_end(self) -> None:
        """The body is complete; answer through the exchange. May raise ``HTTPError``."""

    def output_drained(self) -> None:
        """The connection wrote everything queued: a paused producer may go on."""

    def close(self) -> None:
        """The request is over or abandoned: release everything (idempotent)."""


def capable_methods(location: Location) -> set[str]:
    """Methods some handler of ``location`` can answer."""
    if location.redirect is not None or location.cgi:
        return set(IMPLEMENTED_METHODS)
    if location.session_handler:
        return {"GET", "HEAD", "DELETE", "OPTIONS"}
    methods = {"GET", "HEAD", "OPTIONS"}
    if location.root is not None and location.methods is not None:
        # Uploads and DELETE only where `methods` names them explicitly.
        methods |= location.methods & {"POST", "DELETE"}
    return methods


def allow_header(location: Location) -> str:
    """The ``Allow`` value for ``location`` (RFC 9110 §10.2.1): allowed and answerable."""
    return ", ".join(sorted(m for m in capable_methods(location) if location.allows(m)))


def check(request: Request, server: ServerBlock, location: Location | None) -> Response | None:
    """The error response a request gets before its body is read, or ``None``.

    In NGINX's order: 413 when Content-Length exceeds ``body_limit`` (RFC 9110
    §15.5.14; the server's limit when no location matches), 404 without a
    matching location, 405 (with ``Allow``) for a method the location does
    not allow or cannot answer.
    """
    limit = location.body_limit if location is not None else server.body_limit
    if limit and request.content_length is not None and request.content_length > limit:
        return too_large(limit, location or server, request)
    if location is None:
        return error_response(404, server.error_pages)
    method = request.method
    # Every handler answers GET and HEAD: only other methods need the sets.
    needs_check = location.methods is not None or (method != "GET" and method != "HEAD")
    if needs_check and (not location.allows(method) or method not in capable_methods(location)):
        return error_response(405, location.error_pages, [("Allow", allow_header(location))])
    return None


def start(request: Request, location: Location, exchange: Exchange) -> Streaming | None:
    """The streaming handler for ``request``, or ``None`` for the content phase.

    CGI when the path names a script under a ``cgi`` location; an upload for
    POST where uploads are allowed. Raises ``HTTPError``.
    """
    if location.redirect is not None:
        return None
    if location.cgi:
        script = cgi.find_script(request, location)
        if script is not None:
            return cgi.CGIHandler(request, location, exchange, script)
        if request.method == "POST":
            # Never an upload where scripts run: the file could be one.
            raise HTTPError(404, f"no CGI script at {request.path}")
    if request.method == "POST" and location.root is not None:
        from localhost.handlers import upload  # on first use: python-multipart costs 1 MiB

        return upload.UploadHandler(request, location, exchange)
    return None


def handle(request: Request, location: Location, exchange: Exchange) -> Response:
    """The content phase: redirect, session, OPTIONS, DELETE, or a static file or listing.

    Raises ``HTTPError`` with the status to answer.
    """
    if location.redirect is not None:
        return redirect(location.redirect)
    method = request.method
    if method == "OPTIONS":
        return Response(200, [("Allow", allow_header(location))])
    if location.session_handler:
        return session.handle(request, location, exchange, exchange.session_store())
    if method == "GET" or method == "HEAD":
        return static.serve(request, location)
    if method == "DELETE":
        from localhost.handlers import upload

        return upload.delete(request, location)
    raise HTTPError(405, f"{method} has no handler here", [("Allow", allow_header(location))])


def too_large(limit: int, owner: Location | ServerBlock, request: Request) -> Response:
    """413 naming ``limit`` (bytes), the ``body_limit`` of ``owner``."""
    return error_response(
        413,
        owner.error_pages,
        reason=f"the request body is larger than the limit here, {limit} bytes",
        as_json=prefers_json(request.headers.get("accept")),
    )


def error_for(
    exc: HTTPError,
    location: Location | None,
    server: ServerBlock | None,
    request: Request | None = None,
) -> Response:
    """The response for an ``HTTPError`` raised while handling ``request``: the
    reason of a ``Refusal`` shown, as JSON when the client's Accept prefers it."""
    pages = location.error_pages if location is not None else server.error_pages if server else None
    accept = request.headers.get("accept") if request is not None else None
    return refusal_response(exc, pages, accept)
