"""The App API "hello" of the applications benchmark: a 1 KiB text body at ``/``.

Served from this folder with ``python -m localhost hello_app:app --host 127.0.0.1
--port PORT -w 1 --no-access-log``; the route is ``inline``, so it runs on the
event loop.
"""

from __future__ import annotations

from localhost import App, Request, Response

app = App()
BODY = b"x" * 1024


@app.route("GET", "/", inline=True)
def hello(req: Request) -> Response:
    """``200`` with ``BODY`` (1024 bytes of ``text/plain``)."""
    return Response(200, {"content-type": "text/plain"}, BODY)
