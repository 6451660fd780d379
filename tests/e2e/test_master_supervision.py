"""Master supervision: a hung worker is replaced (``worker_timeout``); the master's own log lines are flushed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.conftest import start_server
from tests.proc import live_children, wait_children, wait_for

CONFIG = """
worker_processes 2
worker_timeout {timeout}
server {{
    host 127.0.0.1
    port {{port0}}
    root ./www
}}
"""


def _site(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("home\n")


def test_a_hung_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    _site(tmp_path)
    server = start_server(CONFIG.format(timeout="2s"), tmp_path)
    try:
        workers = wait_children(server.process.pid, 2)
        hung = workers[0]
        # A stopped process runs no loop: exactly what a worker stuck in a
        # handler looks like from the master.
        os.kill(hung, signal.SIGSTOP)

        def replaced() -> bool:
            now = live_children(server.process.pid)
            return hung not in now and len(now) == 2

        assert wait_for(replaced, 15.0), live_children(server.process.pid)
        assert wait_for(lambda: f"worker {hung} did not answer its heartbeat" in server.log())
        assert "worker_timeout 2.0 s" in server.log()
        # The healthy worker and the new one serve.
        for _ in range(4):
            assert requests.get(server.url("/"), timeout=5).text == "home\n"
    finally:
        server.stop()


def test_busy_but_healthy_workers_are_left_alone(tmp_path: Path) -> None:
    _site(tmp_path)
    server = start_server(CONFIG.format(timeout="1s"), tmp_path)
    try:
        workers = wait_children(server.process.pid, 2)
        # Three timeouts' worth of requests and idle time must pass with no
        # replacement: the heartbeat comes from the loop's own timer. What is
        # asserted is that nothing happens, so time has to go by; the log is
        # polled meanwhile so that a wrong kill fails at once.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert requests.get(server.url("/"), timeout=5).status_code == 200
            assert not wait_for(lambda: "did not answer its heartbeat" in server.log(), 0.1)
        assert live_children(server.process.pid) == workers
        assert "did not answer its heartbeat" not in server.log()
    finally:
        server.stop()


def test_worker_timeout_0_turns_the_heartbeat_off(tmp_path: Path) -> None:
    _site(tmp_path)
    server = start_server(CONFIG.format(timeout="0"), tmp_path)
    try:
        workers = wait_children(server.process.pid, 2)
        os.kill(workers[0], signal.SIGSTOP)
        assert not wait_for(lambda: workers[0] not in live_children(server.process.pid), 2.5)
        os.kill(workers[0], signal.SIGCONT)
    finally:
        server.stop()


def test_the_master_writes_its_info_lines_within_a_second(tmp_path: Path) -> None:
    _site(tmp_path)
    server = start_server("error_log ./error.log info\n" + CONFIG.format(timeout="30s"), tmp_path)
    try:
        workers = wait_children(server.process.pid, 2)
        error_log = tmp_path / "error.log"
        assert wait_for(
            lambda: (
                error_log.exists()
                and all(f"started worker {pid}" in error_log.read_text() for pid in workers)
            ),
            3.0,
        )
    finally:
        server.stop()
