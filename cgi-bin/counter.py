#!/usr/bin/env python3
"""CGI demo: a visit counter kept per session (the server sets SESSION_ID)."""

import os
import sqlite3
import tempfile

session = os.environ.get("SESSION_ID")
print("Content-Type: text/plain; charset=utf-8")
print("Cache-Control: no-store")
print()
if not session:
    print("No session: turn on `session on` for this location.")
else:
    path = os.path.join(tempfile.gettempdir(), "localhost-demo-counter.db")
    with sqlite3.connect(path, timeout=2) as db:
        db.execute("CREATE TABLE IF NOT EXISTS visits (session TEXT PRIMARY KEY, count INTEGER)")
        db.execute(
            "INSERT INTO visits VALUES (?, 1) ON CONFLICT(session) DO UPDATE SET count = count + 1",
            (session,),
        )
        (count,) = db.execute("SELECT count FROM visits WHERE session = ?", (session,)).fetchone()
    print(f"Visits in this session: {count}")
