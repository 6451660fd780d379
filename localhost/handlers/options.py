"""``OPTIONS`` on a path: 200 with ``Allow`` (RFC 9110 §9.3.7), everywhere."""

from __future__ import annotations

from localhost.config.model import Location
from localhost.handlers.base import Exchange, HandlerSpec, allow_header, function_handler
from localhost.http.message import Response

_OPTIONS = frozenset({"OPTIONS"})


def _answer(exchange: Exchange) -> Response:
    location = exchange.location
    assert location is not None
    return Response(200, [("Allow", allow_header(location))])


def _methods(_location: Location) -> frozenset[str]:
    return _OPTIONS


SPEC = HandlerSpec(
    "options", _methods, function_handler(_answer, name="OptionsHandler"), priority=300
)
