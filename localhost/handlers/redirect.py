"""``redirect URL``: answer 301 with ``Location`` (RFC 9110 §15.4.2)."""

from __future__ import annotations

import html

from localhost.http.message import Response


def redirect(url: str, status: int = 301) -> Response:
    """A ``status`` redirect to ``url``, with a short HTML body linking to it."""
    link = html.escape(url, quote=True)
    body = (
        f"<!DOCTYPE html>\n<html><head><title>Moved</title></head>\n"
        f'<body><h1>Moved</h1><p><a href="{link}">{link}</a></p></body></html>\n'
    ).encode()
    return Response(status, [("Location", url), ("Content-Type", "text/html; charset=utf-8")], body)
