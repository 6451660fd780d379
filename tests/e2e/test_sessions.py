"""Server-side sessions end to end: cookies, the /session handler, CGI, restarts."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import requests

from tests.conftest import Server

CONFIG = """
session_store ./state/sessions.db
session_timeout {timeout}
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /session {
        session on
    }
    location /cgi-bin {
        root ./cgi-bin
        cgi .py python3
        session on
    }
}
"""

WHO = (
    "import os\n"
    'print("Content-Type: text/plain")\n'
    "print()\n"
    'print(os.environ.get("SESSION_ID", "-"))\n'
    'print(os.environ.get("HTTP_COOKIE", "-"))\n'
)


def make_site(root: Path) -> None:
    (root / "www").mkdir(exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    (root / "cgi-bin").mkdir(exist_ok=True)
    (root / "cgi-bin" / "who.py").write_text(WHO)


def config(timeout: str = "3600") -> str:
    return CONFIG.replace("{timeout}", timeout)


def test_new_session_cookie_and_visit_counter(server_factory, tmp_path: Path) -> None:
    make_site(tmp_path)
    server: Server = server_factory(config())
    with requests.Session() as client:
        first = client.get(server.url("/session"))
        assert first.status_code == 200
        assert first.headers["Content-Type"] == "application/json"
        cookie = first.headers["Set-Cookie"]
        assert cookie.startswith("LOCALHOST_SESSION=")
        for attribute in ("Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=3600"):
            assert attribute in cookie
        session_id = client.cookies["LOCALHOST_SESSION"]
        assert len(base64.urlsafe_b64decode(session_id + "=")) * 8 == 256  # the README's size
        body = first.json()
        assert body["visits"] == 1
        assert body["id"] == session_id[:8] + "…"
        assert session_id not in first.text
        second = client.get(server.url("/session"))
        assert second.json()["visits"] == 2
        assert "Set-Cookie" not in second.headers


def test_forged_or_malformed_cookies_get_a_new_session(server_factory, tmp_path: Path) -> None:
    make_site(tmp_path)
    server: Server = server_factory(config())
    forged = "A" * 43
    r = requests.get(server.url("/session"), headers={"Cookie": f"LOCALHOST_SESSION={forged}"})
    assert r.status_code == 200 and r.json()["visits"] == 1
    assert forged not in r.headers["Set-Cookie"]
    for header in [
        'LOCALHOST_SESSION="unterminated',
        "=;;==; ;",
        "LOCALHOST_SESSION=../../etc",
        "LOCALHOST_SESSION=\u00e9\u00e9",
    ]:
        r = requests.get(server.url("/session"), headers={"Cookie": header})
        assert r.status_code == 200, header
        assert r.json()["visits"] == 1


def test_delete_ends_the_session(server_factory, tmp_path: Path) -> None:
    make_site(tmp_path)
    server: Server = server_factory(config())
    with requests.Session() as client:
        client.get(server.url("/session"))
        old = client.cookies["LOCALHOST_SESSION"]
        r = client.delete(server.url("/session"))
        assert r.status_code == 204
        assert "Max-Age=0" in r.headers["Set-Cookie"]
    r = requests.get(server.url("/session"), headers={"Cookie": f"LOCALHOST_SESSION={old}"})
    assert r.json()["visits"] == 1
    assert old not in r.headers["Set-Cookie"]


def test_expired_sessions_are_refused(server_factory, tmp_path: Path) -> None:
    make_site(tmp_path)
    server: Server = server_factory(config(timeout="1"))
    with requests.Session() as client:
        client.get(server.url("/session"))
        old = client.cookies["LOCALHOST_SESSION"]
        time.sleep(1.5)  # the session's lifetime passes
        r = client.get(server.url("/session"))
        assert r.json()["visits"] == 1
        assert client.cookies["LOCALHOST_SESSION"] != old


def test_cgi_sees_the_session(server_factory, tmp_path: Path) -> None:
    make_site(tmp_path)
    server: Server = server_factory(config())
    with requests.Session() as client:
        client.get(server.url("/session"))
        session_id = client.cookies["LOCALHOST_SESSION"]
        lines = client.get(server.url("/cgi-bin/who.py")).text.splitlines()
    assert lines[0] == session_id
    assert lines[1] == f"LOCALHOST_SESSION={session_id}"


def test_sessions_survive_a_restart(server_factory, tmp_path: Path) -> None:
    make_site(tmp_path)
    server: Server = server_factory(config())
    with requests.Session() as client:
        client.get(server.url("/session"))
        assert client.get(server.url("/session")).json()["visits"] == 2
        assert server.stop() == 0
        again: Server = server_factory(config())
        assert client.get(again.url("/session")).json()["visits"] == 3
    assert (tmp_path / "state" / "sessions.db").exists()
