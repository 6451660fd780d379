"""Timeouts, faults, signals, start-up errors and load, each on its own server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.conftest import REPO, Server, free_port, read_all, run_cli, slow_download
from tests.proc import open_fds, wait_for

TIMEOUT_CONFIG = """
client_header_timeout 1
client_body_timeout 1
keepalive_timeout 1
send_timeout 2
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /up {
        root ./www
        methods GET POST
    }
}
"""


def make_www(directory: Path) -> Path:
    www = directory / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("<h1>home</h1>\n")
    (www / "big.bin").write_bytes(b"x" * (16 * 1024 * 1024))
    return www


def wait_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Read until the server closes; return what came and how long it took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = read_all(sock)
    return data, time.monotonic() - start


def test_stalled_head_gets_408_and_is_closed(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        data, elapsed = wait_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in data
    assert 0.5 < elapsed < 5
    assert requests.get(server.url("/")).status_code == 200


def test_header_deadline_is_not_extended_by_trickling(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG)
    with server.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        received = b""
        sock.settimeout(0.25)
        for _ in range(20):  # one byte every 0.25 s for up to 5 s
            try:
                sock.sendall(b"X")
            except OSError:
                break
            try:
                received += sock.recv(4096)
                if received:
                    break
            except TimeoutError:
                pass
        received += read_all(sock)
        elapsed = time.monotonic() - start
    assert received.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 3


def test_stalled_body_gets_408(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG)
    with server.connect() as sock:
        # An upload: a body its handler needs, so the server waits for it.
        sock.sendall(
            b"POST /up/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
        )
        data, elapsed = wait_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 5


def test_idle_keep_alive_and_silent_connections_are_closed(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data, elapsed = wait_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"<h1>home</h1>\n")
    assert 0.5 < elapsed < 5
    with server.connect() as sock:  # never sends a byte: closed without a response
        data, elapsed = wait_closed(sock, 10)
    assert data == b""
    assert elapsed < 5


def test_client_that_stops_reading_is_dropped_after_send_timeout(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(4)  # longer than send_timeout: the server must give up
        sock.settimeout(10)
        received = read_all(sock)
    assert len(received) < 16 * 1024 * 1024
    assert requests.get(server.url("/")).status_code == 200


FAULT_PLUGIN = """
from localhost.handlers import static
_serve = static.serve
def serve(request, *args, **kwargs):
    if request.path == "/boom":
        raise RuntimeError("injected fault")
    return _serve(request, *args, **kwargs)
static.serve = serve
"""


def test_handler_exception_is_500_and_the_server_goes_on(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(FAULT_PLUGIN)
    config = TIMEOUT_CONFIG.replace("keepalive_timeout 1", "keepalive_timeout 30")
    server: Server = server_factory(config, env={"PYTHONPATH": f"{plugin}{os.pathsep}{REPO}"})
    r = requests.get(server.url("/boom"))
    assert r.status_code == 500
    assert r.headers["Connection"] == "close"
    assert requests.get(server.url("/")).status_code == 200
    assert "RuntimeError: injected fault" in server.log()
    assert "Traceback" in server.log()


def test_sigterm_finishes_the_response_in_flight_then_exits_0(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG.replace("send_timeout 2", "send_timeout 30"))
    sock, first = slow_download(server)
    server.process.send_signal(signal.SIGTERM)
    sock.settimeout(10)
    rest = read_all(sock)
    sock.close()
    body = (first + rest).partition(b"\r\n\r\n")[2]
    assert len(body) == 16 * 1024 * 1024
    assert server.process.wait(10) == 0
    assert "shutting down" in server.log()
    assert "stopped" in server.log()


def test_sigint_on_an_idle_server_exits_0(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    server: Server = server_factory(TIMEOUT_CONFIG)
    assert server.stop(signal.SIGINT) == 0
    assert "received SIGINT" in server.log()


SIGNALS_WHEN_LISTENING = """
import signal, sys
from localhost.config import load
from localhost.server.master import Master
from localhost.server.worker import Worker

config = load(sys.argv[1])
worker = Worker(config)
worker.listen()
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
for sock in worker.sockets.values():
    sock.close()
master = Master(config, 2)
master.listen()
blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
print(signal.SIGINT in blocked and signal.SIGTERM in blocked)
"""


def test_signals_are_ours_before_any_socket_accepts(tmp_path: Path) -> None:
    # A client (or a test's readiness probe) may connect and signal as soon as
    # the socket listens: by then a SIGINT/SIGTERM must already be routed to
    # the loop (or blocked, in the master), never the default action.
    make_www(tmp_path)
    config = tmp_path / "c.conf"
    config.write_text(TIMEOUT_CONFIG.replace("{port0}", str(free_port())))
    result = subprocess.run(
        [sys.executable, "-c", SIGNALS_WHEN_LISTENING, str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"]


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    make_www(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "c.conf").write_text(TIMEOUT_CONFIG.replace("{port0}", str(port)))
        result = run_cli(["c.conf"], tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_config_gives_file_line_column_and_exit_1(tmp_path: Path) -> None:
    make_www(tmp_path)
    (tmp_path / "bad.conf").write_text(
        "server {\n    port 8080\n    root ./www\n    colour blue\n}\n"
    )
    result = run_cli(["bad.conf"], tmp_path)
    assert result.returncode == 1
    assert 'bad.conf:4:5: unknown directive "colour"' in result.stderr
    assert "    colour blue\n" in result.stderr and "^" in result.stderr
    assert "Traceback" not in result.stderr


def test_dash_t_checks_the_config(tmp_path: Path) -> None:
    make_www(tmp_path)
    (tmp_path / "good.conf").write_text(TIMEOUT_CONFIG.replace("{port0}", "8080"))
    result = run_cli(["-t", "good.conf"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "good.conf: syntax is ok"
    (tmp_path / "good.conf").write_text("server {\n  port 99999\n}\n")
    result = run_cli(["-t", "good.conf"], tmp_path)
    assert result.returncode == 1
    assert "good.conf:2:8:" in result.stderr


def test_default_config_path_is_config_conf(tmp_path: Path) -> None:
    result = run_cli(["-t"], tmp_path)
    assert result.returncode == 1
    assert "config.conf" in result.stderr
    make_www(tmp_path)
    (tmp_path / "config.conf").write_text(TIMEOUT_CONFIG.replace("{port0}", "8080"))
    result = run_cli(["-t"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "config.conf: syntax is ok"


def test_concurrent_load_is_fully_served_and_descriptors_return(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    config = TIMEOUT_CONFIG.replace("keepalive_timeout 1", "keepalive_timeout 30")
    server: Server = server_factory(config)
    pid = server.process.pid
    # The readiness probe's connection may still be open: wait for it to go.
    requests.get(server.url("/"), headers={"Connection": "close"})
    time.sleep(0.2)
    baseline = open_fds(pid)
    failures: list[str] = []

    def client() -> None:
        with requests.Session() as session:
            for _ in range(40):
                try:
                    r = session.get(server.url("/"))
                    if r.status_code != 200 or r.text != "<h1>home</h1>\n":
                        failures.append(f"status {r.status_code}")
                except requests.RequestException as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    # The sessions are closed: the server's descriptors go back to the baseline.
    assert wait_for(lambda: open_fds(pid) == baseline, 10), (open_fds(pid), baseline)


def test_past_worker_connections_new_clients_get_503_and_the_server_recovers(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    config = "worker_connections 5\n" + TIMEOUT_CONFIG.replace(
        "keepalive_timeout 1", "keepalive_timeout 30"
    )
    server: Server = server_factory(config)
    # Wait for the readiness probe's connection to be closed by the server.
    requests.get(server.url("/"), headers={"Connection": "close"})
    held = []
    answers = []
    for _ in range(8):
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answers.append(sock.recv(4096))
        held.append(sock)
    statuses = [answer[9:12] for answer in answers]
    # Five connections at most (one may still be the readiness probe's).
    assert statuses[:4] == [b"200"] * 4
    assert statuses[5:] == [b"503"] * 3
    data = answers[-1]
    assert b"Date: " in data and b"Connection: close" in data
    assert b"\r\nRetry-After: 1\r\n" in data  # the README's number
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url("/"), headers={"Connection": "close"}).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    assert requests.get(server.url("/")).status_code == 200
    assert wait_for(lambda: "worker_connections are not enough" in server.log())
