"""A WSGI application for the end-to-end tests: one behaviour per path.

Paths that take files (markers, releases) get them in the query string
(``?marker=/tmp/...``); the tests make them under their own temporary folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Callable[[bytes], None]]
TEXT = [("Content-Type", "text/plain")]
BLOCK = b"x" * 65536
#: Seconds an app waits for a release file before giving up (a test failed).
RELEASE_LIMIT = 30.0


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}


def _touch(path: str, text: str = "") -> None:
    with open(path, "a") as file:
        file.write(text)


def _wait_for_file(path: str) -> None:
    deadline = time.monotonic() + RELEASE_LIMIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


class Closing:
    """A body iterable whose ``close`` leaves a marker file; endless unless ``count``."""

    def __init__(self, marker: str, count: int = -1) -> None:
        self.marker = marker
        self.count = count

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent != self.count:
            sent += 1
            yield BLOCK

    def close(self) -> None:
        _touch(self.marker, "closed")


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    handler = env if path.startswith("/env") else ROUTES.get(path)
    if handler is None:
        start_response("404 Not Found", TEXT)
        return [b"no such probe: " + path.encode("latin-1")]
    return handler(environ, start_response)


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return [b"hello ", b"from ", b"wsgi"]


def gen(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)

    def body() -> Iterator[bytes]:
        yield b"one,"
        yield b""
        yield b"two,"
        yield b"three"

    return body()


def cl_long(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "5")])
    return [b"0123456789"]


def cl_long_gen(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    marker = _query(environ).get("marker")
    start_response("200 OK", [*TEXT, ("Content-Length", "5")])
    if marker:
        # An endless body: the server stops pulling at the length and closes it.
        return Closing(marker)

    def body() -> Iterator[bytes]:
        yield b"012"
        yield b"3456789"

    return body()


def cl_short(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "10")])
    return [b"01234"]


def cl_short_gen(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "10")])

    def body() -> Iterator[bytes]:
        yield b"012"
        yield b"34"

    return body()


def sized(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "1000")])
    if _query(environ).get("stream"):
        return iter([b"a" * 500, b"b" * 500])
    return [b"a" * 1000]


def status(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    code = _query(environ)["code"]
    start_response(f"{code} Whatever", [("ETag", '"v1"'), ("X-Probe", "status")])
    if _query(environ).get("stream"):
        return iter([b"must not be sent"])
    return [b"must not be sent"]


def write_callable(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", TEXT)
    write(b"written-1,")
    write(b"")
    write(b"written-2,")
    return [b"returned"]


def late_start(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    def body() -> Iterator[bytes]:
        start_response("201 Created", [*TEXT, ("X-Late", "yes")])
        yield b"started "
        yield b"in the first iteration"

    return body()


def exc_before(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("X-First", "1")])
    try:
        raise ValueError("the view failed")
    except ValueError:
        start_response("500 Handled", [*TEXT, ("X-Second", "1")], sys.exc_info())
    return [b"handled by the app"]


def exc_after(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    def body() -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"first part,"
        try:
            raise KeyError("exc-after-probe")
        except KeyError:
            start_response("500 Too Late", TEXT, sys.exc_info())
        yield b"never"

    return body()


def second_start(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    start_response("200 OK", TEXT)
    return [b"never"]


def hop(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("Connection", "close")])
    return [b"never"]


def bad_status(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("OK", TEXT)
    return [b"never"]


def str_body(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    if _query(environ).get("stream"):
        return iter(["text, not bytes"])  # type: ignore[list-item]
    return ["text, not bytes"]  # type: ignore[list-item]


def boom(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("probe failure in the application")


def exit_(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    sys.exit(3)


def env(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    shown = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int))}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    shown["has.file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(shown).encode()]


def errors(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.errors"]
    stream.write("probe error line one\nprobe error ")
    stream.write("line two\n")
    stream.writelines(["probe error line three\n"])
    stream.flush()
    start_response("200 OK", TEXT)
    return [b"logged"]


def read_input(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body the way ``?how=`` says; answers what it got as JSON."""
    stream = environ["wsgi.input"]
    how = _query(environ).get("how", "all")
    got: list[str] = []
    if how == "all":
        got.append(stream.read().decode("latin-1"))
    elif how == "none":
        got.append(stream.read(None).decode("latin-1"))
    elif how.startswith("n"):
        size = int(how[1:])
        while True:
            piece = stream.read(size)
            got.append(piece.decode("latin-1"))
            if not piece:
                break
    elif how == "line":
        while True:
            line = stream.readline()
            got.append(line.decode("latin-1"))
            if not line:
                break
    elif how.startswith("line") and how[4:].isdigit():
        size = int(how[4:])
        while True:
            line = stream.readline(size)
            got.append(line.decode("latin-1"))
            if not line:
                break
    elif how == "lines":
        got = [line.decode("latin-1") for line in stream.readlines()]
    elif how == "iter":
        got = [line.decode("latin-1") for line in stream]
    answer = {
        "got": got,
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


def digest(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body in 64 KiB blocks, pausing ``?pause=`` ms between them: its sha256."""
    stream = environ["wsgi.input"]
    pause = float(_query(environ).get("pause", "0")) / 1000
    hasher = hashlib.sha256()
    size = 0
    while True:
        block = stream.read(65536)
        if not block:
            break
        hasher.update(block)
        size += len(block)
        if pause:
            time.sleep(pause)
    start_response("200 OK", TEXT)
    return [f"{size} {hasher.hexdigest()}".encode()]


def consume(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body; leaves ``?marker=`` with what happened (``done N`` or the error)."""
    marker = _query(environ)["marker"]
    size = 0
    try:
        while True:
            block = environ["wsgi.input"].read(65536)
            if not block:
                break
            size += len(block)
    except OSError as exc:
        _touch(marker, f"{type(exc).__name__} after {size}")
        raise
    _touch(marker, f"done {size}")
    start_response("200 OK", TEXT)
    return [str(size).encode()]


class NoRead(io.FileIO):
    """A real file whose ``read`` lies: only a server that sends the
    descriptor itself (``os.sendfile``) sends its true bytes."""

    def read(self, size: int | None = -1) -> bytes:
        return b"read() was called"

    def readinto(self, buffer: Any) -> int:
        raise OSError("readinto() was called")


def file(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = _query(environ)
    handle = NoRead(query["path"], "rb") if "trap" in query else open(query["path"], "rb")  # noqa: SIM115
    if "skip" in query:
        handle.seek(int(query["skip"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in query:
        headers.append(("Content-Length", query["length"]))
    start_response("200 OK", headers)
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](handle, 65536)
    return wrapper


def stream(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``?mib=`` MiB in 64 KiB blocks, no Content-Length (or with ``&length=1``)."""
    query = _query(environ)
    count = int(query["mib"]) * 16
    headers = list(TEXT)
    if query.get("length"):
        headers.append(("Content-Length", str(count * len(BLOCK))))
    start_response("200 OK", headers)
    # A new object per block: a server that queued them all would hold them all.
    return (b"x" * len(BLOCK) for _ in range(count))


def forever(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return Closing(_query(environ)["marker"])


def blocking(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Leaves ``?started=`` (appending ``?id=``), then waits for ``?release=`` to exist."""
    query = _query(environ)
    _touch(query["started"], query.get("id", "") + "\n")
    _wait_for_file(query["release"])
    start_response("200 OK", TEXT)
    return [f"released {query.get('id', '')}".encode()]


def version(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("X-Pid", str(os.getpid()))])
    return [b"probe"]


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "/hello": hello,
    "/gen": gen,
    "/cl-long": cl_long,
    "/cl-long-gen": cl_long_gen,
    "/cl-short": cl_short,
    "/cl-short-gen": cl_short_gen,
    "/sized": sized,
    "/status": status,
    "/write": write_callable,
    "/late-start": late_start,
    "/exc-before": exc_before,
    "/exc-after": exc_after,
    "/second-start": second_start,
    "/hop": hop,
    "/bad-status": bad_status,
    "/str-body": str_body,
    "/boom": boom,
    "/exit": exit_,
    "/env": env,
    "/errors": errors,
    "/input": read_input,
    "/digest": digest,
    "/consume": consume,
    "/file": file,
    "/stream": stream,
    "/forever": forever,
    "/blocking": blocking,
    "/version": version,
}

#: Not callable: the configuration check refuses it.
not_callable = 42
