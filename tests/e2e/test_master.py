"""The process model end to end: workers, supervision, reload, stop, logs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Server, free_port, read_all, run_cli, slow_download
from tests.proc import children_of, live_children, wait_children, wait_for

CONFIG = """
worker_processes {workers}
worker_shutdown_timeout 3
pid ./server.pid
session_store ./sessions.db
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /session { session on }
}
"""
DEBUG = {"LOCALHOST_DEBUG_PID": "1"}


def make_site(root: Path) -> None:
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "index.html").write_text("home\n")
    (root / "www" / "big.bin").write_bytes(b"b" * (16 * 1024 * 1024))


def config(workers: int, extra: str = "") -> str:
    return CONFIG.replace("{workers}", str(workers)) + extra


def workers_of(server: Server) -> list[int]:
    """The master's workers as they are now (possibly still starting: see ``started``)."""
    return live_children(server.process.pid)


def started(server: Server, workers: int) -> list[int]:
    """The master's workers once all ``workers`` of them run; fails the test otherwise."""
    return wait_children(server.process.pid, workers)


class Load:
    """Clients that keep requesting ``/`` on new connections until stopped."""

    def __init__(self, server: Server, threads: int = 8) -> None:
        self.server = server
        self.ok = 0
        self.failed: list[str] = []
        self.pids: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        # Raw sockets: a light client, so that a short run makes thousands of requests.
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
                    sock.sendall(request)
                    data = read_all(sock)
            except OSError as exc:
                self.failed.append(repr(exc))
                continue
            if data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"home\n"):
                self.ok += 1
                pid = re.search(rb"X-Worker-PID: (\d+)", data)
                if pid:
                    self.pids.add(pid.group(1).decode())
            else:
                self.failed.append(repr(data[:80]))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    make_site(tmp_path)
    yield tmp_path


@pytest.mark.parametrize("workers", [2, 4])
def test_requests_spread_over_the_workers(server_factory, site: Path, workers: int) -> None:
    server: Server = server_factory(config(workers), env=DEBUG)
    pids = started(server, workers)
    with Load(server, threads=16) as load:
        time.sleep(1.5)
    assert load.failed == []
    assert len(load.pids) >= 2
    assert {int(p) for p in load.pids} <= set(pids)
    assert server.process.pid not in {int(p) for p in load.pids}  # the master never answers


def test_a_killed_worker_is_replaced_and_availability_holds(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2), env=DEBUG)
    before = started(server, 2)
    with Load(server) as load:
        time.sleep(0.5)
        os.kill(before[0], signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_for(
            lambda: len(workers_of(server)) == 2 and before[0] not in workers_of(server), 1.0
        )
        replaced_in = time.monotonic() - killed_at
        time.sleep(1.0)
    total = load.ok + len(load.failed)
    assert replaced_in < 1.0
    assert load.ok / total >= 0.999, (load.ok, load.failed)
    assert re.search(rf"worker {before[0]} exited unexpectedly \(killed by SIGKILL\)", server.log())


def test_reload_under_load_fails_nothing_and_applies(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2), env=DEBUG)
    old = started(server, 2)
    assert requests.get(server.url("/moved"), allow_redirects=False).status_code == 404
    server.config.write_text(
        server.config.read_text().replace(
            "location /session { session on }",
            "location /session { session on }\n    location /moved { redirect /elsewhere }",
        )
    )
    with Load(server) as load:
        time.sleep(0.3)
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: not set(old) & set(workers_of(server)) and len(workers_of(server)) == 2
        )
        time.sleep(0.5)
    assert load.failed == []
    assert load.ok > 0
    r = requests.get(server.url("/moved"), allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/elsewhere"


def test_reload_with_a_broken_config_keeps_the_old_one(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2))
    old = started(server, 2)
    server.config.write_text(server.config.read_text() + "\nbogus_directive 1\n")
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in server.log())
    line = next(line for line in server.log().splitlines() if "reload failed" in line)
    assert re.search(r"test\.conf:\d+:1: unknown directive \"bogus_directive\"", line)
    assert workers_of(server) == old
    assert requests.get(server.url("/")).text == "home\n"


def test_dash_s_reload_goes_through_the_pid_file(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2))
    assert wait_for(lambda: (site / "server.pid").exists())
    assert int((site / "server.pid").read_text()) == server.process.pid
    old = started(server, 2)
    result = run_cli(["-s", "reload", str(server.config)])
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: not set(old) & set(workers_of(server)) and len(workers_of(server)) == 2)
    assert requests.get(server.url("/")).text == "home\n"


def test_sigquit_lets_a_slow_response_finish(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2))
    master = server.process.pid
    workers = started(server, 2)
    sock, first = slow_download(server)
    server.process.send_signal(signal.SIGQUIT)
    # Both workers are stopping while the slow client keeps the response in flight.
    assert wait_for(lambda: server.log().count("received SIGQUIT, shutting down") == 2)
    sock.settimeout(10)
    received = len(first.partition(b"\r\n\r\n")[2])
    while received < 16 * 1024 * 1024:
        chunk = sock.recv(1 << 20)
        assert chunk, f"response cut at {received} bytes"
        received += len(chunk)
    sock.close()
    assert server.process.wait(10) == 0
    assert not children_of(master)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not (site / "server.pid").exists()


def test_sigterm_stops_everything_within_the_timeout(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2))
    master = server.process.pid
    workers = started(server, 2)
    sock, _ = slow_download(server)  # never read: only the timeout ends it
    start = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    assert time.monotonic() - start < 3 + 1.5  # worker_shutdown_timeout 3
    sock.close()
    assert not children_of(master)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_workers_exit_when_the_master_dies(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2))
    workers = started(server, 2)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(5)
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 5)


CRASH_PLUGIN = """
from localhost.server import worker
def run(self):
    raise RuntimeError("injected start-up failure")
worker.Worker.run = run
"""


def test_a_crash_loop_makes_the_master_give_up(server_factory, tmp_path: Path, site: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(CRASH_PLUGIN)
    env = {"PYTHONPATH": f"{plugin}{os.pathsep}{REPO}"}
    port = 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "crash.conf").write_text(config(2).replace("{port0}", str(port)))
    start = time.monotonic()
    result = run_cli([str(tmp_path / "crash.conf")], tmp_path, env, timeout=60)
    assert result.returncode == 1
    assert time.monotonic() - start < 20
    assert "giving up" in result.stderr
    assert "injected start-up failure" in result.stderr
    assert len(re.findall(r"started worker", result.stderr)) <= 2 + 5 + 2


def test_sessions_are_shared_by_the_workers(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2), env=DEBUG)
    started(server, 2)
    first = requests.get(server.url("/session"))
    cookie = {"LOCALHOST_SESSION": first.cookies["LOCALHOST_SESSION"]}
    seen = {first.headers["X-Worker-PID"]}
    visits = 1
    with Load(server, threads=4):  # keeps both workers busy, so both answer
        for _ in range(200):
            r = requests.get(
                server.url("/session"), cookies=cookie, headers={"Connection": "close"}
            )
            visits += 1
            assert r.json()["visits"] == visits
            seen.add(r.headers["X-Worker-PID"])
            if len(seen) == 2:
                break
    assert len(seen) == 2


def test_access_log_file_format_and_reopen(server_factory, site: Path) -> None:
    extra = "\n"
    text = (
        config(2).replace("pid ./server.pid", "pid ./server.pid\naccess_log ./access.log") + extra
    )
    server: Server = server_factory(text)
    requests.get(
        server.url("/index.html?q=1"),
        headers={"User-Agent": 'agent "quoted"', "Referer": "http://r/"},
    )
    log_file = site / "access.log"
    assert wait_for(lambda: log_file.exists() and "index.html" in log_file.read_text(), 5)
    line = next(line for line in log_file.read_text().splitlines() if "index.html" in line)
    pattern = (
        r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
        r'"GET /index\.html\?q=1 HTTP/1\.1" 200 5 "http://r/" "agent \\x22quoted\\x22" \d+\.\d{3}$'
    )
    assert re.match(pattern, line), line
    log_file.rename(site / "access.log.1")
    server.process.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: log_file.exists(), 5)
    requests.get(server.url("/after-rotation"))
    assert wait_for(lambda: "after-rotation" in log_file.read_text(), 5)
    assert "after-rotation" not in (site / "access.log.1").read_text()


def test_single_process_reload_in_place(server_factory, site: Path) -> None:
    server: Server = server_factory(config(1), env=DEBUG)
    with requests.Session() as client:
        first = client.get(server.url("/"))
        assert first.text == "home\n"
        # No master: the process started answers itself, and has no children.
        assert first.headers["X-Worker-PID"] == str(server.process.pid)
        assert workers_of(server) == []
        server.config.write_text(
            server.config.read_text().replace(
                "location /session", "location /moved { redirect /x }\n    location /session"
            )
        )
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in server.log())
        assert client.get(server.url("/")).text == "home\n"  # the kept connection still works
        assert client.get(server.url("/moved"), allow_redirects=False).status_code == 301
    server.config.write_text("server {\n  port x\n}\n")
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in server.log())
    assert 'test.conf:2:8: invalid port "x"' in server.log()
    assert requests.get(server.url("/moved"), allow_redirects=False).status_code == 301


def test_access_log_off_and_error_log_file(server_factory, site: Path) -> None:
    text = "access_log off\nerror_log ./error.log warn\n" + config(1)
    server: Server = server_factory(text)
    requests.get(server.url("/nope-marker"))
    server.stop()
    assert "nope-marker" not in server.log()
    error_log = (site / "error.log").read_text()
    assert "listening on" not in error_log  # info is below warn
    result = run_cli(["--version"])
    assert result.stdout.startswith("localhost ")


def test_startup_lines_and_quiet(server_factory, site: Path) -> None:
    server: Server = server_factory(config(2))
    assert wait_for(lambda: "worker process" in server.log())
    log = server.log()
    assert f"listening on http://127.0.0.1:{server.port}/" in log
    assert f"with 2 worker processes (pid {server.process.pid})" in log
    assert "test.conf" in log
    server.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (site / "q.conf").write_text(config(1).replace("{port0}", str(port)))
    process = subprocess.Popen(
        [sys.executable, "-m", "localhost", "-q", str(site / "q.conf")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=site,
    )
    assert wait_for(lambda: _accepts(port), 10)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"listening on" not in err


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_opens_and_closes_listen_addresses(server_factory, site: Path, workers: int) -> None:
    server: Server = server_factory(config(workers))
    extra = free_port()
    server.config.write_text(
        server.config.read_text().replace(f"port {server.port}", f"port {server.port} {extra}")
    )
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: _accepts(extra), 5)
    assert requests.get(server.url("/", port=extra)).text == "home\n"
    server.config.write_text(server.config.read_text().replace(f" {extra}", ""))
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: not _accepts(extra), 5)
    assert requests.get(server.url("/")).text == "home\n"
