"""Sessions for locations with ``session on``, and the ``/session`` handler.

``begin`` runs for every request to such a location: a valid
``LOCALHOST_SESSION`` cookie names the session; without one (or with an
unknown, expired or forged id) a new session is created and its cookie set.
A location with ``session on`` and no ``root`` is a session handler: GET
shows the session as JSON and counts the visit; DELETE ends it.
"""

from __future__ import annotations

import json
import time
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from localhost.config.model import Location
from localhost.handlers.base import Exchange, HandlerSpec, function_handler
from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response
from localhost.sessions import StoreUnavailable

if TYPE_CHECKING:
    from localhost.sessions import Store

COOKIE = "LOCALHOST_SESSION"
#: Seconds a client is told to wait when the session store is down (Retry-After).
RETRY_AFTER = "1"


def unavailable(exc: StoreUnavailable) -> HTTPError:
    """The 503 of a session location whose store cannot answer (RFC 9110 §15.6.4)."""
    return HTTPError(503, str(exc), [("Retry-After", RETRY_AFTER)])


def cookie_value(request: Request) -> str | None:
    """The session cookie sent with ``request``; malformed Cookie fields are ignored."""
    header = request.headers.get("cookie")
    if not header or COOKIE not in header:
        return None
    for field in request.headers.get_all("cookie"):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(field)
        except (CookieError, ValueError):
            continue
        morsel = jar.get(COOKIE)
        if morsel is not None:
            return morsel.value
    return None


def set_cookie(session_id: str, max_age: int) -> str:
    """A ``Set-Cookie`` value for the session cookie (``max_age`` 0 expires it)."""
    jar: SimpleCookie = SimpleCookie()
    jar[COOKIE] = session_id
    morsel = jar[COOKIE]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    morsel["max-age"] = max_age
    return morsel.OutputString()


def begin(store: Store, request: Request, location: Location, exchange: Exchange) -> str | None:
    """The id of the request's session, creating one (and its cookie) when needed.

    A DELETE to the session handler never creates a session. Raises
    ``HTTPError(503)`` when the store cannot answer (Redis down).
    """
    try:
        return _begin(store, request, location, exchange)
    except StoreUnavailable as exc:
        raise unavailable(exc) from None


def _begin(store: Store, request: Request, location: Location, exchange: Exchange) -> str | None:
    sent = cookie_value(request)
    if sent is not None and store.get(sent) is not None:
        return sent
    if request.method == "DELETE" and location.session_handler:
        return None
    session = store.create()
    exchange.extra_headers.append(("Set-Cookie", set_cookie(session.id, int(store.timeout))))
    return session.id


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def handle(exchange: Exchange) -> Response:
    """GET/HEAD: the session as JSON, counting the visit; DELETE: end it (204).

    Raises ``HTTPError(405)`` for other methods, ``HTTPError(503)`` when the
    store cannot answer.
    """
    try:
        return _handle(exchange)
    except StoreUnavailable as exc:
        raise unavailable(exc) from None


def _handle(exchange: Exchange) -> Response:
    request = exchange.request
    store = exchange.services.session_store()
    session_id = exchange.session
    if request.method == "DELETE":
        if session_id is not None:
            store.delete(session_id)
        return Response(204, [("Set-Cookie", set_cookie("", 0))])
    if request.method not in ("GET", "HEAD"):
        raise HTTPError(405, "session handler", [("Allow", "DELETE, GET, HEAD, OPTIONS")])
    session = store.get(session_id) if session_id is not None else None
    if session is None:
        raise HTTPError(500, "session vanished")
    session.data["visits"] = int(session.data.get("visits", 0)) + 1
    store.save(session)
    body = json.dumps(
        {
            "id": session.id[:8] + "…",
            "created": _iso(session.created),
            "last_seen": _iso(session.last_seen),
            "visits": session.data["visits"],
        },
        ensure_ascii=False,
    ).encode()
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    return Response(200, headers, body + b"\n")


_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def _is_handler(location: Location) -> bool:
    return location.session_handler


def _methods(location: Location) -> frozenset[str]:
    return _METHODS if location.session_handler else frozenset()


#: ``session on`` without a root: the session handler answers the location
#: (OPTIONS, asked before it, still answers with Allow).
SPEC = HandlerSpec(
    "session",
    _methods,
    function_handler(handle, name="SessionHandler"),
    priority=400,
    exclusive=_is_handler,
)
