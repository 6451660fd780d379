"""Sessions in Redis: a real ``redis-server`` on a loopback port, two server
instances sharing one session, expiry by TTL, a Redis that goes away.

Without the ``redis-server`` binary the tests are skipped with the reason,
except under CI (the ``CI`` environment variable set), where they fail:
``.ci/run`` installs Debian's ``redis-server``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from localhost.sessions import REDIS_PREFIX, RedisSessionStore, Session, StoreUnavailable
from tests.conftest import Server, free_port, run_cli, start_server
from tests.proc import wait_for

REDIS = shutil.which("redis-server")


class Redis:
    """A ``redis-server`` process of the test on 127.0.0.1:``port``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/3"

    def start(self) -> None:
        assert REDIS is not None
        self.process = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(self.answers, 10.0), "redis-server did not start"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command's raw reply (RESP), for assertions on what is stored."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as sock:
            sock.sendall(b"SELECT 3\r\n" + b"".join(parts))
            reply = b""
            while reply.count(b"\r\n") < 2 or not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.split(b"\r\n", 1)[1]  # after SELECT's +OK

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    if REDIS is None:
        reason = "redis-server is missing (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"Redis session tests cannot run under CI: {reason}")
        pytest.skip(reason)
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


CONFIG = """
session_store {store}
session_timeout {timeout}
server {{
    host 127.0.0.1
    port {{port0}}
    root ./www
    location /session {{ session on }}
    location /files {{ }}
}}
"""


def instance(directory: Path, store: str, timeout: str = "1h") -> Server:
    directory.mkdir()
    (directory / "www" / "files").mkdir(parents=True)
    (directory / "www" / "files" / "a.txt").write_text("plain\n")
    return start_server(CONFIG.format(store=store, timeout=timeout), directory)


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def cookie_of(response: requests.Response) -> str:
    value = response.cookies.get("LOCALHOST_SESSION")
    assert value, response.headers
    return value


def test_two_instances_share_one_session(
    redis_server: Redis, instances: list[Server], tmp_path: Path
) -> None:
    first = instance(tmp_path / "a", redis_server.url)
    instances.append(first)
    second = instance(tmp_path / "b", redis_server.url)
    instances.append(second)
    with requests.Session() as client:
        one = client.get(first.url("/session"), timeout=5)
        assert one.status_code == 200 and one.json()["visits"] == 1
        session_id = cookie_of(one)
        # The second machine knows the session the first one made.
        two = client.get(second.url("/session"), timeout=5)
        assert two.status_code == 200
        assert two.json()["visits"] == 2
        assert "Set-Cookie" not in two.headers
        three = client.get(first.url("/session"), timeout=5)
        assert three.json()["visits"] == 3
    # It lives in Redis, under its id, with a TTL of the session_timeout.
    assert b"visits" in redis_server.command("GET", REDIS_PREFIX + session_id)
    ttl = int(redis_server.command("TTL", REDIS_PREFIX + session_id).strip(b":\r\n"))
    assert 3500 < ttl <= 3600


def test_delete_on_one_instance_ends_it_on_the_other(
    redis_server: Redis, instances: list[Server], tmp_path: Path
) -> None:
    first = instance(tmp_path / "a", redis_server.url)
    second = instance(tmp_path / "b", redis_server.url)
    instances.extend([first, second])
    with requests.Session() as client:
        session_id = cookie_of(client.get(first.url("/session"), timeout=5))
        assert client.delete(second.url("/session"), timeout=5).status_code == 204
    reply = requests.get(
        first.url("/session"), cookies={"LOCALHOST_SESSION": session_id}, timeout=5
    )
    assert reply.json()["visits"] == 1
    assert cookie_of(reply) != session_id


def test_expiry_is_redis_ttl(redis_server: Redis, instances: list[Server], tmp_path: Path) -> None:
    server = instance(tmp_path / "a", redis_server.url, timeout="1s")
    instances.append(server)
    session_id = cookie_of(requests.get(server.url("/session"), timeout=5))
    key = REDIS_PREFIX + session_id
    assert wait_for(lambda: redis_server.command("EXISTS", key) == b":0\r\n", 5.0)
    reply = requests.get(
        server.url("/session"), cookies={"LOCALHOST_SESSION": session_id}, timeout=5
    )
    assert reply.status_code == 200
    assert cookie_of(reply) != session_id  # the expired id is not accepted


def test_forged_and_unknown_ids_get_a_new_session(
    redis_server: Redis, instances: list[Server], tmp_path: Path
) -> None:
    server = instance(tmp_path / "a", redis_server.url)
    instances.append(server)
    for forged in ("A" * 43, "../../etc/passwd", "x" * 500, "*3 FLUSHALL"):
        reply = requests.get(
            server.url("/session"), cookies={"LOCALHOST_SESSION": forged}, timeout=5
        )
        assert reply.status_code == 200
        assert reply.json()["visits"] == 1
        assert cookie_of(reply) != forged
    # Nothing the client sent became a key.
    assert redis_server.command("EXISTS", REDIS_PREFIX + "A" * 43) == b":0\r\n"


def test_redis_down_gives_503_for_session_locations_only(
    redis_server: Redis, instances: list[Server], tmp_path: Path
) -> None:
    server = instance(tmp_path / "a", redis_server.url)
    instances.append(server)
    assert requests.get(server.url("/session"), timeout=5).status_code == 200
    redis_server.stop()
    started = time.monotonic()
    down = requests.get(server.url("/session"), timeout=5)
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "1"
    # Files are served meanwhile, and no request waits for a dead Redis.
    for _ in range(20):
        assert requests.get(server.url("/files/a.txt"), timeout=5).text == "plain\n"
        assert requests.get(server.url("/session"), timeout=5).status_code == 503
    assert time.monotonic() - started < 4.0
    assert wait_for(lambda: "session store redis://127.0.0.1" in server.log(), 5.0)
    # Redis back on the same port: sessions work again.
    redis_server.start()
    assert wait_for(
        lambda: requests.get(server.url("/session"), timeout=5).status_code == 200, 10.0
    )


def test_a_hung_redis_does_not_hang_the_worker(instances: list[Server], tmp_path: Path) -> None:
    # A listener that accepts and never answers: a Redis that hangs.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        port = hung.getsockname()[1]
        server = instance(tmp_path / "a", f"redis://127.0.0.1:{port}/0")
        instances.append(server)
        started = time.monotonic()
        assert requests.get(server.url("/session"), timeout=5).status_code == 503
        assert time.monotonic() - started < 2.0
        assert requests.get(server.url("/files/a.txt"), timeout=5).status_code == 200


def test_store_semantics(redis_server: Redis) -> None:
    store = RedisSessionStore(redis_server.url, 60)
    try:
        session = store.create()
        assert store.get(session.id) is not None
        session.data["n"] = 5
        store.save(session)
        again = store.get(session.id)
        assert again is not None and again.data == {"n": 5}
        assert abs(again.created - session.created) < 1e-3
        store.delete(session.id)
        assert store.get(session.id) is None
        # save never brings a deleted session back
        store.save(session)
        assert store.get(session.id) is None
        assert store.get("not an id") is None
        with pytest.raises(ValueError):
            store.save(Session(session.id, 0, 0, {"x": "y" * 5000}))
    finally:
        store.close()
    redis_server.stop()
    down = RedisSessionStore(redis_server.url, 60)
    with pytest.raises(StoreUnavailable):
        down.create()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        down.get("A" * 43)  # at once: the store waits before trying again
    assert time.monotonic() - started < 0.1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("redis://127.0.0.1:notaport/0", "invalid Redis URL"),
        ("redis://127.0.0.1:6379/db", "the database must be a number"),
    ],
)
def test_bad_redis_urls_are_config_errors(tmp_path: Path, value: str, message: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f"session_store {value}\nserver {{\n    port 8080\n}}\n")
    result = run_cli(["-t", str(conf)])
    assert result.returncode != 0
    assert f"{conf}:1:15:" in result.stderr
    assert message in result.stderr


def test_redis_url_shown_by_dash_big_t(tmp_path: Path) -> None:
    conf = tmp_path / "ok.conf"
    conf.write_text("session_store redis://127.0.0.1:6379/2\nserver {\n    port 8080\n}\n")
    result = run_cli(["-T", str(conf)])
    assert result.returncode == 0, result.stderr
    assert "session_store redis://127.0.0.1:6379/2" in result.stdout
