#!/usr/bin/env python3
"""CGI demo: a visit counter kept per session (the server sets SESSION_ID).

The counts live in ``counter.db`` beside ``config.conf`` (found from this
script's own path, whatever the working folder), keyed by a hash of the
session id: the file never holds a usable session id.
"""

import hashlib
import html
import os
import sqlite3
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent
DATABASE = DEMO / "counter.db"
# The demo site's header (navigation bar), shared with its listings.
HEADER = DEMO / "www" / ".header.html"


def header() -> str:
    try:
        return HEADER.read_text(encoding="utf-8")
    except OSError:
        return '<header><nav><a href="/">localhost</a></nav></header>\n'


def count_visit(session: str) -> int:
    key = hashlib.sha256(session.encode()).hexdigest()
    with sqlite3.connect(DATABASE, timeout=2) as db:
        db.execute("CREATE TABLE IF NOT EXISTS visits (session TEXT PRIMARY KEY, count INTEGER)")
        db.execute(
            "INSERT INTO visits VALUES (?, 1) ON CONFLICT(session) DO UPDATE SET count = count + 1",
            (key,),
        )
        (count,) = db.execute("SELECT count FROM visits WHERE session = ?", (key,)).fetchone()
    return int(count)


session = os.environ.get("SESSION_ID")
if session:
    message = f"Visits in this session: <strong>{count_visit(session)}</strong>."
else:
    message = "No session: turn on <code>session on</code> for this location."
print("Content-Type: text/html; charset=utf-8")
print("Cache-Control: no-store")
print()
print(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CGI counter — localhost</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/style.css">
</head>
<body>
{header()}<main>
<h1>CGI counter</h1>
<p class="card" id="count">{message}</p>
<p>Reload to count again. The count belongs to this browser's session
(<a href="/session.html">see or end it</a>); it is kept in <code>{html.escape(DATABASE.name)}</code>
beside the demo's <code>config.conf</code>.</p>
</main>
</body>
</html>""")
