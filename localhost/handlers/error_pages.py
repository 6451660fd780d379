"""Error responses: the configured ``error_page`` file, else a built-in page.

The configured file is read (at most ``MAX_PAGE`` bytes) and cached until its
size or modification time changes; a missing or unreadable file falls back
to the built-in page. The status code is always the original one.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from localhost.http.message import Response, reason

log = logging.getLogger("localhost")

MAX_PAGE = 1024 * 1024  # bytes
HTML = "text/html; charset=utf-8"

# Statuses after which the connection is closed, as NGINX does: the framing
# of what follows can no longer be trusted.
CLOSING_STATUSES = frozenset({400, 408, 413, 414, 431, 500, 501, 505})

_cache: dict[Path, tuple[int, int, bytes]] = {}


def builtin_page(status: int) -> bytes:
    """A small HTML page naming ``status``."""
    title = html.escape(f"{status} {reason(status)}".strip())
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body><h1>{title}</h1>\n"
        "<hr><p>localhost</p></body></html>\n"
    ).encode()


def _configured_page(path: Path) -> bytes | None:
    try:
        st = os.stat(path)
        cached = _cache.get(path)
        if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        if st.st_size > MAX_PAGE:
            log.warning(
                "error_page %s is larger than %d bytes; using the built-in page", path, MAX_PAGE
            )
            return None
        with open(path, "rb") as f:
            body = f.read(MAX_PAGE)
    except OSError as exc:
        log.warning(
            "error_page %s cannot be read (%s); using the built-in page", path, exc.strerror
        )
        return None
    _cache[path] = (st.st_size, st.st_mtime_ns, body)
    return body


def error_response(
    status: int,
    pages: Mapping[int, Path] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """A ``status`` response whose body is the configured page or the built-in one.

    ``headers`` are added (e.g. ``Allow`` for 405). Statuses in
    ``CLOSING_STATUSES`` ask for the connection to close.
    """
    body = None
    if pages:
        path = pages.get(status)
        if path is not None:
            body = _configured_page(path)
    if body is None:
        body = builtin_page(status)
    fields = [("Content-Type", HTML)]
    if headers:
        fields.extend(headers)
    return Response(status, fields, body, close=status in CLOSING_STATUSES)
