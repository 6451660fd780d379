"""A small application wrapped in ``wsgiref.validate.validator``: any breach
of PEP 3333 by the server raises ``AssertionError`` or warns ``WSGIWarning``
into the error log."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

StartResponse = Callable[..., Callable[[bytes], None]]


def _plain(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ["PATH_INFO"]
    if method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        line = environ["wsgi.input"].readline()  # at the end: b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"posted ", body, line]
    if path == "/stream":

        def chunks() -> Iterator[bytes]:
            yield b"streamed "
            yield b"body"

        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    environ["wsgi.errors"].write("")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return [b"validated ok"]


application = validator(_plain)
