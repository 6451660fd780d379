"""A WSGI application streaming from a generator, for the memory measurement.

``GET /?chunks=N`` answers ``N`` chunks of 64 KiB (``N`` = 1 without a query),
with a Content-Length, pulled one by one from a generator: a server that
pulls faster than its client reads holds the difference in memory.
``bench/run.py --apps`` fetches 800 chunks (50 MiB) with a slow reader and
watches the server's resident memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

CHUNK_SIZE = 65536


def _chunks(count: int) -> Iterator[bytes]:
    # A new bytes object per chunk, as an application reading a file or a
    # database makes: with one shared object, a server that queued every
    # chunk would hold 800 references to the same 64 KiB and look frugal.
    for _ in range(count):
        yield b"s" * CHUNK_SIZE


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """PEP 3333 application: ``chunks`` × 64 KiB of ``application/octet-stream``."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    count = int(query.get("chunks", ["1"])[0])
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(count * CHUNK_SIZE)),
        ],
    )
    return _chunks(count)
