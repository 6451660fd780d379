"""Server-side sessions, in SQLite (one machine) or Redis (many machines).

A session is a random id (``secrets``, 256 bits) with its creation time,
last-seen time and a small JSON object of data. Sessions not seen for
``timeout`` seconds are refused and forgotten.

- ``SessionStore``: a SQLite file, opened in WAL mode so that every worker
  process reads and writes it at once; expired sessions are purged.
- ``RedisSessionStore``: a Redis server that every instance of the server
  reaches (``session_store redis://HOST:PORT/DB``, ``rediss://``,
  ``unix://``), through the ``redis`` package (the ``redis`` extra). Expiry
  is Redis's own TTL, renewed on every visit.

``open_store`` picks the store for a ``session_store`` value. A store that
cannot answer (Redis down or slow) raises ``StoreUnavailable``, which the
session handler turns into 503 for session locations only.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import sqlite3

    import redis

ID_BYTES = 32  # 256 bits of randomness; token_urlsafe makes 43 characters of it
PURGE_EVERY = 60.0  # seconds between purges of expired sessions
MAX_DATA = 4096  # bytes of JSON data per session
log = logging.getLogger("localhost")
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass
class Session:
    """One session: ``id``, times in seconds since the epoch, and its data."""

    id: str
    created: float
    last_seen: float
    data: dict[str, Any] = field(default_factory=dict)


class StoreUnavailable(Exception):
    """The session store cannot answer now (Redis unreachable, timed out)."""


class Store(Protocol):
    """What the session handler needs of a store (``timeout`` in seconds)."""

    timeout: float

    def get(self, session_id: str) -> Session | None: ...
    def create(self) -> Session: ...
    def save(self, session: Session) -> None: ...
    def delete(self, session_id: str) -> None: ...
    def close(self) -> None: ...


#: ``session_store`` values naming a Redis server rather than a SQLite file.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(value: str) -> bool:
    """Whether a ``session_store`` value is a Redis URL."""
    return value.startswith(REDIS_SCHEMES)


def open_store(where: Path | str, timeout: float) -> Store:
    """The store at ``where``: a Redis URL (``str``) or a SQLite file path."""
    if isinstance(where, str):
        return RedisSessionStore(where, timeout)
    return SessionStore(where, timeout)


def valid_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id this store issues."""
    return len(value) == 43 and all(c in _ID_CHARS for c in value)


class SessionStore:
    """Sessions in the SQLite database at ``path``; ``timeout`` in seconds."""

    def __init__(self, path: Path, timeout: float) -> None:
        # Imported here: sqlite3 costs 1.5 MiB of every worker's memory, and
        # most configurations never open a session store.
        import sqlite3

        self.path = path
        self.timeout = timeout
        self.db: sqlite3.Connection = sqlite3.connect(path, isolation_level=None, timeout=2.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS sessions ("
            " id TEXT PRIMARY KEY, created REAL NOT NULL, last_seen REAL NOT NULL,"
            " data TEXT NOT NULL DEFAULT '{}')"
        )
        self._purged = 0.0

    def get(self, session_id: str) -> Session | None:
        """The live session ``session_id`` (its last-seen time updated), or ``None``
        when it is unknown, malformed or expired."""
        if not valid_id(session_id):
            return None
        now = time.time()
        row = self.db.execute(
            "SELECT created, last_seen, data FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            return None
        if row[1] < now - self.timeout:
            self.delete(session_id)
            return None
        self.db.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, session_id))
        try:
            data = json.loads(row[2])
        except ValueError:
            data = {}
        return Session(session_id, row[0], now, data if isinstance(data, dict) else {})

    def create(self) -> Session:
        """A new, empty session."""
        import secrets  # here for the same reason: it loads OpenSSL (about 4 MiB)

        now = time.time()
        self.purge(now)
        session = Session(secrets.token_urlsafe(ID_BYTES), now, now)
        self.db.execute(
            "INSERT INTO sessions (id, created, last_seen, data) VALUES (?, ?, ?, '{}')",
            (session.id, now, now),
        )
        return session

    def save(self, session: Session) -> None:
        """Store ``session.data`` (JSON, at most ``MAX_DATA`` bytes: ValueError beyond)."""
        text = json.dumps(session.data, separators=(",", ":"))
        if len(text) > MAX_DATA:
            raise ValueError("session data too large")
        self.db.execute("UPDATE sessions SET data = ? WHERE id = ?", (text, session.id))

    def delete(self, session_id: str) -> None:
        """End a session."""
        self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def purge(self, now: float | None = None) -> None:
        """Remove expired sessions, at most once every ``PURGE_EVERY`` seconds."""
        now = time.time() if now is None else now
        if now - self._purged >= PURGE_EVERY:
            self._purged = now
            self.db.execute("DELETE FROM sessions WHERE last_seen < ?", (now - self.timeout,))

    def close(self) -> None:
        """Close the database."""
        self.db.close()


#: Seconds a Redis command may take (connecting included) before the store
#: is unavailable: a slow Redis costs a worker at most this long per request.
REDIS_TIMEOUT = 0.25
#: Seconds the store answers ``StoreUnavailable`` at once after a failure,
#: before trying Redis again: a dead Redis does not cost every request a timeout.
REDIS_RETRY_AFTER = 1.0
#: Key prefix of the sessions in the Redis database.
REDIS_PREFIX = "localhost:session:"


class RedisSessionStore:
    """Sessions in the Redis server at ``url``; ``timeout`` in seconds.

    Each session is one key (``localhost:session:ID``) holding
    ``{"created": seconds, "data": {...}}`` as JSON with a TTL of
    ``timeout`` seconds: ``get`` renews it (``GETEX``, Redis ≥ 6.2), so
    expiry is Redis's and nothing needs purging. ``create`` writes with
    ``NX``: an id in use is never handed out again; ``save`` writes with
    ``XX``: a session deleted or expired meanwhile is not brought back.

    The calls are blocking, bounded by ``REDIS_TIMEOUT`` (0.25 s); after a
    failure every call raises ``StoreUnavailable`` at once for
    ``REDIS_RETRY_AFTER`` (1 s) before Redis is tried again. Errors are
    logged once when Redis goes away and once when it is back.
    """

    def __init__(self, url: str, timeout: float) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.timeout = timeout
        self._ttl = max(1, int(timeout))
        self._down_until = 0.0
        self._down = False
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def _call(self, command: str, *args: Any, **options: Any) -> Any:
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable(f"session store {self.url} is unavailable")
        try:
            result = self.client.execute_command(command, *args, **options)  # type: ignore[no-untyped-call]
        except self._errors as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_AFTER
            if not self._down:
                self._down = True
                log.error("session store %s: %s; session locations answer 503", self.url, exc)
            raise StoreUnavailable(f"session store {self.url}: {exc}") from exc
        if self._down:
            self._down = False
            log.warning("session store %s: reachable again", self.url)
        return result

    def get(self, session_id: str) -> Session | None:
        """The live session ``session_id`` (its TTL renewed), or ``None`` when
        it is unknown, malformed or expired. Raises ``StoreUnavailable``."""
        if not valid_id(session_id):
            return None
        raw = self._call("GETEX", REDIS_PREFIX + session_id, "EX", self._ttl)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            created = float(record["created"])
            data = record.get("data")
        except (ValueError, TypeError, KeyError):
            return None
        return Session(session_id, created, time.time(), data if isinstance(data, dict) else {})

    def create(self) -> Session:
        """A new, empty session. Raises ``StoreUnavailable``."""
        import secrets

        now = time.time()
        record = _compact({"created": now, "data": {}})
        while True:
            session = Session(secrets.token_urlsafe(ID_BYTES), now, now)
            if self._call("SET", REDIS_PREFIX + session.id, record, "EX", self._ttl, "NX"):
                return session

    def save(self, session: Session) -> None:
        """Store ``session.data`` (JSON, at most ``MAX_DATA`` bytes: ValueError
        beyond). Raises ``StoreUnavailable``."""
        text = json.dumps(session.data, separators=(",", ":"))
        if len(text) > MAX_DATA:
            raise ValueError("session data too large")
        record = {"created": session.created, "data": session.data}
        self._call("SET", REDIS_PREFIX + session.id, _compact(record), "EX", self._ttl, "XX")

    def delete(self, session_id: str) -> None:
        """End a session. Raises ``StoreUnavailable``."""
        self._call("DEL", REDIS_PREFIX + session_id)

    def close(self) -> None:
        """Close the connections to Redis."""
        self.client.close()


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
