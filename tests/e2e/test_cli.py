"""The command line end to end: -w, --log-level, -q, -s and the pid file."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import Server, run_cli
from tests.proc import live_children, wait_children, wait_for

CONFIG = """
pid ./server.pid
server {
    host 127.0.0.1
    port {port0}
    root ./www
}
"""
DEBUG = {"LOCALHOST_DEBUG_PID": "1"}


def make_www(root: Path) -> None:
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "index.html").write_text("home\n")


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def answered_by(server: Server) -> int:
    return int(
        requests.get(server.url("/"), headers={"Connection": "close"}).headers["X-Worker-PID"]
    )


# -- -w ------------------------------------------------------------------------


def test_dash_w_starts_that_many_workers_and_keeps_them_on_reload(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    server: Server = server_factory(CONFIG, env=DEBUG, args=["-w", "3"])  # the file says 1
    old = wait_children(server.process.pid, 3)
    assert answered_by(server) in old  # a worker answers, not the master
    assert wait_for(lambda: "with 3 worker processes" in server.log())
    result = run_cli(["-s", "reload", str(server.config)])
    assert result.returncode == 0, result.stderr
    # The new generation has -w's count too, not the file's.
    assert wait_for(lambda: not set(old) & set(live_children(server.process.pid)), 10)
    new = wait_children(server.process.pid, 3)
    assert answered_by(server) in new


def test_dash_w_1_is_one_process_whatever_the_file_says(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    server: Server = server_factory(
        "worker_processes 4\n" + CONFIG, env=DEBUG, args=["--workers", "1"]
    )
    assert answered_by(server) == server.process.pid
    assert live_children(server.process.pid) == []


def test_dash_w_auto_is_one_worker_per_cpu(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    cpus = os.cpu_count() or 1
    server: Server = server_factory(CONFIG, env=DEBUG, args=["-w", "auto"])
    if cpus == 1:  # one worker: no master
        assert answered_by(server) == server.process.pid
    else:
        assert answered_by(server) in wait_children(server.process.pid, cpus)
    assert wait_for(lambda: f"with {cpus} worker process" in server.log())


def test_dash_w_rejects_what_is_not_a_count(tmp_path: Path) -> None:
    make_www(tmp_path)
    (tmp_path / "c.conf").write_text(CONFIG.replace("{port0}", "8080"))
    for value in ("0", "-2", "two", "1025"):
        result = run_cli(["-w", value, "c.conf"], tmp_path)
        assert result.returncode == 2, value
        assert "expected a number from 1 to 1024, or auto" in result.stderr


# -- --log-level and -q --------------------------------------------------------


def reset_mid_download(server: Server) -> None:
    """Ask for a large file, then reset the connection while it is being sent."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_log_level_debug_shows_debug_lines(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    (tmp_path / "www" / "big.bin").write_bytes(b"b" * (8 * 1024 * 1024))
    # The file says error; the command line wins.
    text = "error_log stderr error\n" + CONFIG
    server: Server = server_factory(text, args=["--log-level", "debug"])
    reset_mid_download(server)
    assert wait_for(lambda: "[DEBUG]" in server.log() and "send failed" in server.log()), (
        server.log()
    )
    assert "listening on" in server.log()  # info is above debug


def test_default_level_info_hides_debug_lines(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    (tmp_path / "www" / "big.bin").write_bytes(b"b" * (8 * 1024 * 1024))
    server: Server = server_factory(CONFIG)
    reset_mid_download(server)
    requests.get(server.url("/marker"))
    server.stop()
    log = server.log()
    assert "listening on" in log and "/marker" in log  # the logs were written
    assert "[DEBUG]" not in log and "send failed" not in log


def test_log_level_error_and_quiet_hide_info_but_not_errors(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    for args in (["--log-level", "error"], ["-q"]):
        server: Server = server_factory(CONFIG, args=args)
        server.config.write_text(server.config.read_text() + "\nbogus_directive 1\n")
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda s=server: "reload failed" in s.log()), args  # type: ignore[misc]
        assert server.stop() == 0
        log = server.log()
        assert "[ERROR]" in log, args
        assert "[INFO]" not in log and "listening on" not in log, args


# -- -s ------------------------------------------------------------------------


def test_dash_s_quit_and_stop_end_the_server_through_the_pid_file(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    pid_file = tmp_path / "server.pid"
    for command, name in (("quit", "SIGQUIT"), ("stop", "SIGTERM")):
        server: Server = server_factory(CONFIG, args=["-w", "2"])
        wait_children(server.process.pid, 2)
        assert int(pid_file.read_text()) == server.process.pid
        result = run_cli(["-s", command, str(server.config)])
        assert result.returncode == 0, result.stderr
        assert server.process.wait(10) == 0
        assert f"received {name}, stopping the workers" in server.log()
        assert not pid_file.exists()  # removed by the server on its way out


def test_dash_s_reopen_makes_every_process_write_to_new_files(
    server_factory, tmp_path: Path
) -> None:
    make_www(tmp_path)
    text = "error_log ./error.log info\naccess_log ./access.log\n" + CONFIG
    server: Server = server_factory(text, args=["-w", "2"])
    master = server.process.pid
    workers = wait_children(master, 2)
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    requests.get(server.url("/before-rotation"))
    assert wait_for(lambda: access_log.exists() and "before-rotation" in access_log.read_text())
    assert wait_for(lambda: error_log.exists())
    error_log.rename(tmp_path / "error.log.1")
    access_log.rename(tmp_path / "access.log.1")
    result = run_cli(["-s", "reopen", str(server.config)])
    assert result.returncode == 0, result.stderr

    def new_error_log() -> str:
        return error_log.read_text() if error_log.exists() else ""

    assert wait_for(lambda: all(f"{pid}: log files reopened" in new_error_log() for pid in workers))
    requests.get(server.url("/after-rotation"), headers={"Connection": "close"})
    assert wait_for(lambda: access_log.exists() and "after-rotation" in access_log.read_text())
    assert server.stop() == 0
    # The master reopened its file too: its last lines are in the new one.
    assert f"{master}: log files reopened" in new_error_log()
    assert f"{master}: stopped" in new_error_log()
    old_error_log = (tmp_path / "error.log.1").read_text()
    assert "log files reopened" not in old_error_log and "stopped" not in old_error_log
    assert "after-rotation" not in (tmp_path / "access.log.1").read_text()


def test_dash_s_without_a_running_server_is_a_clear_error(tmp_path: Path) -> None:
    make_www(tmp_path)
    (tmp_path / "c.conf").write_text(CONFIG.replace("{port0}", "8080"))
    pid_file = tmp_path / "server.pid"  # relative paths are from the config's folder
    # No pid file at all, one naming a process that is gone, and garbage.
    stale = dead_pid()
    for content, reason in (
        (None, "cannot read server.pid: No such file or directory"),
        (f"{stale}\n", f"no process {stale} (from server.pid): is the server running?"),
        ("not a number\n", "server.pid holds no process id ('not a number')"),
    ):
        if content is not None:
            pid_file.write_text(content)
        result = run_cli(["-s", "stop", "c.conf"], tmp_path)
        assert result.returncode == 1, content
        assert reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    (tmp_path / "c.conf").write_text(
        CONFIG.replace("pid ./server.pid\n", "").replace("{port0}", "8080")
    )
    result = run_cli(["-s", "reload", "c.conf"], tmp_path)
    assert result.returncode == 1
    assert "has no pid directive" in result.stderr


def test_a_stale_pid_file_is_overwritten_at_start_up(server_factory, tmp_path: Path) -> None:
    make_www(tmp_path)
    pid_file = tmp_path / "server.pid"
    stale = dead_pid()
    pid_file.write_text(f"{stale}\n")
    server: Server = server_factory(CONFIG)
    assert wait_for(lambda: pid_file.read_text().strip() == str(server.process.pid))
    assert requests.get(server.url("/")).text == "home\n"
    result = run_cli(["-s", "stop", str(server.config)])
    assert result.returncode == 0, result.stderr
    assert server.process.wait(10) == 0
    assert not pid_file.exists()


def test_a_server_that_cannot_listen_leaves_the_pid_file_alone(
    server_factory, tmp_path: Path
) -> None:
    # A second start on a busy port must not take over the running server's pid file.
    make_www(tmp_path)
    server: Server = server_factory(CONFIG)
    pid_file = tmp_path / "server.pid"
    assert wait_for(lambda: pid_file.exists())
    result = run_cli([str(server.config)], tmp_path, timeout=20)
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert int(pid_file.read_text()) == server.process.pid
