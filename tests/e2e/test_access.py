"""allow/deny and auth_basic on a live server: 403 for a denied loopback
client, curl -u against an htpasswd file, 401 with WWW-Authenticate, the
file changed under the running server, and IPv6 rules on [::1]."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, recv_until, run_cli, start_server

CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    error_page 403 ./www/errors/403.html
    location / { }
    location /denied { deny 127.0.0.1 }
    location /others-denied { deny 10.0.0.0/8; deny ::1; allow all }
    location /private {
        auth_basic "Staff area"
        auth_basic_user_file users
        location /private/public { auth_basic off }
    }
    location /by-host {
        auth_basic "Zone $host"
        auth_basic_user_file users
    }
    location /both {
        deny 127.0.0.0/8
        auth_basic "Both"
        auth_basic_user_file users
    }
}
"""

# htpasswd -B (cost 5), htpasswd -m, htpasswd -s
BOB = b"bob:$2y$05$PB6sDPUSeqa.fSZNu1BLYeE7yTkoCQ5Jw09pKHrxqUSxLNreHCuS6"
ALICE = b"alice:$apr1$1/yYRb2U$U4YPisb/j2UbTNn3yqbIc0"
CAROL = b"carol:{SHA}Uf6FcHcobA9zM3wEGd5ird6X2WA="
PASSWORDS = {"bob": "b0b-secret", "alice": "alice pw", "carol": "carol:colon"}

CHALLENGE = 'Basic realm="Staff area", charset="UTF-8"'


def write_users(path: Path, *lines: bytes) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def build(root: Path) -> None:
    for folder in (
        "www/errors",
        "www/denied",
        "www/others-denied",
        "www/private/public",
        "www/both",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("", "denied/", "others-denied/", "private/", "private/public/", "both/"):
        (root / "www" / folder / "a.txt").write_text(f"file in /{folder}\n")
    (root / "www/errors/403.html").write_text("<p>CUSTOM 403 PAGE</p>\n")
    write_users(root / "users", BOB, ALICE, CAROL)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("access")
    build(root)
    server = start_server(CONFIG, root)
    yield server
    server.stop()


def poll(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {limit} s")
        time.sleep(0.05)


def curl(url: str, *args: str) -> tuple[int, str, str]:
    """Status, response head and body of ``curl -sS -i ARGS URL``."""
    done = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "10", *args, url],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    return int(head.split()[1]), head, body


# -- allow / deny ------------------------------------------------------------


def test_denied_loopback_gets_403_with_the_error_page(site: Server) -> None:
    response = requests.get(site.url("/denied/a.txt"), timeout=5)
    assert response.status_code == 403
    assert "CUSTOM 403 PAGE" in response.text
    assert "www-authenticate" not in response.headers


def test_other_clients_rules_let_loopback_in(site: Server) -> None:
    assert requests.get(site.url("/a.txt"), timeout=5).text == "file in /\n"
    response = requests.get(site.url("/others-denied/a.txt"), timeout=5)
    assert response.status_code == 200
    assert response.text == "file in /others-denied/\n"


def test_deny_comes_before_auth(site: Server) -> None:
    response = requests.get(site.url("/both/a.txt"), auth=("bob", PASSWORDS["bob"]), timeout=5)
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers


def test_ipv6_rules_on_loopback(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    build(tmp_path)
    # The 127.0.0.1 block on the same port number lets start_server see it listen.
    server = start_server(
        """
        server {
            host ::1
            port {port0}
            root ./www
            deny ::1
            location /denied { deny 127.0.0.1 }
        }
        server {
            host 127.0.0.1
            port {port0}
            root ./www
            deny all
        }
        """,
        tmp_path,
    )
    try:
        base = f"http://[::1]:{server.port}"
        assert requests.get(base + "/a.txt", timeout=5).status_code == 403
        # The location's own rule replaces the server's "deny ::1".
        response = requests.get(base + "/denied/a.txt", timeout=5)
        assert response.status_code == 200
        assert response.text == "file in /denied/\n"
        assert requests.get(server.url("/a.txt"), timeout=5).status_code == 403
    finally:
        server.stop()


# -- auth_basic ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("user", ["bob", "alice", "carol"])
def test_curl_with_the_right_password(site: Server, user: str) -> None:
    status, _, body = curl(site.url("/private/a.txt"), "-u", f"{user}:{PASSWORDS[user]}")
    assert status == 200
    assert body == "file in /private/\n"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_wrong_password_and_none(site: Server) -> None:
    for args in (("-u", "bob:wrong"), ("-u", "nobody:b0b-secret"), ()):
        status, head, body = curl(site.url("/private/a.txt"), *args)
        assert status == 401
        assert f"WWW-Authenticate: {CHALLENGE}" in head.splitlines()
        assert "file in" not in body


def test_realm_with_a_variable(site: Server) -> None:
    response = requests.get(site.url("/by-host/a.txt"), headers={"Host": "example.test"}, timeout=5)
    assert response.status_code == 401
    assert (
        response.headers["WWW-Authenticate"] == 'Basic realm="Zone example.test", charset="UTF-8"'
    )


def test_auth_off_in_a_nested_location(site: Server) -> None:
    response = requests.get(site.url("/private/public/a.txt"), timeout=5)
    assert response.status_code == 200


def test_401_keeps_the_connection(site: Server) -> None:
    # A browser asks without credentials, then again on the same connection with them.
    token = "Ym9iOmIwYi1zZWNyZXQ="  # base64("bob:b0b-secret")
    with site.connect() as sock:
        sock.sendall(b"GET /private/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        first = recv_until(sock, b"</html>")
        assert first.startswith(b"HTTP/1.1 401 ")
        assert b"Connection: close" not in first
        request = f"GET /private/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n"
        sock.sendall(request.encode())
        second = recv_until(sock, b"file in /private/\n")
        assert second.startswith(b"HTTP/1.1 200 ")


def test_passwords_are_not_logged(site: Server) -> None:
    requests.get(site.url("/private/a.txt"), auth=("bob", "hunter2-not-it"), timeout=5)
    requests.get(site.url("/private/a.txt"), auth=("bob", PASSWORDS["bob"]), timeout=5)
    requests.get(site.url("/private/a.txt"), auth=("marker-user", "x"), timeout=5)
    # The error log is buffered: once the last attempt's line is out, so are the others.
    poll(lambda: "'marker-user' was not found" in site.log())
    log = site.log()
    assert "hunter2-not-it" not in log
    assert PASSWORDS["bob"] not in log
    assert "user 'bob': password mismatch" in log  # the attempt is logged, as NGINX does


def test_user_file_change_is_picked_up(tmp_path: Path) -> None:
    build(tmp_path)
    server = start_server(CONFIG, tmp_path)
    try:
        url = server.url("/private/a.txt")

        def status(user: str, password: str) -> int:
            return requests.get(url, auth=(user, password), timeout=5).status_code

        assert status("bob", PASSWORDS["bob"]) == 200
        assert status("dan", "dan pw") == 401
        # Rewritten in place: dan added (htpasswd -bm), alice removed.
        write_users(tmp_path / "users", BOB, CAROL, b"dan:$apr1$abcdefgh$zpcijZC1R1EMeVuNxpF1g.")
        poll(lambda: status("dan", "dan pw") == 200)
        assert status("alice", PASSWORDS["alice"]) == 401
        # Replaced by a rename (a new inode), as editors and htpasswd do.
        new = tmp_path / "users.new"
        write_users(new, ALICE)
        os.replace(new, tmp_path / "users")
        poll(lambda: status("alice", PASSWORDS["alice"]) == 200)
        assert status("bob", PASSWORDS["bob"]) == 401
        # Gone: 500 (NGINX cannot open it either); back: served again.
        (tmp_path / "users").unlink()
        poll(lambda: status("alice", PASSWORDS["alice"]) == 500)
        write_users(tmp_path / "users", ALICE)
        poll(lambda: status("alice", PASSWORDS["alice"]) == 200)
        assert server.process.poll() is None
    finally:
        server.stop()


def test_missing_user_file_stops_the_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.conf"
    (tmp_path / "www").mkdir()
    config.write_text(
        "server {\n    port 8080\n    root ./www\n    auth_basic x\n"
        "    auth_basic_user_file ./nope\n}\n"
    )
    done = run_cli(["-t", str(config)])
    assert done.returncode == 1
    assert f'{config}:5:26: auth_basic_user_file "./nope" does not exist' in done.stderr
