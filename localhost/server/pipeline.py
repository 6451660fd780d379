"""The request pipeline: NGINX's phases for one request, in one place.

For a request whose head is parsed (target normalised, server block chosen
by the protocol from the local address and Host), ``Pipeline.start`` runs:

1. *find location* (NGINX's order: exact, longest prefix, regexes;
   ``Router.find``, which also gives a regex's captures);
2. *checks*, in NGINX's order: 413 when Content-Length exceeds
   ``body_limit`` (RFC 9110 §15.5.14; the server's limit when no location
   matches), 404 without a location, 405 with ``Allow`` (RFC 9110 §15.5.6)
   for a method the location does not allow or no handler answers there;
3. *session*: for a location with ``session on``, the request's session (a
   new one and its ``Set-Cookie`` when needed);
4. *content*: the first handler of the registry that answers the method in
   this location and selects the request.

It returns the handler object; errors decided here come back as a handler
too (``Answer``). The pipeline knows handlers only through the registry
(``localhost.handlers.base``): which methods each answers in a location is
computed once per location, so a request costs one dictionary lookup.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from localhost.handlers import session as sessions
from localhost.handlers.base import Answer, Handler, Route
from localhost.handlers.base import route as build_route
from localhost.handlers.error_pages import error_response, prefers_json, refusal_response
from localhost.http.errors import HTTPError

if TYPE_CHECKING:
    from localhost.config.model import Location
    from localhost.handlers.base import Exchange
    from localhost.http.message import Response
    from localhost.routing import Router
    from localhost.services import Services

log = logging.getLogger("localhost")


class Pipeline:
    """The phases between a parsed head and a handler; one per worker configuration."""

    __slots__ = ("router", "services", "_routes")

    def __init__(self, router: Router, services: Services) -> None:
        self.router = router
        self.services = services
        # id(location) → dispatch; the locations are held by the router's
        # configuration, which lives as long as this pipeline.
        self._routes: dict[int, Route] = {}
        for server in services.config.servers:
            for location in server.locations:
                self._routes[id(location)] = build_route(location)

    def route(self, location: Location) -> Route:
        """The dispatch of ``location`` (computed on first use for a location
        outside the configuration, e.g. in tests)."""
        found = self._routes.get(id(location))
        if found is None:
            found = self._routes[id(location)] = build_route(location)
        return found

    def start(self, exchange: Exchange) -> Handler:
        """The handler for ``exchange.request``; sets ``exchange.location`` and
        ``exchange.session``. Never raises: an error is an ``Answer`` handler."""
        request = exchange.request
        server = exchange.server
        location, exchange.captures = self.router.find(server, request.path)
        if location is not None and location.internal and not exchange.redirects:
            location = None  # reached only by an internal redirect (NGINX: 404)
        exchange.location = location
        length = request.content_length
        if location is None:
            limit = server.body_limit
            if limit and length is not None and length > limit:
                return Answer(exchange, self.too_large(exchange))
            pages = self.services.error_pages
            return Answer(exchange, error_response(404, server.error_pages, cache=pages))
        limit = location.body_limit
        if limit and length is not None and length > limit:
            return Answer(exchange, self.too_large(exchange))
        dispatch = self._routes.get(id(location)) or self.route(location)
        candidates = dispatch.table.get(request.method)
        if candidates is None:
            return self._not_allowed(exchange, location, dispatch)
        try:
            if location.session:
                exchange.session = sessions.begin(
                    self.services.session_store(), request, location, exchange
                )
            for spec in candidates:
                select = spec.select
                if select is None or select(request, location):
                    return spec.factory(exchange)
        except HTTPError as exc:
            return Answer(exchange, self.error_response(exchange, exc))
        except Exception:
            log.exception("error starting %s %s", request.method, request.target)
            return Answer(exchange, self.internal_error(exchange))
        return self._not_allowed(exchange, location, dispatch)

    def _not_allowed(self, exchange: Exchange, location: Location, dispatch: Route) -> Handler:
        response = error_response(
            405, location.error_pages, [("Allow", dispatch.allow)], cache=self.services.error_pages
        )
        return Answer(exchange, response)

    def error_response(self, exchange: Exchange, exc: HTTPError) -> Response:
        """The answer to ``exc`` raised while handling a well-framed request.

        The location's (else the server's) ``error_page``, with the reason of
        a ``Refusal`` shown, as JSON when the client's Accept prefers it. A 500
        closes the connection (``response.close``), as NGINX does; other
        statuses leave that to the protocol.
        """
        location = exchange.location
        pages = location.error_pages if location is not None else exchange.server.error_pages
        accept = exchange.request.headers.get("accept")
        response = refusal_response(exc, pages, accept, self.services.error_pages)
        response.close = exc.status == 500
        return response

    def internal_error(self, exchange: Exchange) -> Response:
        """A 500 for a failed handler; it closes the connection (as NGINX does)."""
        location = exchange.location
        pages = location.error_pages if location is not None else exchange.server.error_pages
        response = error_response(500, pages, cache=self.services.error_pages)
        response.close = True
        return response

    @staticmethod
    def body_limit(exchange: Exchange) -> int:
        """The body limit in bytes for the request (location's, else server's); 0 = none."""
        location = exchange.location
        return location.body_limit if location is not None else exchange.server.body_limit

    def too_large(self, exchange: Exchange) -> Response:
        """413 naming the ``body_limit`` in bytes; it closes the connection
        (the rest of the body is left unread)."""
        location = exchange.location
        owner = location if location is not None else exchange.server
        response = error_response(
            413,
            owner.error_pages,
            reason=f"the request body is larger than the limit here, {owner.body_limit} bytes",
            as_json=prefers_json(exchange.request.headers.get("accept")),
            cache=self.services.error_pages,
        )
        response.close = True
        return response
