"""Running application code for a request, on the loop or in a thread.

A WSGI application and an App route handler both end in the same place: a
status, header fields and a body that is bytes, an iterable of bytes, or an
open file. ``AppHandler`` is the handler base that takes such an answer to
the client through the request's ``Exchange``:

- *inline* (``threads == 0``): the code runs on the event loop; an iterable
  body is pulled while the client takes it (``exchange.write() -> False``
  suspends the pull until ``on_writable``);
- *threaded*: the code runs in the location's ``ThreadPool``; every step
  back to the client is a callback queued with
  ``EventLoop.call_soon_threadsafe``. An iterable body is pulled in the
  thread chunk by chunk, and the thread *waits* (``Condition``) while more
  than ``STREAM_WINDOW`` bytes it produced are not yet taken by the
  connection, so a slow client holds a bounded amount of memory, never the
  body. The request body reaches the thread through a ``BodyStream``.

``close()`` of the body iterable is always called (PEP 3333), in the thread
that pulled it, also when the client went away; a client that leaves makes
the next ``write`` raise ``ClientGone`` in the producer.

Framing is the server's: Content-Length when the application gave it (a
longer body is cut to it; a shorter one is an error: the connection is
dropped), else chunked on HTTP/1.1, else the end of the connection. Fields
that are hop-by-hop are the server's too (PEP 3333, RFC 9110 §7.6.1): an
application that sets one gets a 500.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from localhost.handlers.base import BodyPolicy, Exchange, Handler
from localhost.handlers.error_pages import error_response
from localhost.http.message import FileBody, Response
from localhost.http.parser import MEMO_ENTRIES
from localhost.http.writer import encode_fields
from localhost.limits import LIMITS

if TYPE_CHECKING:
    from localhost.app.pool import ThreadPool
    from localhost.io.loop import EventLoop

log = logging.getLogger("localhost")

#: Bytes a producing thread may have handed to the loop and not yet seen
#: taken by the connection before it waits.
STREAM_WINDOW = LIMITS.app_stream_window_bytes
#: Bytes of a request body waiting for the application before the client is paused.
BODY_WINDOW = LIMITS.app_body_window_bytes

#: Fields an application may not set (RFC 9110 §7.6.1; PEP 3333 "hop-by-hop").
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_SPECIAL = HOP_BY_HOP | {"content-length"}


#: What application code may raise that is its own failure: a 500, not the
#: end of the worker (``sys.exit()`` in a view included).
APP_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit)


class AppError(Exception):
    """An application broke the interface (a bad status, a hop-by-hop field, ...)."""


class ClientGone(OSError):
    """The client of this request went away: stop producing."""


def head_fields(
    headers: Iterable[tuple[str, str]],
) -> tuple[list[tuple[str, str]], int | None]:
    """The fields to send and the Content-Length an application gave, if any.

    Raises ``AppError`` for a hop-by-hop field, a field that is not a pair of
    ``str``, or an invalid Content-Length.
    """
    fields = headers if type(headers) is list else list(headers)
    length: int | None = None
    special = _SPECIAL
    keep: list[tuple[str, str]] | None = None
    for index, pair in enumerate(fields):
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise AppError(f"a header is not a (name, value) pair: {pair!r}") from None
        if type(name) is not str or type(value) is not str:
            raise AppError(f"header name and value must be str: {pair!r}")
        lower = name.lower()
        if lower in special:
            if lower != "content-length":
                raise AppError(f'hop-by-hop field "{name}" is the server\'s (PEP 3333)')
            text = value.strip()
            if (
                not text.isdigit()
                or not text.isascii()
                or (length is not None and int(text) != length)
            ):
                raise AppError(f"invalid Content-Length {value!r}")
            length = int(text)
            if keep is None:
                keep = list(fields[:index])
            continue
        if keep is not None:
            keep.append(pair)
    return (keep if keep is not None else fields), length


#: A checked head: (fields to send, the application's Content-Length or
#: None, the fields encoded as ``Name: value\r\n`` lines).
Head = tuple[list[tuple[str, str]], int | None, bytes]

#: Header lists recently checked and encoded, by their content (applications
#: answer with the same few lists over and over); as many as the parser
#: remembers request heads, then cleared.
_HEADS: dict[tuple[Any, ...], Head] = {}


def app_head(headers: Iterable[tuple[str, str]] | dict[Any, Any]) -> Head:
    """``head_fields`` of ``headers`` with the fields encoded, remembered by content.

    ``headers`` is a list or iterable of ``(name, value)`` pairs, or a dict
    (its names and values made ``str``, as ``Response`` does).

    Returns ``(fields, length, encoded)``: the fields to send, the
    application's Content-Length (None without one), and the fields as
    ``Name: value\r\n`` Latin-1 lines without Content-Length. Raises
    ``AppError`` as ``head_fields`` does, and for a name or value holding
    CR, LF or NUL, or an empty name (RFC 9110 §5.5: it would split the head).
    A list equal to one seen before gets the same answer without a new check:
    the check depends on nothing but the pairs' content.
    """
    if type(headers) is dict:
        # A dict of str is looked up as the list of its items: no list is
        # made. Only exact str: a subclass may equal a str that prints
        # differently (a str Enum), and some values cannot be hashed.
        items = tuple(headers.items())
        for name, value in items:
            if type(name) is not str or type(value) is not str:
                break
        else:
            found = _HEADS.get(items)
            if found is not None:
                return found
        pairs = [(str(k), str(v)) for k, v in items]
    else:
        pairs = headers if type(headers) is list else list(headers)
    try:
        key: tuple[Any, ...] | None = tuple(pairs)
        found = _HEADS.get(key)  # type: ignore[arg-type]
    except TypeError:  # an unhashable pair: not a valid one, head_fields says why
        key = found = None
    if found is not None:
        return found
    fields, length = head_fields(pairs)
    try:
        encoded = encode_fields(fields)
    except ValueError as exc:
        raise AppError(str(exc)) from None
    # The cache keeps its own list: the application may change its list later.
    head = (list(fields), length, encoded)
    if key is not None:
        if len(_HEADS) >= MEMO_ENTRIES:
            _HEADS.clear()
        _HEADS[key] = head
    return head


def url_scheme(exchange: Exchange) -> str:
    """The scheme of the request's connection: its transport's ``scheme``
    (``"https"`` on TLS), ``"http"`` for a transport that has none or a
    connection already gone (``wsgi.url_scheme``, ``Request.scheme``)."""
    protocol = getattr(exchange, "_protocol", None)
    scheme: str = getattr(getattr(protocol, "transport", None), "scheme", "http")
    return scheme


def file_body(file: Any, length: int | None) -> FileBody | None:
    """A ``FileBody`` for the rest of a real, regular ``file`` (its own
    descriptor: the caller still closes ``file``), at most ``length`` bytes;
    None when ``file`` has no descriptor or is not a regular file."""
    try:
        fd = file.fileno()
        st = os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        offset = file.tell()
    except (AttributeError, OSError, ValueError):
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    count = max(st.st_size - offset, 0)
    if length is not None:
        count = min(count, length)
    return FileBody(os.dup(fd), offset, count)


class BodyStream:
    """The request body as a blocking stream for application threads (``wsgi.input``).

    The loop ``feed``s pieces as they arrive (False: above ``BODY_WINDOW``,
    pause the client) and says ``end`` or ``abort``; a thread reads with
    ``read(n)``, ``readline``, ``readlines`` or iteration, waiting for data.
    Reading after the client went away raises ``ClientGone``. When the
    buffer drains below the window, the loop is asked to resume the client.
    """

    __slots__ = ("_cond", "_chunks", "_size", "_eof", "_gone", "_paused", "_resume", "_loop")

    def __init__(self, loop: EventLoop, resume: Callable[[], None]) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._gone = False
        self._paused = False
        self._resume = resume
        self._loop = loop

    # -- the loop's side -----------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Add a piece of the body; False when the client should pause."""
        if not data:
            return True  # an empty piece would stall readline
        with self._cond:
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._cond.notify_all()
            if self._size > BODY_WINDOW:
                self._paused = True
                return False
            return True

    def end(self) -> None:
        """The body is complete."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """The client went away: readers get ``ClientGone``."""
        with self._cond:
            self._gone = True
            self._cond.notify_all()

    # -- the application's side ----------------------------------------------

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes (-1: all) once at least one is there or the body ended."""
        with self._cond:
            while not self._chunks and not self._eof:
                if self._gone:
                    raise ClientGone("the client went away")
                self._cond.wait()
            if self._gone and not self._eof:
                raise ClientGone("the client went away")
            chunks = self._chunks
            if size < 0 or size >= self._size:
                data = b"".join(chunks)
                chunks.clear()
            else:
                first = chunks[0]
                if len(first) > size:
                    data = first[:size]
                    chunks[0] = first[size:]
                else:
                    parts = []
                    need = size
                    while need > 0 and chunks:
                        piece = chunks.popleft()
                        if len(piece) > need:
                            chunks.appendleft(piece[need:])
                            piece = piece[:need]
                        parts.append(piece)
                        need -= len(piece)
                    data = b"".join(parts)
            self._size -= len(data)
            if self._paused and self._size <= BODY_WINDOW // 2:
                self._paused = False
                resume = self._resume
                self._loop.call_soon_threadsafe(resume)
            return data

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (fewer only at the end of the body); all the rest with -1 or None."""
        if size is None or size < 0:
            parts: list[bytes] = []
            while True:
                data = self._take(-1)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        parts = []
        need = size
        while need > 0:
            data = self._take(need)
            if not data:
                break
            parts.append(data)
            need -= len(data)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        """One line with its ``\\n`` (at most ``size`` bytes when given)."""
        limit = -1 if size is None else size
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            with self._cond:
                while not self._chunks and not self._eof and not self._gone:
                    self._cond.wait()
                if self._gone and not self._eof:
                    raise ClientGone("the client went away")
                if not self._chunks:
                    break
                first = self._chunks[0]
                end = first.find(b"\n") + 1
                room = len(first) if limit < 0 else min(len(first), limit - got)
                take = end if 0 < end <= room else room
            piece = self._take(take)
            parts.append(piece)
            got += len(piece)
            if piece.endswith(b"\n"):
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Every remaining line (stopping once ``hint`` bytes are read, when given)."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        """Nothing to release (the server owns the stream)."""


class EmptyBody:
    """The body of a request without one: every read gives ``b""``."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


EMPTY_BODY = EmptyBody()


class AppHandler(Handler):
    """The base of the WSGI and App handlers: run, then carry the answer out.

    Subclasses implement ``call(body) -> None`` (run the application with
    the request body stream; in a thread when ``pool`` is set) and answer
    with ``answer_whole``, ``answer_file`` or ``answer_stream``, from any
    thread: each is taken to the loop when needed.
    """

    __slots__ = (
        "pool",
        "loop",
        "body",
        "threaded",
        "started",
        "gone",
        "length",
        "sent",
        "iterator",
        "iterable",
        "_cond",
        "_outstanding",
        "_blocked",
        "_pulling",
        "_head",
    )

    def __init__(self, exchange: Exchange, pool: ThreadPool | None) -> None:
        self.exchange = exchange
        self.pool = pool
        self.loop = exchange.loop
        self.threaded = pool is not None
        self.body: Any = EMPTY_BODY
        self.started = False  # the head went out (or is on its way to the loop)
        self.gone = False  # the exchange ended without us: stop
        self.length: int | None = None
        self.sent = 0
        self.iterator: Iterator[bytes] | None = None
        self.iterable: Any = None
        self._cond: threading.Condition | None = None
        self._outstanding = 0  # bytes handed to the loop, not yet taken by the connection
        self._blocked = 0  # of those, bytes written while the connection was above its mark
        self._pulling = False
        self._head: tuple[int, list[tuple[str, str]]] = (500, [])

    # -- what subclasses implement -------------------------------------------

    def call(self, body: Any) -> None:
        """Run the application for this request with ``body`` (a stream)."""
        raise NotImplementedError

    # -- the request ---------------------------------------------------------

    def on_head(self) -> BodyPolicy:
        request = self.exchange.request
        has_body = request.chunked or bool(request.content_length)  # Request.has_body, inline
        if not self.threaded:
            if has_body:
                return BodyPolicy.SPOOL
            try:  # as _run (one call less on the inline hot path)
                self.call(EMPTY_BODY)
            except ClientGone:
                pass
            except APP_ERRORS:
                log.exception("application error in %s", request)
                self._internal_error()
            return BodyPolicy.IGNORE
        if has_body:
            self.body = BodyStream(self.loop, self.exchange.resume_body)
        self._submit()
        return BodyPolicy.STREAM if has_body else BodyPolicy.IGNORE

    def on_body(self, data: bytes) -> bool:
        return bool(self.body.feed(data))

    def on_body_end(self) -> None:
        if self.threaded:
            body = self.body
            if body is not EMPTY_BODY:
                body.end()
            return
        if self.started or self.exchange.done or self.iterator is not None:
            return
        spooled = self.exchange.body
        self._run(spooled if spooled is not None else EMPTY_BODY)

    def on_writable(self) -> None:
        if self.threaded:
            cond = self._cond
            if cond is not None:
                with cond:
                    self._outstanding -= self._blocked
                    self._blocked = 0
                    cond.notify_all()
        elif self.iterator is not None:
            self._pump()

    def on_abort(self, reason: str) -> None:
        self.gone = True
        body = self.body
        if body is not EMPTY_BODY and isinstance(body, BodyStream):
            body.abort()
        cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()
        if not self.threaded:
            self.iterator = None  # a pump still running or scheduled stops
            self._close_iterable()

    def _submit(self) -> None:
        pool = self.pool
        assert pool is not None
        if not pool.submit(self._job):
            log.warning(
                "%s: %d requests wait for an application thread: 503",
                self.exchange.request,
                pool.waiting,
            )
            self.gone = True
            exchange = self.exchange
            location = exchange.location
            pages = location.error_pages if location is not None else exchange.server.error_pages
            exchange.send(
                error_response(
                    503, pages, [("Retry-After", "1")], cache=exchange.services.error_pages
                )
            )

    def _job(self) -> None:
        if self.gone:
            return  # the client left while the request waited for a thread
        self._run(self.body)

    def _run(self, body: Any) -> None:
        try:
            self.call(body)
        except ClientGone:
            pass
        except APP_ERRORS:
            log.exception("application error in %s", self.exchange.request)
            self._post(self._internal_error)

    # -- the answer, from the thread that runs the application ---------------

    def _post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop: now (inline), or queued from the thread."""
        if not self.threaded:
            callback()
            return
        try:
            self.loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: the worker stopped
            self.gone = True

    def answer_whole(
        self,
        status: int,
        fields: list[tuple[str, str]],
        body: bytes,
        length: int | None,
        encoded: bytes | None = None,
    ) -> None:
        """Answer with ``body`` whole (``length``: the application's Content-Length;
        ``encoded``: ``fields`` as encoded by ``app_head``, when known)."""
        if length is not None and len(body) != length and self.exchange.request.method != "HEAD":
            if len(body) < length:
                raise AppError(f"the body has {len(body)} bytes, Content-Length says {length}")
            body = body[:length]
        self.started = True
        if not self.threaded:
            self._send_whole(status, fields, body, length, encoded)  # the inline hot path
            return
        self._post(lambda: self._send_whole(status, fields, body, length, encoded))

    def answer_file(self, status: int, fields: list[tuple[str, str]], file: FileBody) -> None:
        """Answer with a region of a file, sent with ``os.sendfile``."""
        self.started = True
        self._post(lambda: self._send_file(status, fields, file))

    def answer_stream(
        self,
        status: int,
        fields: list[tuple[str, str]],
        length: int | None,
        chunks: Iterable[bytes],
    ) -> None:
        """Answer with the bytes of ``chunks``, pulled as the client takes them.

        The head goes out with the first non-empty chunk (PEP 3333), or at
        the end for an empty body. ``close()`` of ``chunks`` is called at the end.
        """
        self.length = length
        self.iterable = chunks
        if not self.threaded:
            self.iterator = iter(chunks)
            self._head = (status, fields)
            self._pump()
            return
        if self._cond is None:  # write() may have made it, and a write may be on its way
            self._cond = threading.Condition(threading.Lock())
        try:
            if length is None or self.sent < length:
                for data in chunks:
                    if self.gone:
                        raise ClientGone("the client went away")
                    # Past the Content-Length nothing more is pulled (the
                    # rest would be cut): an endless body ends here too.
                    if data and not self._emit(status, fields, data):
                        break
            if not self.gone:
                self._emit_end(status, fields)
        finally:
            self._close_iterable()

    def _emit(self, status: int, fields: list[tuple[str, str]], data: bytes) -> bool:
        """Hand ``data`` to the loop, waiting while the client is behind (threads).

        Returns False once the application's Content-Length is reached.
        """
        if type(data) is not bytes:
            data = _as_bytes(data)
        length = self.length
        more = True
        if length is not None:
            room = length - self.sent
            if room <= len(data):
                data = data[:room]
                more = False
        self.sent += len(data)
        cond = self._cond
        assert cond is not None
        with cond:
            while self._outstanding > STREAM_WINDOW and not self.gone:
                cond.wait()
            if self.gone:
                raise ClientGone("the client went away")
            self._outstanding += len(data)
        if not self.started:
            self.started = True
            self._post(lambda: self._start(status, fields, length))
        if data:
            self._post(lambda: self._write(data))
        return more

    def _emit_end(self, status: int, fields: list[tuple[str, str]]) -> None:
        if not self.started:
            self.started = True
            self._post(lambda: self._start(status, fields, self.length))
        short = (
            self.length is not None
            and self.sent < self.length
            and self.exchange.request.method != "HEAD"
        )
        self._post(self._abort_short if short else self._finish)

    def write_now(
        self, status: int, fields: list[tuple[str, str]], length: int | None, data: bytes
    ) -> None:
        """Send ``data`` as part of the body right away (WSGI's ``write()``)."""
        if not data:
            return
        self.length = length
        if self.threaded:
            if self._cond is None:
                self._cond = threading.Condition(threading.Lock())
            self._emit(status, fields, data)
            return
        if not self.started:
            self.started = True
            self._start(status, fields, length)
        if length is not None:
            data = data[: max(length - self.sent, 0)]
        self.sent += len(data)
        self.exchange.write(data)

    # -- inline streaming --------------------------------------------------

    def _pump(self) -> None:
        """Pull the body iterator on the loop while the connection takes it."""
        iterator = self.iterator
        if iterator is None or self._pulling:
            return
        self._pulling = True
        exchange = self.exchange
        # Bytes this turn may still write before the loop serves the other
        # connections (a fast client would otherwise keep it here for the
        # whole body; a reset one, whose writes are dropped, forever).
        budget = STREAM_WINDOW
        try:
            for data in iterator:
                if exchange.done:
                    break
                if not data:
                    continue
                if type(data) is not bytes:
                    data = _as_bytes(data)
                if not self.started:
                    self.started = True
                    status, fields = self._head
                    self._start(status, fields, self.length)
                length = self.length
                if length is not None and length - self.sent <= len(data):
                    # The Content-Length is reached: pull no more (the rest would be cut).
                    data = data[: length - self.sent]
                    self.sent += len(data)
                    exchange.write(data)
                    if self.iterator is None:
                        return
                    break
                self.sent += len(data)
                if not exchange.write(data) or self.iterator is None:
                    return  # on_writable pulls again, or on_abort ended it
                budget -= len(data)
                if budget <= 0:
                    self.loop.call_soon(self._pump)
                    return
        except APP_ERRORS:
            log.exception("application error in %s", exchange.request)
            self.iterator = None
            self._close_iterable()
            if self.started:
                exchange.abort()
            else:
                self._internal_error()
            return
        finally:
            self._pulling = False
        self.iterator = None
        self._close_iterable()
        if exchange.done:
            return
        if not self.started:
            self.started = True
            status, fields = self._head
            self._start(status, fields, self.length)
        if (
            self.length is not None
            and self.sent < self.length
            and exchange.request.method != "HEAD"
        ):
            self._abort_short()
        else:
            self._finish()

    def _close_iterable(self) -> None:
        iterable, self.iterable = self.iterable, None
        close = getattr(iterable, "close", None)
        if close is not None:
            try:
                close()
            except APP_ERRORS:
                log.exception("application error closing the body of %s", self.exchange.request)

    # -- on the loop ---------------------------------------------------------

    def _send_whole(
        self,
        status: int,
        fields: list[tuple[str, str]],
        body: bytes,
        length: int | None,
        encoded: bytes | None = None,
    ) -> None:
        exchange = self.exchange
        if exchange.done:
            return
        if exchange.request.method == "HEAD" or status < 200 or status == 204 or status == 304:
            # The framing the GET would have (RFC 9110 §9.3.2), from the application.
            exchange.start(Response(status, fields), length if length is not None else len(body))
            exchange.finish()
            return
        if encoded is None:
            exchange.send(Response(status, fields, body))
            return
        raw = encoded + b"Content-Length: %d\r\n" % len(body)
        exchange.send(Response(status, fields, body, raw_fields=raw))

    def _send_file(self, status: int, fields: list[tuple[str, str]], file: FileBody) -> None:
        exchange = self.exchange
        if exchange.done:
            file.close()
            return
        exchange.send(Response(status, fields, file=file))

    def _start(self, status: int, fields: list[tuple[str, str]], length: int | None) -> None:
        exchange = self.exchange
        if not exchange.done:
            exchange.start(Response(status, fields), length)

    def _write(self, data: bytes) -> None:
        exchange = self.exchange
        cond = self._cond
        assert cond is not None
        taken = exchange.write(data)
        with cond:
            if taken or exchange.done:
                self._outstanding -= len(data)
                cond.notify_all()
            else:
                self._blocked += len(data)
        if exchange.done:
            self.gone = True

    def _finish(self) -> None:
        self.exchange.finish()

    def _abort_short(self) -> None:
        log.error(
            "%s: the application sent %d of %d body bytes",
            self.exchange.request,
            self.sent,
            self.length,
        )
        self.exchange.abort()

    def _internal_error(self) -> None:
        exchange = self.exchange
        if exchange.done:
            return
        if exchange.started:
            exchange.abort()  # a head is out: the answer cannot change
            return
        location = exchange.location
        pages = location.error_pages if location is not None else exchange.server.error_pages
        response = error_response(500, pages, cache=exchange.services.error_pages)
        response.close = True
        exchange.send(response)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise AppError(f"the body must be bytes, not {type(data).__name__}")


def real_file(file: IO[bytes]) -> bool:
    """Whether ``file`` has a descriptor of a regular file (``os.sendfile`` can send it)."""
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False
