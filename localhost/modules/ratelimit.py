"""limit_req, limit_conn and their zones (ngx_http_limit_req_module, ngx_http_limit_conn_module).

Two steps of the ACCESS phase, before allow/deny and auth_basic (NGINX runs
both modules in its PREACCESS phase, ahead of ACCESS: a client that guesses
passwords is rate-limited too), ``limit_req`` first, then ``limit_conn``.

Zones are shared by every worker
--------------------------------
``limit_req_zone`` and ``limit_conn_zone`` are made when the configuration
is loaded, that is in the master before it forks its workers: each zone is
a fixed-size hash table in an anonymous shared memory file (``memfd``,
mapped ``MAP_SHARED``), which the workers inherit, so that every worker
counts in the same table, as NGINX's shared memory zones do. A POSIX record
lock on the zone's file (``fcntl.lockf``, held for a few microseconds per
request) serialises the workers; the kernel drops it with a process that
dies holding it. ``SIZE`` bounds a zone: one state per 64 bytes of it, NGINX's
own figure (``1m`` keeps 16384 states); a zone below 32k is refused, as
NGINX refuses one below 8 pages.

The table is open addressing over a window of 16 slots from the
key's hash (63 bits of Python's keyed string hash; two keys sharing one are
counted together, which at 2**-63 per pair never matters). A ``limit_req``
key that finds its window full takes the place of a state that has leaked
empty, else of the least recently updated one in the window (NGINX removes
the least recently used state of the whole zone). A ``limit_conn`` state
lives while requests hold it; a key whose window is full of held states is
refused with ``limit_conn_status``, as NGINX refuses a request when the
zone has no room. A reload makes new zones (new workers count afresh; NGINX
keeps a zone across reloads).

The leaky bucket (``ngx_http_limit_req_lookup`` and ``_account``)
-----------------------------------------------------------------
Counts are in milli-requests and times in ms (``EventLoop.now``, the
monotonic clock the loop read when it woke, as ``ngx_current_msec``). A
zone's ``rate=Nr/s`` is ``N * 1000`` per second (``Nr/m``: ``N * 1000 //
60``). Per key a state holds ``excess`` and ``last``. A request finds
``excess - rate * ms // 1000 + 1000`` (``ms`` since ``last``, at least 0),
floored at 0; above ``burst * 1000`` it is refused (the state unchanged),
else stored (and ``last`` moved when ``ms`` > 0). A new key starts at 0.
Then the request waits ``(excess - delay * 1000) * 1000 // rate`` ms when
its excess is above ``delay=N`` (0 by default; ``nodelay``: never waits).
With several ``limit_req`` lines, every key is checked before any is
stored: one refusal stores nothing, and the longest wait wins. A request
is limited once: not again after a rewrite, ``try_files`` or an
``error_page`` takes it to another location (NGINX: ``r->main``).

The wait is a ``Delay`` result: the pipeline gives the request a
``Delayed`` handler, which waits on a loop timer without reading the body,
then runs the steps after this one, the later phases and the content
handler, and hands it what it kept of the body.

``limit_conn`` counts the requests being processed per key (NGINX counts a
connection only while it has a request in processing); a request adds one
in its step and takes it back when it ends, answered or not
(``exchange.cleanups``). A worker killed in the middle of a request (its
``worker_timeout``) leaves its counts behind, as in NGINX.

An empty key is not limited; a key longer than 65535 bytes (``limit_req``)
or 255 (``limit_conn``) is not either, with an error in the log (NGINX).
Refusals are logged at ``limit_req_log_level``/``limit_conn_log_level``
(default ``error``), waits one level lower (NGINX's ``notice`` is
``info`` here).

Sources: nginx.org/en/docs/http/ngx_http_limit_req_module.html,
ngx_http_limit_conn_module.html, and their C sources (NGINX 1.22).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import re
import sys
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

from lark import Token

from localhost.accesslog import LEVELS
from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    on_off,
)
from localhost.config.loader import quote as _q
from localhost.handlers.base import BodyPolicy, Handler
from localhost.http.errors import HTTPError
from localhost.limits import LIMITS
from localhost.modules.base import NO_STEPS, ModuleSpec, Phase, Step, Steps
from localhost.variables import Template, VariableContext, VariableError, compile_template

if TYPE_CHECKING:
    from localhost.config.model import Location, ServerBlock
    from localhost.handlers.base import Exchange
    from localhost.io.loop import Timer
    from localhost.server.pipeline import Pipeline

log = logging.getLogger("localhost")

#: The default answer to a refused request (NGINX's).
DEFAULT_STATUS = int(HTTPStatus.SERVICE_UNAVAILABLE)
#: ``nodelay`` as a ``delay`` in milli-requests: NGINX's ``NGX_MAX_INT_T_VALUE
#: / 1000`` requests, which no excess reaches.
NODELAY = sys.maxsize // 1000 * 1000
# The wait's level, one below the refusal's (NGINX: info stays info).
_DELAY_LEVEL = {"info": "info", "notice": "info", "warn": "notice", "error": "warn"}
#: ``limit_req_log_level`` and ``limit_conn_log_level`` values.
LOG_LEVEL_NAMES = tuple(_DELAY_LEVEL)

SPOOL_MEMORY = LIMITS.body_spool_memory_bytes  # of a delayed request's spooled body

# Lookup results (NGINX's return codes).
OK, AGAIN, BUSY, ERROR = 0, 1, 2, 3
# What limit_requests decides.
PASS, DELAY, REJECT = 0, 1, 2


def zone_states(size: int) -> int:
    """The states a zone of ``size`` bytes keeps: one per 64 bytes, NGINX's
    figure ("one megabyte zone can keep about 16 thousand 64-byte states")."""
    return size // 64


def key_hash(key: str) -> int:
    """The table hash of a rendered key: 63 bits of Python's keyed string hash
    (SipHash), never 0 (0 marks a free slot).

    The hash key is drawn when the interpreter starts, and every process that
    can reach a zone is a fork of the one that made it (the zone's memory
    has no name), so they all hash alike; a client cannot choose keys that
    collide without knowing it."""
    return (hash(key) & sys.maxsize) or 1


def size_text(size: int) -> str:
    """A zone size as a configuration would write it (``10m``, ``64k``, bytes)."""
    for unit, scale in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def _release_map(fd: int, region: mmap.mmap, views: list[memoryview]) -> None:
    for view in views:
        view.release()
    region.close()
    os.close(fd)


class SharedTable:
    """``capacity`` slots of ``width`` int64 fields each, keyed by a nonzero
    int64 hash, in shared memory that forked processes inherit.

    ``keys[slot]`` is the slot's hash (0: free), ``rows[slot * width + i]``
    its fields; a key lives in the ``probe`` slots from ``hash % capacity``
    (its window; the table has ``probe`` spare slots at its end, so that a
    window never wraps). ``lock``/``unlock`` exclude the other processes (not threads:
    only the event loop's thread uses a table).
    """

    __slots__ = ("capacity", "width", "probe", "keys", "rows", "_fd", "__weakref__")

    def __init__(
        self, capacity: int, width: int, name: str, probe: int = LIMITS.ratelimit_probe_slots
    ) -> None:
        if capacity < 1:
            raise ValueError("a table needs a slot")
        slots = capacity + probe
        size = slots * (1 + width) * 8
        fd = os.memfd_create(name)  # close-on-exec: CGI children do not get it
        try:
            os.ftruncate(fd, size)
            region = mmap.mmap(fd, size)  # MAP_SHARED: forked workers see one table
        except BaseException:
            os.close(fd)
            raise
        words = memoryview(region).cast("q")
        self.capacity = capacity
        self.width = width
        self.probe = probe
        self.keys = words[:slots]
        self.rows = words[slots:]
        self._fd = fd
        weakref.finalize(self, _release_map, fd, region, [self.keys, self.rows, words])

    def lock(self) -> None:
        """Wait for the table (a POSIX record lock: per process, dropped at exit)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def window(self, h: int) -> tuple[int, list[int]]:
        """The first slot of ``h``'s window and the hashes in the window."""
        base = h % self.capacity
        return base, self.keys[base : base + self.probe].tolist()

    def find(self, h: int) -> int:
        """The slot holding ``h``, or -1."""
        base, found = self.window(h)
        return base + found.index(h) if h in found else -1

    def used(self) -> int:
        """Slots in use (tests, diagnostics)."""
        return sum(1 for h in self.keys.tolist() if h)


class ReqZone:
    """A ``limit_req_zone``: ``key`` (a compiled template), ``rate`` in
    milli-requests per second, and its table of (excess, last ms) states."""

    __slots__ = ("name", "size", "key", "rate", "rate_text", "table")

    def __init__(self, name: str, size: int, key: Template, rate: int, rate_text: str) -> None:
        self.name = name
        self.size = size
        self.key = key
        self.rate = rate
        self.rate_text = rate_text
        self.table = SharedTable(zone_states(size), 2, f"limit_req_zone {name}")

    def _leak(self, slot: int, now: int) -> tuple[int, int]:
        """The excess after one more request at ``now``, and ms since ``last``."""
        rows = self.table.rows
        ms = now - rows[slot * 2 + 1]
        if ms < -60000:  # the clock went back a long way: NGINX's reading
            ms = 1
        elif ms < 0:
            ms = 0
        excess = rows[slot * 2] - self.rate * ms // 1000 + 1000
        return (excess if excess > 0 else 0), ms

    def _place(self, h: int, now: int) -> int:
        """A slot for the new key ``h``: a free one in its window, else the
        state that has leaked empty or, failing that, was updated longest ago."""
        table = self.table
        base, found = table.window(h)
        if 0 in found:
            slot = base + found.index(0)
        else:
            rows = table.rows
            rate = self.rate
            best = base
            best_score: tuple[bool, int] = (True, 0)
            for slot in range(base, base + table.probe):
                last = rows[slot * 2 + 1]
                drained = rows[slot * 2] - rate * max(now - last, 0) // 1000 <= 0
                score = (not drained, last)
                if slot == base or score < best_score:
                    best, best_score = slot, score
            slot = best
        table.keys[slot] = h
        table.rows[slot * 2] = 0
        table.rows[slot * 2 + 1] = now
        return slot

    def lookup(self, h: int, now: int, burst: int, account: bool) -> tuple[int, int]:
        """NGINX's ``ngx_http_limit_req_lookup`` for key hash ``h`` at ``now`` ms:
        ``(BUSY, excess)`` above ``burst`` (milli-requests; nothing stored);
        else ``(OK, excess)`` stored when ``account``, or ``(AGAIN, excess)``
        to be stored by ``account`` once every limit is checked. A new key
        is ``(OK|AGAIN, 0)``."""
        table = self.table
        table.lock()
        try:
            slot = table.find(h)
            if slot < 0:
                self._place(h, now)
                return (OK if account else AGAIN), 0
            excess, ms = self._leak(slot, now)
            if excess > burst:
                return BUSY, excess
            if account:
                table.rows[slot * 2] = excess
                if ms:
                    table.rows[slot * 2 + 1] = now
                return OK, excess
            return AGAIN, excess
        finally:
            table.unlock()

    def account(self, h: int, now: int) -> int:
        """NGINX's ``ngx_http_limit_req_account`` for one zone: store one more
        request for ``h`` at ``now``; returns the stored excess."""
        table = self.table
        table.lock()
        try:
            slot = table.find(h)
            if slot < 0:  # taken by another worker's new key since the lookup
                slot = self._place(h, now)
            excess, ms = self._leak(slot, now)
            table.rows[slot * 2] = excess
            if ms:
                table.rows[slot * 2 + 1] = now
            return excess
        finally:
            table.unlock()

    def __repr__(self) -> str:
        size = size_text(self.size)
        return f"limit_req_zone {self.key.text} zone={self.name}:{size} rate={self.rate_text}"


class ConnZone:
    """A ``limit_conn_zone``: ``key`` and its table of request counts."""

    __slots__ = ("name", "size", "key", "table")

    def __init__(self, name: str, size: int, key: Template) -> None:
        self.name = name
        self.size = size
        self.key = key
        self.table = SharedTable(zone_states(size), 1, f"limit_conn_zone {name}")

    def acquire(self, h: int, limit: int) -> int:
        """Count one more request for key hash ``h``: ``OK``; ``BUSY`` when it
        has ``limit`` already; ``ERROR`` when its window has no free slot."""
        table = self.table
        table.lock()
        try:
            base, found = table.window(h)
            if h in found:
                slot = base + found.index(h)
                count = table.rows[slot]
                if count >= limit:
                    return BUSY
                table.rows[slot] = count + 1
                return OK
            if 0 not in found:
                return ERROR
            slot = base + found.index(0)
            table.keys[slot] = h
            table.rows[slot] = 1
            return OK
        finally:
            table.unlock()

    def release(self, h: int) -> None:
        """One request for ``h`` ended; the state goes with its last one."""
        table = self.table
        table.lock()
        try:
            slot = table.find(h)
            if slot >= 0:
                count = table.rows[slot] - 1
                if count > 0:
                    table.rows[slot] = count
                else:
                    table.rows[slot] = 0
                    table.keys[slot] = 0
        finally:
            table.unlock()

    def count(self, key: str) -> int:
        """Requests counted for ``key`` now (tests, diagnostics)."""
        slot = self.table.find(key_hash(key))
        return self.table.rows[slot] if slot >= 0 else 0

    def __repr__(self) -> str:
        return f"limit_conn_zone {self.key.text} zone={self.name}:{size_text(self.size)}"


# -- what a location applies ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReqLimit:
    """One ``limit_req`` line: its zone, ``burst`` and ``delay`` in milli-requests."""

    zone: ReqZone
    burst: int = 0
    delay: int = 0


@dataclass(frozen=True, slots=True)
class LimitReq:
    """A location's ``limit_req`` lines and settings (``level``: a logging level)."""

    limits: tuple[ReqLimit, ...]
    status: int = DEFAULT_STATUS
    level: int = logging.ERROR
    delay_level: int = logging.WARNING
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ConnLimit:
    """One ``limit_conn`` line: its zone and the requests allowed per key."""

    zone: ConnZone
    conn: int


@dataclass(frozen=True, slots=True)
class LimitConn:
    """A location's ``limit_conn`` lines and settings."""

    limits: tuple[ConnLimit, ...]
    status: int = DEFAULT_STATUS
    level: int = logging.ERROR
    dry_run: bool = False


def limit_requests(
    limits: Sequence[ReqLimit], hashes: Sequence[int | None], now: int
) -> tuple[int, int, int, int]:
    """NGINX's ``ngx_http_limit_req_handler`` for one request, given each
    limit's key hash (None: an empty key, not limited) at ``now`` ms.

    Returns ``(verdict, delay, excess, index)``: ``PASS`` (delay 0),
    ``DELAY`` (``delay`` ms), or ``REJECT``; ``excess`` (milli-requests) and
    ``index`` name the limit that decided, for the log. Every key is looked
    up before any is stored, the last one storing as it looks (NGINX), so
    that a refusal stores nothing.
    """
    last = len(limits) - 1
    verdict = -1  # no key at all
    excess = 0
    index = last
    looked: list[int] = []
    for n, limit in enumerate(limits):
        h = hashes[n]
        if h is None:
            continue
        index = n
        verdict, excess = limit.zone.lookup(h, now, limit.burst, n == last)
        if verdict != AGAIN:
            break
        looked.append(n)
    if verdict < 0:
        return PASS, 0, 0, index
    if verdict in (BUSY, ERROR):
        return REJECT, 0, excess, index
    if verdict == AGAIN:
        excess = 0  # the last limit had no key: only the others wait
    limit = limits[index]
    most = 0 if excess <= limit.delay else (excess - limit.delay) * 1000 // limit.zone.rate
    for n in reversed(looked):
        limit = limits[n]
        h = hashes[n]
        assert h is not None
        stored = limit.zone.account(h, now)
        if stored <= limit.delay:
            continue
        wait = (stored - limit.delay) * 1000 // limit.zone.rate
        if wait > most:
            most, excess, index = wait, stored, n
    return (DELAY if most else PASS), most, excess, index


# -- the steps ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delay:
    """A step's result: go on with the request after ``seconds`` (the pipeline
    makes it a ``Delayed`` handler)."""

    seconds: float


def _limited_req() -> None:
    """Marks a request ``limit_req`` has seen (in ``exchange.cleanups``)."""


def _limited_conn() -> None:
    """Marks a request ``limit_conn`` has seen (in ``exchange.cleanups``)."""


def _mark(exchange: Exchange, marker: Any) -> None:
    cleanups = exchange.cleanups
    if cleanups is None:
        exchange.cleanups = [marker]
    else:
        cleanups.append(marker)


def _hashes(templates: tuple[Template, ...], exchange: Exchange, most: int) -> list[int | None]:
    ctx = cast("VariableContext", exchange)
    found: list[int | None] = []
    for template in templates:
        text = template.render(ctx)
        if not text:
            found.append(None)
        elif len(text) > most:
            log.error(
                'the value of the "%s" key is longer than %d characters: %.80r...',
                template.text,
                most,
                text,
            )
            found.append(None)
        else:
            found.append(key_hash(text))
    return found


def _client(exchange: Exchange) -> str:
    request = exchange.request
    return f'client: {exchange.peer[0]}, request: "{request.method} {request.target}"'


def limit_req_step(config: LimitReq) -> Step:
    """The step applying ``config``: None (go on), ``HTTPError(status)`` for a
    refused request, or a ``Delay``. Only once per request."""
    limits = config.limits
    templates = tuple(limit.zone.key for limit in limits)
    status, level, delay_level, dry_run = (
        config.status,
        config.level,
        config.delay_level,
        config.dry_run,
    )
    dry = ", dry run" if dry_run else ""

    def limit_req(exchange: Exchange) -> Delay | None:
        cleanups = exchange.cleanups
        if cleanups is not None and _limited_req in cleanups:
            return None
        hashes = _hashes(templates, exchange, 65535)  # NGINX's longest limit_req key
        if not any(hashes):
            return None  # NGINX: declined, and asked again after a redirect
        _mark(exchange, _limited_req)
        now = int(exchange.loop.now * 1000)
        verdict, delay, excess, index = limit_requests(limits, hashes, now)
        if verdict == PASS:
            return None
        zone = limits[index].zone.name
        if verdict == REJECT:
            if log.isEnabledFor(level):
                log.log(
                    level,
                    'limiting requests%s, excess: %d.%03d by zone "%s", %s',
                    dry,
                    excess // 1000,
                    excess % 1000,
                    zone,
                    _client(exchange),
                )
            if dry_run:
                return None
            raise HTTPError(status, f'limiting requests by zone "{zone}"')
        if log.isEnabledFor(delay_level):
            log.log(
                delay_level,
                'delaying request%s, excess: %d.%03d, by zone "%s", %s',
                dry,
                excess // 1000,
                excess % 1000,
                zone,
                _client(exchange),
            )
        if dry_run:
            return None
        return Delay(delay / 1000)

    return limit_req


def limit_conn_step(config: LimitConn) -> Step:
    """The step applying ``config``: counts the request under each key and
    uncounts it when the request ends; ``HTTPError(status)`` when a key is at
    its limit (or its zone is full). Only once per request."""
    limits = config.limits
    templates = tuple(limit.zone.key for limit in limits)
    status, level, dry_run = config.status, config.level, config.dry_run

    def limit_conn(exchange: Exchange) -> None:
        cleanups = exchange.cleanups
        if cleanups is not None and _limited_conn in cleanups:
            return
        hashes = _hashes(templates, exchange, 255)  # NGINX's longest limit_conn key
        held: list[tuple[ConnZone, int]] = []
        marked = False
        for limit, h in zip(limits, hashes, strict=True):
            if h is None:
                continue
            if not marked:
                _mark(exchange, _limited_conn)
                marked = True
            zone = limit.zone
            verdict = zone.acquire(h, limit.conn)
            if verdict == OK:
                held.append((zone, h))
                continue
            for other, other_hash in held:
                other.release(other_hash)
            if log.isEnabledFor(level):
                why = "limiting connections" if verdict == BUSY else "no room for a state"
                log.log(
                    level,
                    '%s%s by zone "%s", %s',
                    why,
                    ", dry run," if dry_run else "",
                    zone.name,
                    _client(exchange),
                )
            if dry_run:
                return
            raise HTTPError(status, f'limiting connections by zone "{zone.name}"')
        if held:
            _mark(exchange, _Release(tuple(held)))

    return limit_conn


class _Release:
    """A request's ``limit_conn`` counts, taken back when it ends (a cleanup)."""

    __slots__ = ("held",)

    def __init__(self, held: tuple[tuple[ConnZone, int], ...]) -> None:
        self.held = held

    def __call__(self) -> None:
        for zone, h in self.held:
            zone.release(h)


# -- the delay --------------------------------------------------------------------


class Delayed(Handler):
    """A request ``limit_req`` delays: waits ``seconds`` on a loop timer, then
    goes on (``Pipeline.resume``: the steps after ``steps[:after]``, the later
    phases, the content handler) and drives the handler that gives.

    The body is not read meanwhile (NGINX reads it in the content phase): a
    request with a body asks for it as a stream and pauses it at its first
    piece. Once the handler is known, that piece and the rest go to it as its
    ``on_head`` asks: streamed, spooled into ``exchange.body``, or read and
    dropped (``IGNORE`` is read and dropped too: the answer comes after the
    body, and the connection stays open).
    """

    __slots__ = (
        "pipeline",
        "steps",
        "after",
        "timer",
        "inner",
        "policy",
        "request",
        "held",
        "ended",
        "spool",
    )

    def __init__(
        self,
        exchange: Exchange,
        pipeline: Pipeline,
        seconds: float,
        steps: tuple[Step, ...],
        after: int,
    ) -> None:
        self.exchange = exchange
        self.pipeline = pipeline
        self.steps = steps
        self.after = after
        self.inner: Handler | None = None
        self.policy = BodyPolicy.IGNORE
        self.request = exchange.request
        self.held = b""
        self.ended = False
        self.spool: IO[bytes] | None = None
        loop = exchange.loop
        self.timer: Timer | None = loop.call_at(loop.now + seconds, self._wake)

    def on_head(self) -> BodyPolicy:
        return BodyPolicy.STREAM if self.exchange.request.has_body else BodyPolicy.IGNORE

    def on_body(self, data: bytes) -> bool:
        inner = self.inner
        if inner is None:
            self.held += data
            return False  # paused until the handler is known
        policy = self.policy
        if policy == BodyPolicy.STREAM:
            return inner.on_body(data)
        if policy == BodyPolicy.SPOOL and self.spool is not None:
            self.spool.write(data)
        return True

    def on_body_end(self) -> None:
        inner = self.inner
        if inner is None:
            self.ended = True
            return
        self._hand_spool()
        inner.on_body_end()

    def on_writable(self) -> None:
        if self.inner is not None:
            self.inner.on_writable()

    def on_abort(self, reason: str) -> None:
        timer = self.timer
        if timer is not None:
            self.timer = None
            self.exchange.loop.cancel(timer, forget=True)
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.close()
        inner = self.inner
        if inner is not None:
            self.inner = None
            inner.on_abort(reason)

    def _gone(self) -> bool:
        """The request was answered, or handed elsewhere (an error page's
        internal redirect replaces its request)."""
        exchange = self.exchange
        return exchange.done or exchange.request is not self.request

    def _hand_spool(self) -> None:
        if self.policy == BodyPolicy.SPOOL:
            spool = self.spool
            if spool is None:  # the body ended before the handler was known
                spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY)  # noqa: SIM115
                spool.write(self.held)
            self.spool = None
            spool.seek(0)
            self.exchange.body = cast(BinaryIO, spool)

    def _wake(self) -> None:
        self.timer = None
        exchange = self.exchange
        if self._gone():
            return
        pipeline = self.pipeline
        inner = self.inner = pipeline.resume(exchange, self.steps, self.after)
        try:
            self._go_on(inner)
        except HTTPError as exc:
            self._fail(pipeline.error_response(exchange, exc))
        except Exception:
            log.exception("error handling %s after its delay", exchange.request)
            self._fail(pipeline.internal_error(exchange))

    def _go_on(self, inner: Handler) -> None:
        exchange = self.exchange
        policy = self.policy = inner.on_head()
        if self._gone():
            return
        held, self.held = self.held, b""
        if self.ended:
            if exchange.request.has_body:
                self._hand_spool()
            inner.on_body_end()
            return
        if not exchange.request.has_body:
            return  # on_body_end is still to come
        more = True
        if policy == BodyPolicy.STREAM:
            if held:
                more = inner.on_body(held)
        elif policy == BodyPolicy.SPOOL:
            spool = self.spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY)  # noqa: SIM115
            spool.write(held)
        if more is not False and not self._gone():
            exchange.resume_body()

    def _fail(self, response: Any) -> None:
        exchange = self.exchange
        inner = self.inner
        self.inner = None
        if inner is not None:
            try:
                inner.on_abort("error")
            except Exception:
                log.exception("handler failed to abort")
        if exchange.started:
            response.release()
            exchange.abort("error")
        else:
            exchange.send(response)


# -- configuration ------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _fail_at(v: Validator, token: Token, offset: int, message: str) -> NoReturn:
    """Fail at column ``offset`` of ``token`` (a parameter's value)."""
    v.fail(None, message, token.line or 0, (token.column or 0) + offset)


def _key(v: Validator, token: Token) -> Template:
    try:
        return compile_template(str(token))
    except VariableError as exc:
        _fail_at(v, token, exc.offset, f"{v.name} key: {exc.message}")


def _zone_parameter(v: Validator, token: Token) -> tuple[str, int]:
    """``zone=NAME:SIZE`` → (name, bytes)."""
    text = str(token)[5:]
    name, colon, amount = text.partition(":")
    if not name or not _NAME.match(name):
        v.fail(token, f"{v.name}: invalid zone name {_q(name)} (letters, digits, _ . -)")
    if not colon:
        v.fail(
            token,
            f"{v.name}: invalid zone size in {_q(str(token))} "
            f"(expected zone=NAME:SIZE, e.g. zone={name}:10m)",
        )
    lowered = amount.lower()
    unit = _SIZE_UNITS.get(lowered[-1:], 1)
    digits = lowered[:-1] if lowered[-1:] in _SIZE_UNITS else lowered
    if not digits.isascii() or not digits.isdigit():
        v.fail(
            token,
            f"{v.name}: invalid zone size {_q(amount)} (bytes, or a number with k, m or g)",
        )
    size = int(digits) * unit
    if size < 8 * 4096:  # NGINX: at least 8 pages
        v.fail(token, f'{v.name}: zone "{name}" is too small ({size} bytes; at least 32k)')
    return name, size


def _rate(v: Validator, token: Token) -> tuple[int, str]:
    """``rate=Nr/s|Nr/m`` → (milli-requests per second, the text)."""
    text = str(token)[5:]
    scale = 1
    number = text
    if text.endswith("r/s"):
        number = text[:-3]
    elif text.endswith("r/m"):
        number, scale = text[:-3], 60
    if not number.isascii() or not number.isdigit() or int(number) <= 0:
        v.fail(
            token,
            f"invalid rate {_q(text)} (expected requests per second or minute: 10r/s, 30r/m)",
        )
    return int(number) * 1000 // scale, text


def _req_zone(v: Validator, args: list[Token]) -> ReqZone:
    """``limit_req_zone KEY zone=NAME:SIZE [rate=RATE]`` (NGINX: 1r/s without ``rate``)."""
    key = _key(v, args[0])
    zone: tuple[str, int] | None = None
    rate, rate_text = 1000, "1r/s"
    for token in args[1:]:
        if token.startswith("zone="):
            zone = _zone_parameter(v, token)
        elif token.startswith("rate="):
            rate, rate_text = _rate(v, token)
        else:
            v.fail(
                token,
                f"limit_req_zone: invalid parameter {_q(str(token))} "
                "(expected zone=NAME:SIZE or rate=RATE)",
            )
    if zone is None:
        v.fail(args[0], 'limit_req_zone must have the "zone" parameter (zone=NAME:SIZE)')
    return ReqZone(zone[0], zone[1], key, rate, rate_text)


def _conn_zone(v: Validator, args: list[Token]) -> ConnZone:
    """``limit_conn_zone KEY zone=NAME:SIZE``."""
    key = _key(v, args[0])
    token = args[1]
    if not token.startswith("zone="):
        v.fail(
            token,
            f"limit_conn_zone: invalid parameter {_q(str(token))} (expected zone=NAME:SIZE)",
        )
    name, size = _zone_parameter(v, token)
    return ConnZone(name, size, key)


@dataclass(frozen=True, slots=True)
class _ReqRef:
    """A ``limit_req`` line before its zone is known: zone name and where it is."""

    name: str
    token: Token
    burst: int
    delay: int


@dataclass(frozen=True, slots=True)
class _ConnRef:
    name: str
    token: Token
    conn: int


def _positive(v: Validator, token: Token, text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        v.fail(token, f"invalid {what} value {_q(str(token))} (expected a positive number)")
    return int(text)


def _req(v: Validator, args: list[Token]) -> _ReqRef:
    """``limit_req zone=NAME [burst=N] [nodelay|delay=N]``."""
    name: str | None = None
    where = args[0]
    burst = 0
    delay: int | None = None
    for token in args:
        text = str(token)
        if text.startswith("zone="):
            name, where = text[5:], token
            if not name:
                v.fail(token, "limit_req: empty zone name")
        elif text.startswith("burst="):
            burst = _positive(v, token, text[6:], "burst")
        elif text.startswith("delay=") or text == "nodelay":
            if delay is not None:
                v.fail(token, 'limit_req: "nodelay" and "delay=" exclude each other; give one')
            delay = NODELAY if text == "nodelay" else _positive(v, token, text[6:], "delay") * 1000
        else:
            v.fail(
                token,
                f"limit_req: invalid parameter {_q(text)} "
                "(expected zone=NAME, burst=N, nodelay or delay=N)",
            )
    if name is None:
        v.fail(args[0], 'limit_req must have the "zone" parameter (zone=NAME)')
    return _ReqRef(name, where, burst * 1000, delay or 0)


def _conn(v: Validator, args: list[Token]) -> _ConnRef:
    """``limit_conn ZONE NUMBER`` (1 to 65535)."""
    number = args[1]
    conn = _positive(v, number, str(number), "number of connections")
    if conn > 65535:
        v.fail(number, "the connection limit must be less than 65536")
    return _ConnRef(str(args[0]), args[0], conn)


def _status(v: Validator, args: list[Token]) -> int:
    text = str(args[0])
    if not text.isascii() or not text.isdigit() or not 400 <= int(text) <= 599:
        v.fail(args[0], f"{v.name}: invalid status {_q(text)} (expected a code from 400 to 599)")
    return int(text)


def _log_level(v: Validator, args: list[Token]) -> str:
    text = str(args[0])
    if text not in LOG_LEVEL_NAMES:
        expected = ", ".join(LOG_LEVEL_NAMES)
        v.fail(args[0], f"{v.name}: invalid level {_q(text)} (expected {expected})")
    return text


_DIRECTIVE: dict[type, str] = {ReqZone: "limit_req_zone", ConnZone: "limit_conn_zone"}


def _zones(v: Validator | None, main: Scope) -> dict[str, tuple[ReqZone | ConnZone, Token]]:
    """Every zone by name; with ``v``, two zones of one name are an error at the second."""
    found: dict[str, tuple[ReqZone | ConnZone, Token]] = {}
    entries: list[tuple[Any, Token]] = [
        *main.lists.get("limit_req_zone", []),
        *main.lists.get("limit_conn_zone", []),
    ]
    entries.sort(key=lambda entry: (entry[1].line or 0, entry[1].column or 0))
    for zone, token in entries:
        first = found.get(zone.name)
        if first is not None and v is not None:
            other, where = first
            if type(other) is not type(zone):
                v.fail(
                    token,
                    f'zone "{zone.name}" is already declared for a different use '
                    f"({_DIRECTIVE[type(other)]} at line {where.line})",
                )
            v.fail(
                token,
                f'{_DIRECTIVE[type(zone)]} "{zone.name}" is already bound to key '
                f'"{other.key.text}" (line {where.line})',
            )
        found.setdefault(zone.name, (zone, token))
    return found


def _check_refs(
    v: Validator, scopes: tuple[Scope, Scope, Scope], directive: str, kind: type
) -> None:
    """Every ``directive`` line of the location's levels names a zone of
    ``kind``, and none twice in one level."""
    zones = _zones(v, scopes[2])
    wanted = _DIRECTIVE[kind]
    for scope in scopes:
        seen: dict[str, Token] = {}
        for ref, _ in scope.lists.get(directive, []):
            entry = zones.get(ref.name)
            if entry is None or type(entry[0]) is not kind:
                known = sorted(name for name, (zone, _) in zones.items() if type(zone) is kind)
                if known:
                    hint = f" (defined: {', '.join(known)})"
                else:
                    example = f"{wanted} $binary_remote_addr zone={ref.name}:10m"
                    hint = f" (define it at the top level, e.g. {example})"
                v.fail(ref.token, f'{directive}: unknown {wanted} "{ref.name}"{hint}')
            if ref.name in seen:
                first = seen[ref.name].line
                v.fail(
                    ref.token,
                    f'{directive}: zone "{ref.name}" is duplicate (first at line {first})',
                )
            seen[ref.name] = ref.token


def _check_req(v: Validator, scopes: tuple[Scope, Scope, Scope]) -> None:
    _check_refs(v, scopes, "limit_req", ReqZone)


def _check_conn(v: Validator, scopes: tuple[Scope, Scope, Scope]) -> None:
    _check_refs(v, scopes, "limit_conn", ConnZone)


def _own_list(scopes: tuple[Scope, Scope, Scope], name: str) -> list[tuple[Any, Token]]:
    """A level's own lines, else the nearest outer level's (NGINX: inherited
    only by a level that has none)."""
    for scope in scopes:
        entries = scope.lists.get(name)
        if entries:
            return entries
    return []


def _derive_req(scopes: tuple[Scope, Scope, Scope]) -> LimitReq | None:
    refs = _own_list(scopes, "limit_req")
    if not refs:
        return None
    zones = _zones(None, scopes[2])
    limits = tuple(
        ReqLimit(cast(ReqZone, zones[ref.name][0]), ref.burst, ref.delay) for ref, _ in refs
    )
    level = inherit("limit_req_log_level", "error", *scopes)
    return LimitReq(
        limits,
        status=inherit("limit_req_status", DEFAULT_STATUS, *scopes),
        level=LEVELS[level],
        delay_level=LEVELS[_DELAY_LEVEL[level]],
        dry_run=inherit("limit_req_dry_run", False, *scopes),
    )


def _derive_conn(scopes: tuple[Scope, Scope, Scope]) -> LimitConn | None:
    refs = _own_list(scopes, "limit_conn")
    if not refs:
        return None
    zones = _zones(None, scopes[2])
    limits = tuple(ConnLimit(cast(ConnZone, zones[ref.name][0]), ref.conn) for ref, _ in refs)
    return LimitConn(
        limits,
        status=inherit("limit_conn_status", DEFAULT_STATUS, *scopes),
        level=LEVELS[inherit("limit_conn_log_level", "error", *scopes)],
        dry_run=inherit("limit_conn_dry_run", False, *scopes),
    )


DIRECTIVES: Mapping[str, Any] = {
    "limit_req_zone": Directive(
        (MAIN,),
        2,
        3,
        _req_zone,
        repeatable=True,
        syntax="limit_req_zone KEY zone=NAME:SIZE rate=RATE",
    ),
    "limit_req": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        3,
        _req,
        repeatable=True,
        syntax="limit_req zone=NAME [burst=N] [nodelay|delay=N]",
        derive=_derive_req,
        check=_check_req,
    ),
    "limit_req_status": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _status, syntax="limit_req_status CODE"
    ),
    "limit_req_log_level": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        1,
        _log_level,
        syntax="limit_req_log_level info|notice|warn|error",
    ),
    "limit_req_dry_run": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, on_off, syntax="limit_req_dry_run on|off"
    ),
    "limit_conn_zone": Directive(
        (MAIN,), 2, 2, _conn_zone, repeatable=True, syntax="limit_conn_zone KEY zone=NAME:SIZE"
    ),
    "limit_conn": Directive(
        (MAIN, SERVER, LOCATION),
        2,
        2,
        _conn,
        repeatable=True,
        syntax="limit_conn ZONE NUMBER",
        derive=_derive_conn,
        check=_check_conn,
    ),
    "limit_conn_status": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _status, syntax="limit_conn_status CODE"
    ),
    "limit_conn_log_level": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        1,
        _log_level,
        syntax="limit_conn_log_level info|notice|warn|error",
    ),
    "limit_conn_dry_run": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, on_off, syntax="limit_conn_dry_run on|off"
    ),
}


def build(server: ServerBlock, location: Location | None) -> Steps:
    """The ACCESS steps of ``location`` (None: the server block's, which has
    none): ``limit_req`` from ``options["limit_req"]`` (``LimitReq``), then
    ``limit_conn`` from ``options["limit_conn"]`` (``LimitConn``)."""
    if location is None:
        return NO_STEPS
    steps: list[Step] = []
    req = location.options.get("limit_req")
    if req is not None:
        steps.append(limit_req_step(req))
    conn = location.options.get("limit_conn")
    if conn is not None:
        steps.append(limit_conn_step(conn))
    if not steps:
        return NO_STEPS
    return Steps({Phase.ACCESS: tuple(steps)})


# Before access (20): NGINX's PREACCESS phase comes before its ACCESS phase.
SPEC = ModuleSpec("ratelimit", DIRECTIVES, build, order=15)
