"""Server-side sessions in SQLite, shared by every worker process.

A session is a random id (``secrets``, 256 bits) with its creation time,
last-seen time and a small JSON object of data. The database is opened in
WAL mode so that several processes read and write it at once. Sessions not
seen for ``timeout`` seconds are refused and purged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

ID_BYTES = 32  # 256 bits of randomness; token_urlsafe makes 43 characters of it
PURGE_EVERY = 60.0  # seconds between purges of expired sessions
MAX_DATA = 4096  # bytes of JSON data per session
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass
class Session:
    """One session: ``id``, times in seconds since the epoch, and its data."""

    id: str
    created: float
    last_seen: float
    data: dict[str, Any] = field(default_factory=dict)


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
