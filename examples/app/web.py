"""A localhost.App: routes with params and wildcards, a streamed response,
static files sent with sendfile, a POST that reads its body as a stream, a
fallback, and the three hooks.

Run it from this folder (either line):

    ../../.venv/bin/python -m localhost web:app --port 8090
    ../../.venv/bin/python web.py

then:

    curl http://127.0.0.1:8090/hello/J%C3%BCrgen              # Hello, Jürgen!
    curl 'http://127.0.0.1:8090/api/v1/books?id=3'             # {"resource": "books", ...}
    curl http://127.0.0.1:8090/static/hello.txt                # a file, with sendfile
    curl -N http://127.0.0.1:8090/countdown/5                  # one line per 0.2 s
    curl --data-binary @web.py http://127.0.0.1:8090/upper     # the body, upper-cased
    printf 'a\nb\n' | curl --data-binary @- http://127.0.0.1:8090/count   # {"bytes": 4, "lines": 2}
    curl -i http://127.0.0.1:8090/admin/stats                  # 401
    curl -H 'X-Token: secret' http://127.0.0.1:8090/admin/stats
    curl --interface 127.0.0.2 http://127.0.0.1:8090/ping      # dropped at accept
    curl -i http://127.0.0.1:8090/nowhere                      # the fallback's 404

BLOCKED_ADDRESSES (comma-separated, default 127.0.0.2) and ADMIN_TOKEN
(default "secret") come from the environment.
"""

from __future__ import annotations

import html
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from localhost import Action, App, Request, Response

STATIC = Path(__file__).resolve().parent / "static"
BLOCKED = frozenset(
    address.strip()
    for address in os.environ.get("BLOCKED_ADDRESSES", "127.0.0.2").split(",")
    if address.strip()
)
ADMIN_TOKEN = os.environ.get("ADMIN_TOKEN", "secret")

app = App()

#: How this worker's connections ended, by teardown reason ("clean" for None).
#: Each worker process counts its own.
endings: Counter[str] = Counter()


@app.route("GET", "/")
def index(req: Request) -> Response:
    links = [
        "/hello/J%C3%BCrgen",
        "/api/v1/books?id=3",
        "/static/hello.txt",
        "/countdown/5",
        "/admin/stats",
        "/nowhere",
    ]
    items = "".join(
        f'<li><a href="{html.escape(link)}">{html.escape(link)}</a></li>' for link in links
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>App example</title>'
        '<link rel="stylesheet" href="/static/style.css"></head>'
        f"<body><h1>A localhost.App</h1><ul>{items}</ul></body></html>"
    )
    return Response(200, {"Content-Type": "text/html; charset=utf-8"}, page)


@app.route("GET", "/hello/:name")
def hello(req: Request, name: str) -> str:
    return f"Hello, {name}!\n"  # name is percent-decoded


@app.route("GET", "/api/v1/*")  # * is exactly one segment: /api/v1/a/b is not routed here
def api(req: Request, resource: str) -> dict[str, object]:
    return {"resource": resource, "args": req.args}  # a dict is sent as JSON


@app.route("GET", "/static/**")  # ** is the rest of the path, any number of segments
def static(req: Request, rest: str) -> Response:
    # Sent with os.sendfile; a path that resolves outside STATIC (a symlink) is a 404.
    return Response.file(STATIC / rest, root=STATIC)


@app.route("GET", "/countdown/:n")
def countdown(req: Request, n: str) -> Response:
    if not n.isdigit() or int(n) > 30:
        return Response(400, body="n is a number up to 30\n")

    def lines() -> Iterator[bytes]:
        for left in range(int(n), 0, -1):
            yield f"{left}\n".encode()
            time.sleep(0.2)  # handlers run in a thread: blocking is fine here
        yield b"liftoff\n"

    return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, lines())


@app.route("POST", "/upper")
def upper(req: Request) -> Response:
    return Response(200, body=req.body().read().upper())


@app.route("POST", "/count")
def count(req: Request) -> dict[str, int]:
    # The body arrives as a stream: read it in pieces, never whole in memory.
    stream = req.body()
    size = newlines = 0
    last = b"\n"
    while piece := stream.read(65536):
        size += len(piece)
        newlines += piece.count(b"\n")
        last = piece[-1:]
    return {"bytes": size, "lines": newlines + (last != b"\n")}


@app.route("GET", "/admin/stats")
def stats(req: Request) -> dict[str, object]:
    return {"pid": os.getpid(), "connections": sum(endings.values()), "endings": dict(endings)}


@app.route("GET", "/ping", inline=True)  # runs on the event loop: it must not block
def ping(req: Request) -> bytes:
    return b"pong\n"


@app.fallback
def missing(req: Request) -> Response:
    return Response(404, {"Content-Type": "text/plain; charset=utf-8"}, f"nothing at {req.path}\n")


@app.connection_setup_hook
def refuse_blocked(peer: tuple[str, int], local: tuple[str, int]) -> Action:
    return Action.DROP if peer[0] in BLOCKED else Action.PROCEED


@app.pre_routing_hook
def admin_token(req: Request) -> Response | None:
    if req.route_path.startswith("/admin/") and req.headers.get("x-token") != ADMIN_TOKEN:
        return Response(401, {"Content-Type": "text/plain; charset=utf-8"}, "X-Token needed\n")
    return None


@app.connection_teardown_hook
def count_connections(peer: tuple[str, int], reason: str | None) -> None:
    endings[reason or "clean"] += 1


if __name__ == "__main__":
    raise SystemExit(app.serve(host="127.0.0.1", port=8090))
