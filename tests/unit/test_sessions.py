"""The SQLite session store."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from localhost.handlers.session import COOKIE, cookie_value, set_cookie
from localhost.http.message import Headers, Request
from localhost.sessions import SessionStore, valid_id


def test_create_get_save_delete(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db", timeout=60)
    session = store.create()
    assert valid_id(session.id)
    again = store.get(session.id)
    assert again is not None and again.created == session.created and again.data == {}
    again.data["visits"] = 3
    store.save(again)
    assert store.get(session.id).data == {"visits": 3}  # type: ignore[union-attr]
    store.delete(session.id)
    assert store.get(session.id) is None
    store.close()


def test_ids_are_random_and_forged_ones_are_refused(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db", timeout=60)
    ids = {store.create().id for _ in range(50)}
    assert len(ids) == 50
    for session_id in ids:  # 256 bits (README), in URL-safe base64 without padding
        assert len(session_id) == 43
        assert len(base64.urlsafe_b64decode(session_id + "=")) == 32
    assert store.get("A" * 43) is None
    assert store.get("short") is None
    assert store.get("' OR 1=1 --" + "x" * 32) is None
    store.close()


def test_expired_sessions_are_refused_and_purged(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db", timeout=0.2)
    session = store.create()
    time.sleep(0.3)  # the session's lifetime passes
    assert store.get(session.id) is None
    old = store.create()
    store.db.execute("UPDATE sessions SET last_seen = 0 WHERE id = ?", (old.id,))
    store.purge(time.time() + 3600)
    assert (
        store.db.execute("SELECT COUNT(*) FROM sessions WHERE id = ?", (old.id,)).fetchone()[0] == 0
    )
    store.close()


def test_store_is_shared_through_the_file(tmp_path: Path) -> None:
    first = SessionStore(tmp_path / "s.db", timeout=60)
    second = SessionStore(tmp_path / "s.db", timeout=60)
    session = first.create()
    session.data["k"] = "v"
    first.save(session)
    assert second.get(session.id).data == {"k": "v"}  # type: ignore[union-attr]
    assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.close()
    second.close()


def test_data_size_is_bounded(tmp_path: Path) -> None:
    # README: session data is at most 4 KiB of JSON.
    store = SessionStore(tmp_path / "s.db", timeout=60)
    session = store.create()
    session.data["big"] = ""
    session.data["big"] = "x" * (4096 - len(json.dumps(session.data, separators=(",", ":"))))
    store.save(session)
    assert store.get(session.id).data == session.data  # type: ignore[union-attr]
    session.data["big"] += "x"
    with pytest.raises(ValueError):
        store.save(session)
    store.close()


def request_with(*cookies: str) -> Request:
    headers = Headers([("cookie", value) for value in cookies])
    return Request("GET", "/", "HTTP/1.1", headers, "h", True, None, False, False)


def test_cookie_parsing_ignores_malformed_fields() -> None:
    assert cookie_value(request_with(f"a=1; {COOKIE}=abc; b=2")) == "abc"
    assert cookie_value(request_with('bad="', f"{COOKIE}=xyz")) == "xyz"
    assert cookie_value(request_with("=;;=")) is None
    assert cookie_value(request_with()) is None


def test_set_cookie_attributes() -> None:
    value = set_cookie("abc", 3600)
    assert value.startswith(f"{COOKIE}=abc")
    for attribute in ("Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=3600"):
        assert attribute in value
    assert "Max-Age=0" in set_cookie("", 0)
