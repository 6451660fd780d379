"""The pieces of ``localhost.app`` that carry a request between the loop and
application threads: ``BodyStream`` (``wsgi.input``), the head checks, file
regions and the bounded ``ThreadPool``. No sockets: a fake loop records what
a thread asks it to run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localhost.app.pool import ThreadPool
from localhost.app.runner import (
    BODY_WINDOW,
    EMPTY_BODY,
    AppError,
    BodyStream,
    ClientGone,
    app_head,
    file_body,
    head_fields,
)
from localhost.app.wsgi import status_code
from localhost.limits import LIMITS
from tests.proc import wait_for

BODY = b"first line\nsecond line\n\nlast without newline"


class FakeLoop:
    """Records callbacks queued from any thread; ``run`` runs them."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], None]] = []
        self.lock = threading.Lock()

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        with self.lock:
            self.queued.append(callback)

    def run(self) -> int:
        with self.lock:
            callbacks, self.queued = self.queued, []
        for callback in callbacks:
            callback()
        return len(callbacks)


@pytest.fixture
def resumed() -> list[int]:
    return []


def stream_of(loop: FakeLoop, resumed: list[int]) -> BodyStream:
    return BodyStream(loop, lambda: resumed.append(1))  # type: ignore[arg-type]


def fed(pieces: list[bytes]) -> BodyStream:
    stream = stream_of(FakeLoop(), [])
    for piece in pieces:
        stream.feed(piece)
    stream.end()
    return stream


def cuts() -> Iterator[list[bytes]]:
    yield [BODY]
    yield [bytes([b]) for b in BODY]  # byte by byte
    yield [BODY[:5], BODY[5:11], b"", BODY[11:12], BODY[12:30], BODY[30:]]


CUTS = list(cuts())
IDS = ["whole", "bytewise", "ragged"]


def test_the_window_is_the_documented_256_kib() -> None:
    # README: the client is paused while more than 256 KiB wait for the application.
    assert BODY_WINDOW == 256 * 1024 == LIMITS.app_body_window_bytes


@pytest.mark.parametrize("pieces", CUTS, ids=IDS)
def test_read_all(pieces: list[bytes]) -> None:
    stream = fed(pieces)
    assert stream.read() == BODY
    assert stream.read() == b""
    assert fed(pieces).read(None) == BODY


@pytest.mark.parametrize("pieces", CUTS, ids=IDS)
@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_read_n_gives_n_until_the_end(pieces: list[bytes], size: int) -> None:
    stream = fed(pieces)
    got = []
    while True:
        data = stream.read(size)
        if not data:
            break
        got.append(data)
    assert b"".join(got) == BODY
    assert all(len(piece) == size for piece in got[:-1])
    assert 0 < len(got[-1]) <= size
    assert stream.read(0) == b""


@pytest.mark.parametrize("pieces", CUTS, ids=IDS)
def test_readline_across_pieces(pieces: list[bytes]) -> None:
    stream = fed(pieces)
    assert [stream.readline() for _ in range(5)] == [
        b"first line\n",
        b"second line\n",
        b"\n",
        b"last without newline",
        b"",
    ]


@pytest.mark.parametrize("pieces", CUTS, ids=IDS)
def test_readline_with_a_size(pieces: list[bytes]) -> None:
    stream = fed(pieces)
    assert stream.readline(4) == b"firs"
    assert stream.readline(100) == b"t line\n"
    assert stream.readline(0) == b""
    assert stream.readline(12) == b"second line\n"


@pytest.mark.parametrize("pieces", CUTS, ids=IDS)
def test_readlines_and_iteration(pieces: list[bytes]) -> None:
    lines = BODY.splitlines(keepends=True)
    assert fed(pieces).readlines() == lines
    assert list(fed(pieces)) == lines
    assert fed(pieces).readlines(12) == lines[:2]  # stops once the hint is reached


def test_a_reader_waits_for_data_and_the_end() -> None:
    loop = FakeLoop()
    stream = stream_of(loop, [])
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.read()))
    reader.start()
    stream.feed(b"abc")
    stream.feed(b"def")
    assert reader.is_alive()  # read() wants the end of the body
    stream.end()
    reader.join(5)
    assert got == [b"abcdef"]


def test_abort_wakes_a_waiting_reader_with_client_gone() -> None:
    stream = stream_of(FakeLoop(), [])
    errors: list[BaseException] = []

    def read() -> None:
        try:
            stream.read(10)
        except ClientGone as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    stream.feed(b"abc")  # fewer than asked: the reader waits on
    assert wait_for(lambda: not stream._chunks)
    stream.abort()
    reader.join(5)
    assert not reader.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    with pytest.raises(ClientGone):
        stream.readline()


def test_abort_after_the_end_leaves_the_body_readable() -> None:
    stream = fed([b"done\n"])
    stream.abort()
    assert stream.readline() == b"done\n"


def test_feed_asks_for_a_pause_above_the_window_and_resumes_once_drained(
    resumed: list[int],
) -> None:
    loop = FakeLoop()
    stream = stream_of(loop, resumed)
    piece = b"z" * 65536
    answers = [stream.feed(piece) for _ in range(BODY_WINDOW // len(piece) + 1)]
    assert answers[:-1] == [True] * (len(answers) - 1)
    assert answers[-1] is False  # above the window: pause the client
    stream.read(len(piece))
    assert loop.run() == 0  # still above half the window: no resume yet
    stream.read(len(piece) * 2)
    assert loop.run() == 1 and resumed == [1]  # asked on the loop, once
    stream.read(len(piece))
    assert loop.run() == 0


def test_no_resume_without_a_pause(resumed: list[int]) -> None:
    loop = FakeLoop()
    stream = stream_of(loop, resumed)
    stream.feed(b"small")
    stream.end()
    assert stream.read() == b"small"
    assert loop.run() == 0 and resumed == []


def test_an_empty_piece_does_not_stall_readline() -> None:
    stream = stream_of(FakeLoop(), [])
    stream.feed(b"")
    stream.feed(b"ab")
    stream.feed(b"")
    stream.feed(b"\ncd")
    stream.end()
    assert stream.readline() == b"ab\n"
    assert stream.readline() == b"cd"


def test_empty_body() -> None:
    assert EMPTY_BODY.read() == EMPTY_BODY.read(5) == EMPTY_BODY.readline() == b""
    assert EMPTY_BODY.readlines() == [] and list(EMPTY_BODY) == []


# -- the head -----------------------------------------------------------------


def test_head_fields_take_content_length_out() -> None:
    fields, length = head_fields([("Content-Type", "text/plain"), ("content-length", " 12 ")])
    assert fields == [("Content-Type", "text/plain")]
    assert length == 12
    same = [("X-A", "1")]
    assert head_fields(same) == (same, None)


@pytest.mark.parametrize(
    "headers",
    [
        [("Connection", "close")],
        [("Transfer-Encoding", "chunked")],
        [("keep-alive", "timeout=5")],
        [("Upgrade", "h2c")],
        [("TE", "trailers")],
        [("Trailer", "X")],
        [("Proxy-Authenticate", "Basic")],
        [("Content-Length", "-1")],
        [("Content-Length", "1e3")],
        [("Content-Length", "5"), ("Content-Length", "6")],
        [("X-A", 1)],
        [(b"X-A", "1")],
        [("X-A", "1", "2")],
        ["X-A: 1"],
    ],
)
def test_head_fields_refuse(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(AppError):
        head_fields(headers)


def test_app_head_encodes_the_fields_without_content_length() -> None:
    fields, length, encoded = app_head(
        [("Content-Type", "text/plain"), ("Content-Length", "3"), ("X-A", "caf\u00e9")]
    )
    assert fields == [("Content-Type", "text/plain"), ("X-A", "caf\u00e9")]
    assert length == 3
    assert encoded == b"Content-Type: text/plain\r\nX-A: caf\xe9\r\n"
    assert app_head(iter([("X-B", "1")])) == ([("X-B", "1")], None, b"X-B: 1\r\n")
    assert app_head([["X-C", "1"]])[2] == b"X-C: 1\r\n"  # pairs as lists: checked each time


def test_app_head_follows_a_list_changed_in_place() -> None:
    headers = [("X-Count", "1")]
    first = app_head(headers)
    headers[0] = ("X-Count", "2")
    assert app_head(headers)[2] == b"X-Count: 2\r\n"
    headers[0] = ("X-Count", "1")
    assert app_head(headers) == first
    # What it answers is its own list: changing the application's leaves it be.
    headers.append(("X-Late", "1"))
    assert first[0] == [("X-Count", "1")]


@pytest.mark.parametrize(
    "field", [("X-Note", "a\r\nSet-Cookie: evil=1"), ("X-Note", "a\0b"), ("", "v")]
)
def test_app_head_refuses_a_field_that_would_split_the_head(field: tuple[str, str]) -> None:
    app_head([("X-Note", "clean")])  # a clean list with the same name was seen
    for _ in range(2):
        with pytest.raises(AppError):
            app_head([field])


@pytest.mark.parametrize(
    "headers", [[("Connection", "close")], ["X-A: 1"], [("X-A", 1)], [("X-A", "1", "2")]]
)
def test_app_head_refuses_what_head_fields_refuses(headers: list[Any]) -> None:
    for _ in range(2):
        with pytest.raises(AppError):
            app_head(headers)


@pytest.mark.parametrize(
    ("status", "code"), [("200 OK", 200), ("404 Not Found", 404), ("599 ", 599)]
)
def test_status_code(status: str, code: int) -> None:
    assert status_code(status) == code


@pytest.mark.parametrize(
    "status",
    ["OK", "200", "200OK", " 200 OK", "099 Low", "2x0 No", 200, b"200 OK", "200 OK\r\nX: y"],
)
def test_status_code_refuses(status: object) -> None:
    with pytest.raises(AppError):
        status_code(status)


def test_file_body_is_the_rest_of_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as file:
        file.seek(3)
        region = file_body(file, None)
        assert region is not None
        assert (region.offset, region.count) == (3, 7)
        assert os.pread(region.fd, region.count, region.offset) == b"3456789"
        region.close()
        short = file_body(file, 2)
        assert short is not None and short.count == 2
        short.close()
    # Its own descriptor: the application's file may be closed first.
    with open(path, "rb") as file:
        region = file_body(file, None)
    assert region is not None and os.pread(region.fd, 4, 0) == b"0123"
    region.close()


def test_file_body_refuses_what_is_not_a_regular_file() -> None:
    import io

    assert file_body(io.BytesIO(b"x"), None) is None
    read, write = os.pipe()
    try:
        with os.fdopen(read, "rb", closefd=False) as pipe:
            assert file_body(pipe, None) is None
    finally:
        os.close(read)
        os.close(write)


# -- the pool -------------------------------------------------------------------


def blocker(started: list[str], release: threading.Event, name: str) -> Callable[[], None]:
    def job() -> None:
        started.append(name)
        release.wait(5)

    return job


def test_pool_queues_in_order_and_refuses_past_the_queue() -> None:
    pool = ThreadPool(1, 2, name="test")
    started: list[str] = []
    release = threading.Event()
    try:
        assert pool.submit(blocker(started, release, "a"))
        assert wait_for(lambda: started == ["a"])
        assert pool.submit(blocker(started, release, "b"))
        assert pool.submit(blocker(started, release, "c"))
        assert pool.waiting == 2
        assert not pool.submit(blocker(started, release, "d"))  # a third would wait
        release.set()
        assert wait_for(lambda: started == ["a", "b", "c"])
    finally:
        release.set()
        pool.close(5)
    assert not pool.submit(lambda: None)  # closed


def test_pool_with_queue_zero_runs_on_idle_threads_only() -> None:
    pool = ThreadPool(2, 0, name="test")
    started: list[str] = []
    release = threading.Event()
    try:
        assert pool.submit(blocker(started, release, "a"))
        assert pool.submit(blocker(started, release, "b"))
        assert wait_for(lambda: sorted(started) == ["a", "b"])
        assert not pool.submit(blocker(started, release, "c"))
        release.set()
        # Both threads come back: a job is taken again.
        assert wait_for(lambda: pool.submit(lambda: started.append("d")))
        assert wait_for(lambda: "d" in started)
    finally:
        release.set()
        pool.close(5)


def test_a_failing_job_does_not_end_its_thread() -> None:
    pool = ThreadPool(1, 4, name="test")
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("job failed")

    try:
        assert pool.submit(fail)
        assert pool.submit(done.set)
        assert done.wait(5)
    finally:
        pool.close(5)
