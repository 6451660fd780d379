"""Error responses: the configured ``error_page`` file, else a built-in page.

The configured file is read (at most ``Limits.error_page_max_bytes``) and
kept in the worker's ``Services.error_pages`` until its size or modification
time changes; a missing, unreadable or larger file falls back to the
built-in page. The status code is always the original one.

``error_page`` may also name a URI, a named location, a redirect, or a
new status (``=NEW``); those targets (``ErrorPages.targets``) apply only to
the errors the server itself makes, which are ``ErrorResponse``s (never to
an application's or a CGI script's own 4xx/5xx, as NGINX without
``proxy_intercept_errors``). The protocol asks ``error_target`` for the
status of such a response; a URI or named location is then served as an
``ErrorPageRequest``, whose answer takes the original status (NGINX's
``err_status``) unless ``=`` says otherwise. An error while serving the
error page is not redirected again (NGINX's ``recursive_error_pages off``).

Some refusals have a reason the client should read (a ``Refusal``: "no file
in the upload", "file name ... not allowed"). It is shown HTML-escaped in a
``<p class="reason">``: in the built-in page, and in a configured page where
it holds the comment ``<!--reason-->`` (``REASON_MARK``), else before its
``</body>``, else at its end. A client that prefers JSON (``prefers_json``)
gets ``{"error": REASON, "status": CODE}`` instead of a page.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, cast

from localhost.config.model import ErrorTarget
from localhost.handlers.autoindex import STYLE
from localhost.handlers.smallfiles import SmallFiles, TooLarge
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response
from localhost.http.message import reason as phrase
from localhost.limits import LIMITS

if TYPE_CHECKING:
    from localhost.handlers.base import Exchange
    from localhost.variables import VariableContext

log = logging.getLogger("localhost")

HTML = "text/html; charset=utf-8"
JSON = "application/json"
REASON_MARK = b"<!--reason-->"


class ErrorResponse(Response):
    """A ``Response`` the server made for an error (``error_response``): the
    only kind ``error_page`` URI, named-location, redirect and status targets
    apply to."""

    __slots__ = ()


class ErrorPageRequest(Request):
    """The request an ``error_page`` URI or named location is served with.

    ``status``: the status its answer goes out with (NGINX's ``err_status``:
    the original error's, or ``=NEW``'s; 0 for a bare ``=``, the answer's
    own); ``close``: whether the connection closes after it (as after the
    original error); ``error``: the original status (for the page a failure
    falls back to).
    """

    __slots__ = ("status", "close", "error")

    status: int
    close: bool
    error: int


class Refusal(HTTPError):
    """An ``HTTPError`` with a ``reason`` meant for the client (plain text,
    escaped where it is shown), besides the ``detail`` meant for the log
    (``reason`` when not given)."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str = "",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(status, detail or reason, headers)
        self.reason = reason


def _reason_block(text: str) -> bytes:
    return f'<p class="reason">{html.escape(text)}</p>'.encode()


def builtin_page(status: int, why: str | None = None) -> bytes:
    """A small HTML page naming ``status``, and ``why`` it was refused when given."""
    if why is None:
        made = _BUILTIN.get(status)
        if made is not None:
            return made
    return _make_page(status, why)


def _make_page(status: int, why: str | None) -> bytes:
    title = html.escape(f"{status} {phrase(status)}".strip())
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n{STYLE}</head>\n<body><main><h1>{title}</h1>\n"
    ).encode()
    if why is not None:
        page += _reason_block(why) + b"\n"
    page += b"<hr><p>localhost</p></main></body></html>\n"
    return page


#: The built-in page of every standard error status, made once at import.
_BUILTIN: dict[int, bytes] = {
    status: _make_page(status, None) for status in map(int, HTTPStatus) if 400 <= status <= 599
}


def _with_reason(page: bytes, why: str) -> bytes:
    """``page`` with the reason at its mark, else before ``</body>``, else at the end."""
    block = _reason_block(why)
    if REASON_MARK in page:
        return page.replace(REASON_MARK, block, 1)
    end = page.lower().rfind(b"</body>")
    if end < 0:
        return page + block + b"\n"
    return page[:end] + block + b"\n" + page[end:]


def _quality(accept: str, wanted: str) -> tuple[float, int]:
    """``(q, specificity)`` of media type ``wanted`` in an Accept value (RFC 9110
    §12.5.1): the most specific range that matches decides; specificity is 2
    for ``type/subtype``, 1 for ``type/*``, 0 for ``*/*``, -1 for no match."""
    kind = wanted.split("/", 1)[0] + "/*"
    best = (0.0, -1)
    for item in accept.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        specificity = 2 if media == wanted else 1 if media == kind else 0 if media == "*/*" else -1
        if specificity <= best[1]:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = (q, specificity)
    return best


def prefers_json(accept: str | None) -> bool:
    """Whether an Accept value asks for ``application/json`` rather than
    ``text/html``: JSON named (or ``application/*``) with a higher quality,
    or an equal quality and a more specific range. ``*/*`` alone is HTML."""
    if not accept:
        return False
    q_json, s_json = _quality(accept, JSON)
    q_html, s_html = _quality(accept, "text/html")
    return s_json >= 1 and q_json > 0 and (q_json, s_json) > (q_html, s_html)


def prefers_html(accept: str | None) -> bool:
    """Whether an Accept value names ``text/html`` itself with a quality at least
    that of JSON: what a browser sends when it navigates (a form submission),
    and not what API clients send (``*/*``, JSON, or no Accept at all)."""
    if not accept:
        return False
    q_html, s_html = _quality(accept, "text/html")
    return s_html == 2 and q_html > 0 and not prefers_json(accept)


def _configured_page(path: Path, cache: SmallFiles | None) -> bytes | None:
    if cache is None:
        cache = SmallFiles(LIMITS.error_page_max_bytes)
    try:
        return cache.read(path)
    except TooLarge:
        log.warning(
            "error_page %s is larger than %d bytes; using the built-in page",
            path,
            cache.max_bytes,
        )
    except OSError as exc:
        log.warning(
            "error_page %s cannot be read (%s); using the built-in page", path, exc.strerror
        )
    return None


def error_response(
    status: int,
    pages: Mapping[int, Path] | None = None,
    headers: list[tuple[str, str]] | None = None,
    *,
    reason: str | None = None,
    as_json: bool = False,
    cache: SmallFiles | None = None,
) -> Response:
    """A ``status`` response whose body is the configured page or the built-in one.

    ``cache`` keeps configured pages read (the worker's
    ``Services.error_pages``; None: read the file without keeping it).
    ``headers`` are added (e.g. ``Allow`` for 405). ``reason`` is shown to
    the client (escaped); ``as_json`` gives ``{"error": ..., "status": ...}``
    instead of a page (the status's reason phrase when ``reason`` is not
    given). Whether the connection closes after it is the connection's
    decision (by where the error came from), not the status's.
    """
    if as_json:
        message = reason if reason is not None else phrase(status)
        body = json.dumps({"error": message, "status": status}, ensure_ascii=False).encode() + b"\n"
        fields = [("Content-Type", JSON)]
    else:
        page = None
        if pages:
            path = pages.get(status)
            if path is not None:
                page = _configured_page(path, cache)
        if page is None:
            body = builtin_page(status, reason)
        else:
            body = page if reason is None else _with_reason(page, reason)
        fields = [("Content-Type", HTML)]
    if headers:
        fields.extend(headers)
    return ErrorResponse(status, fields, body)


def refusal_response(
    exc: HTTPError,
    pages: Mapping[int, Path] | None,
    accept: str | None,
    cache: SmallFiles | None = None,
) -> Response:
    """The error response for ``exc`` to a client that sent ``accept``: with the
    reason of a ``Refusal``, as JSON when the client prefers it (``cache``: see
    ``error_response``)."""
    why = exc.reason if isinstance(exc, Refusal) else None
    return error_response(
        exc.status, pages, exc.headers, reason=why, as_json=prefers_json(accept), cache=cache
    )


# -- error_page targets other than a file ----------------------------------------

#: Fields the request served as an error page drops: it has no body, and
#: answers in full (a 304 or 206 would lose the page).
_NOT_CARRIED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "content-type",
        "expect",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
    }
)


def error_target(pages: Mapping[int, Path], status: int) -> ErrorTarget | None:
    """The ``error_page`` target of ``status`` in ``pages`` (a level's
    ``error_pages``) that is more than a file, or None."""
    targets: Mapping[int, ErrorTarget] | None = getattr(pages, "targets", None)
    return targets.get(status) if targets else None


def clean_path(path: str) -> str:
    """``path`` (decoded) with ``.``, ``..`` and empty segments resolved, as the
    request path is; a trailing slash is kept. Raises ``HTTPError(400)`` for
    a path that climbs above ``/`` (it comes from request data: ``$arg_x``)."""
    if path[:1] != "/":
        path = "/" + path
    if "/." not in path and "//" not in path:
        return path
    segments: list[str] = []
    parts = path.split("/")
    for segment in parts[1:]:
        if segment == "..":
            if not segments:
                raise HTTPError(400, f"{path} goes above the root")
            segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = parts[-1] in ("", ".", "..") and bool(segments)
    return "/" + "/".join(segments) + ("/" if trailing else "")


def error_page_request(
    exchange: Exchange, target: ErrorTarget, status: int, close: bool
) -> ErrorPageRequest:
    """The request serving the error ``status`` of ``exchange`` at ``target``
    (kind ``uri`` or ``named``), as NGINX's ``ngx_http_send_error_page``: a URI
    is requested with GET (HEAD stays HEAD), its own query (none without
    ``?``); a named location keeps the method and URI. The body is not
    carried over, nor conditional or range fields. ``close`` is kept for the
    answer. Raises ``HTTPError(400)`` when a rendered URI climbs above ``/``.
    """
    request = exchange.request
    if target.kind == "named":
        method, path, query, shown = request.method, request.path, request.query, request.target
    else:
        shown = target.template.render(cast("VariableContext", exchange))
        raw_path, _, query = shown.partition("?")
        path = clean_path(raw_path)
        method = "HEAD" if request.method == "HEAD" else "GET"
    headers = Headers([(n, v) for n, v in request.headers if n not in _NOT_CARRIED])
    redirected = ErrorPageRequest(
        method, shown, request.version, headers, request.host, request.keep_alive,
        None, False, False,
    )  # fmt: skip
    redirected.path, redirected.query = path, query
    redirected.status = status if target.status is None else target.status
    redirected.close = close
    redirected.error = status
    return redirected


def error_page_answer(
    request: ErrorPageRequest, response: Response, cache: SmallFiles | None = None
) -> Response:
    """The answer to an error-page ``request`` as it goes out: with the
    request's status (unless a bare ``=`` left the answer's own) and its
    ``close``. When the error page itself failed (an ``ErrorResponse``), the
    built-in page of that status instead, so that page and status agree."""
    status = request.status
    if status and response.status != status:
        if type(response) is ErrorResponse:
            # The page failed: the built-in page of the error being answered
            # (of the original one when "=NEW" asked for a success).
            response.release()
            response = error_response(status if status >= 400 else request.error, cache=cache)
        else:
            response.status = status
    if request.close:
        response.close = True
    return response
