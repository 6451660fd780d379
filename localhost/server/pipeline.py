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

import copy
import logging
from typing import TYPE_CHECKING, Any

from localhost.handlers import session as sessions
from localhost.handlers.base import Answer, Handler, Route
from localhost.handlers.base import route as build_route
from localhost.handlers.error_pages import error_response, prefers_json, refusal_response
from localhost.http.errors import HTTPError
from localhost.modules.base import MAX_REWRITES, Phase, Plan, Rewrite, Step
from localhost.modules.base import plan as build_plan
from localhost.modules.ratelimit import Delay, Delayed

if TYPE_CHECKING:
    from localhost.config.model import Location
    from localhost.handlers.base import Exchange
    from localhost.http.message import Request, Response
    from localhost.routing import Router
    from localhost.services import Services

log = logging.getLogger("localhost")

_LOCATION_PHASES: tuple[Phase, ...] = (Phase.REWRITE, Phase.ACCESS, Phase.PRECONTENT)


class Pipeline:
    """The phases between a parsed head and a handler; one per worker configuration."""

    __slots__ = ("router", "services", "_routes", "_plans", "_server_plans")

    def __init__(self, router: Router, services: Services) -> None:
        self.router = router
        self.services = services
        # id(location) → dispatch; the locations are held by the router's
        # configuration, which lives as long as this pipeline.
        self._routes: dict[int, Route] = {}
        # id(location) → its module steps, id(server) → the block's own; only
        # those that have any (most have none: the lookups are skipped).
        self._plans: dict[int, Plan] = {}
        self._server_plans: dict[int, Plan] = {}
        for server in services.config.servers:
            server_plan = build_plan(server, None)
            if server_plan.phases:
                self._server_plans[id(server)] = server_plan
            for location in server.locations:
                self._routes[id(location)] = build_route(location)
                found = build_plan(server, location)
                if found.phases or found.header_filter is not None:
                    self._plans[id(location)] = found

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
        try:
            return self._start(exchange)
        except HTTPError as exc:
            return Answer(exchange, self.error_response(exchange, exc))
        except Exception:
            request = exchange.request
            log.exception("error starting %s %s", request.method, request.target)
            return Answer(exchange, self.internal_error(exchange))

    def _start(self, exchange: Exchange) -> Handler:
        request = exchange.request
        server = exchange.server
        if self._server_plans:
            server_plan = self._server_plans.get(id(server))
            if server_plan is not None:
                # Server-level rewrite/return: before any location (NGINX).
                found = self._steps(exchange, server_plan.get(Phase.SERVER_REWRITE))
                if found is not None:
                    return found
                exchange.rewritten = False  # the location is chosen below anyway
                request = exchange.request
        # A remembered head comes back with the same path to the same server:
        # the location found last time is still the one (the configuration
        # of a worker never changes).
        located = request.located
        path = request.path
        if located is not None and located[0] is server and located[1] == path:
            location = located[2]
            exchange.captures = located[3]
        else:
            location, exchange.captures = self.router.find(server, path)
            request.located = (server, path, location, exchange.captures)
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
        if self._plans:
            plan = self._plans.get(id(location))
            if plan is not None:
                found = self._location_phases(exchange, plan)
                if found is not None:
                    return found
                location = exchange.location
                request = exchange.request
                if location is None:
                    pages = self.services.error_pages
                    return Answer(exchange, error_response(404, server.error_pages, cache=pages))
        # As _content (inline: one call less per request on the hot path).
        dispatch = self._routes.get(id(location)) or self.route(location)
        candidates = dispatch.table.get(request.method)
        if candidates is None:
            return self._not_allowed(exchange, location, dispatch)
        if location.session:
            exchange.session = sessions.begin(
                self.services.session_store(), request, location, exchange
            )
        for spec in candidates:
            select = spec.select
            if select is None or select(request, location):
                return spec.factory(exchange)
        return self._not_allowed(exchange, location, dispatch)

    def _content(self, exchange: Exchange, location: Location, request: Request) -> Handler:
        """The session and the content handler of ``location`` (405 when none
        answers), for a request that went on after a delay (``resume``)."""
        dispatch = self._routes.get(id(location)) or self.route(location)
        candidates = dispatch.table.get(request.method)
        if candidates is None:
            return self._not_allowed(exchange, location, dispatch)
        if location.session:
            exchange.session = sessions.begin(
                self.services.session_store(), request, location, exchange
            )
        for spec in candidates:
            select = spec.select
            if select is None or select(request, location):
                return spec.factory(exchange)
        return self._not_allowed(exchange, location, dispatch)

    def _location_phases(
        self, exchange: Exchange, plan: Plan, first: int = 0, start: int = 0
    ) -> Handler | None:
        """The location's rewrite, access and try_files steps, in that order
        (from step ``start`` of phase ``_LOCATION_PHASES[first]``: a delayed
        request going on).

        A rewrite that asks for it chooses the location again and starts
        over there (``rewrite`` raises 500 past ``MAX_REWRITES``). Returns
        an answer, or None to go on to the content handler (with
        ``exchange.location`` None: nothing matches, 404).
        """
        phases = _LOCATION_PHASES[first:]
        while True:
            exchange.header_filter = plan.header_filter
            again = False
            for phase in phases:
                found = self._steps(exchange, plan.get(phase), start)
                if found is not None:
                    return found
                start = 0
                if exchange.rewritten:
                    again = True
                    break
            if not again:
                return None
            phases = _LOCATION_PHASES
            exchange.rewritten = False
            location = exchange.location
            if location is None:
                return None
            next_plan = self._plans.get(id(location))
            if next_plan is None:
                exchange.header_filter = None
                return None
            plan = next_plan

    def _steps(self, exchange: Exchange, steps: tuple[Step, ...], start: int = 0) -> Handler | None:
        """Run one phase's ``steps`` (from ``start``): an answer becomes an
        ``Answer`` handler, a rewrite changes the request (see
        ``Rewrite.flag``), a ``Delay`` (``limit_req``) a ``Delayed`` handler
        that goes on with the steps after it once the delay has passed."""
        changed = False
        for step in steps[start:] if start else steps:
            result = step(exchange)
            if result is None:
                continue
            kind = type(result)
            if kind is not Rewrite:
                if kind is Delay:
                    after = steps.index(step, start) + 1
                    return Delayed(exchange, self, result.seconds, steps, after)
                return Answer(exchange, result)
            self.rewrite(exchange, result)
            flag = result.flag
            if flag == "":
                changed = True
                continue
            if flag == "last" or result.named is not None:
                exchange.rewritten = True
            return None
        if changed and exchange.location is not None:
            exchange.rewritten = True  # a rewritten URI looks for its location again
        return None

    def resume(self, exchange: Exchange, steps: tuple[Step, ...], start: int) -> Handler:
        """The handler of a request a step delayed (``Delayed``): the steps of
        its location's phase ``steps`` from ``start``, the later phases, then
        the content handler. Never raises: an error is an ``Answer``."""
        try:
            location = exchange.location
            plan = self._plans.get(id(location)) if location is not None else None
            if plan is not None:
                phases = [plan.get(phase) for phase in _LOCATION_PHASES]
                first = next(n for n, found in enumerate(phases) if found is steps)
                handler = self._location_phases(exchange, plan, first, start)
                if handler is not None:
                    return handler
                location = exchange.location
            if location is None:
                pages = exchange.server.error_pages
                return Answer(exchange, error_response(404, pages, cache=self.services.error_pages))
            return self._content(exchange, location, exchange.request)
        except HTTPError as exc:
            return Answer(exchange, self.error_response(exchange, exc))
        except Exception:
            log.exception("error resuming %s", exchange.request)
            return Answer(exchange, self.internal_error(exchange))

    def rewrite(self, exchange: Exchange, rewrite: Rewrite) -> None:
        """Give ``exchange`` the URI of ``rewrite`` (a new ``Request``: parsed
        heads are shared between requests) and, for ``last`` or a named
        location, the location it now belongs to (None if none).

        Raises ``HTTPError(500)`` past ``MAX_REWRITES`` rewrites (NGINX)."""
        exchange.redirects += 1
        if exchange.redirects > MAX_REWRITES:
            raise HTTPError(500, "rewrite or internal redirection cycle")
        request = exchange.request
        changed = copy.copy(request)
        changed.path = rewrite.path
        if rewrite.query is not None:
            changed.query = rewrite.query
        exchange.request = changed
        server = exchange.server
        if rewrite.named is not None:
            exchange.location = self.router.named(server, rewrite.named)
            exchange.captures = None
        elif rewrite.flag != "break":
            exchange.location, exchange.captures = self.router.find(server, changed.path)

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


class TLSPipeline(Pipeline):
    """The pipeline of TLS connections: ``exchange.scheme`` is ``"https"``, and a
    request whose Host chose a block with another certificate than the one
    the handshake used gets 421 Misdirected Request (RFC 9110 §15.5.20): the
    client reused a connection for a name it was not authenticated for.

    Plain connections never come here, so they pay nothing for the check.
    """

    __slots__ = ()

    def start(self, exchange: Exchange) -> Handler:
        exchange.scheme = "https"
        transport = getattr(getattr(exchange, "_protocol", None), "transport", None)
        used = getattr(transport, "context", None)
        tls = exchange.server.tls
        if used is not None and (tls is None or tls.context is not used):
            response = error_response(
                421, exchange.server.error_pages, cache=self.services.error_pages
            )
            return Answer(exchange, response)
        return super().start(exchange)


class TLSHost:
    """The worker as an HTTP protocol on a TLS connection sees it: the same,
    with ``pipeline`` the worker's ``tls_pipeline`` (read per request, so a
    reload's new pipeline is used)."""

    __slots__ = ("_worker",)

    def __init__(self, worker: Any) -> None:
        self._worker = worker

    # What a protocol reads per request is a property: a name that falls to
    # __getattr__ first fails the normal lookup, which builds an AttributeError.
    @property
    def pipeline(self) -> Pipeline:
        """The worker's ``TLSPipeline``."""
        pipeline: Pipeline = self._worker.tls_pipeline
        return pipeline

    @property
    def router(self) -> Any:
        """The worker's router."""
        return self._worker.router

    @property
    def services(self) -> Any:
        """The worker's services."""
        return self._worker.services

    @property
    def stopping(self) -> bool:
        """Whether the worker is stopping."""
        return bool(self._worker.stopping)

    @property
    def loop(self) -> Any:
        """The worker's event loop."""
        return self._worker.loop

    @property
    def parse_memo(self) -> Any:
        """The worker's memo of parsed request heads."""
        return self._worker.parse_memo

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worker, name)
