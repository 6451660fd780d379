"""The command line without a configuration file (``localhost --root DIR``), the
same flags over a file's values, and ``-T`` (the effective configuration)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Server, free_port, read_all, run_cli, start_server
from tests.proc import wait_for


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www" / "sub").mkdir(parents=True)
    (tmp_path / "www" / "index.html").write_text("home\n")
    (tmp_path / "www" / "a.txt").write_text("a\n")
    (tmp_path / "www" / "sub" / "b.txt").write_text("b\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.html").write_text("other\n")
    return tmp_path


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def serve(site: Path, servers: list[Server], *args: str) -> Server:
    """``python -m localhost ARGS`` in ``site`` (no configuration file), once it listens."""
    port = free_port()
    log_path = site / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localhost", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=site,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    server = Server(process, [port], site / "none.conf", log_path)
    servers.append(server)

    def listening() -> bool:
        assert process.poll() is None, server.log()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    assert wait_for(listening, 15), server.log()
    return server


# -- --root without a file ------------------------------------------------------------


def test_root_serves_a_folder_without_a_configuration_file(
    site: Path, servers: list[Server]
) -> None:
    server = serve(site, servers, "--root", "www")
    assert requests.get(server.url("/")).text == "home\n"
    assert requests.get(server.url("/a.txt")).text == "a\n"
    # Listing is off by default: a folder without index.html is refused.
    assert requests.get(server.url("/sub/")).status_code == 403
    assert requests.get(server.url("/missing")).status_code == 404


def test_listing_lists_folders(site: Path, servers: list[Server]) -> None:
    server = serve(site, servers, "--root", "www", "--listing")
    response = requests.get(server.url("/sub/"))
    assert response.status_code == 200
    assert 'href="b.txt"' in response.text


def test_the_defaults_are_127_0_0_1_port_8080_and_no_listing(site: Path) -> None:
    result = run_cli(["-T", "--root", "www"], site)
    assert result.returncode == 0, result.stderr
    assert "    listen 127.0.0.1:8080;\n" in result.stdout
    assert f"    root {site}/www;" in result.stdout
    assert "        directory_listing off;\n" in result.stdout
    assert "# no configuration file" in result.stdout
    assert result.stderr == "command line: syntax is ok\n"


def test_a_missing_root_is_an_error_naming_the_flag(site: Path) -> None:
    result = run_cli(["--root", "nowhere", "--port", str(free_port())], site)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f'localhost: command line:1:8: root "nowhere" does not exist (resolved to {site}/nowhere)\n'
        "    --root nowhere\n"
        "           ^\n"
    )


def test_timeout_ms_closes_a_silent_connection(site: Path, servers: list[Server]) -> None:
    server = serve(site, servers, "--root", "www", "--timeout-ms", "300")
    with server.connect(timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")  # a head that never ends
        read_all(sock)  # returns when the server closes
        elapsed = time.monotonic() - start
    # The header timeout is 300 ms instead of 60 s.
    assert elapsed < 5, elapsed


def test_timeout_ms_ends_an_idle_keep_alive_connection(site: Path, servers: list[Server]) -> None:
    server = serve(site, servers, "--root", "www", "--timeout-ms", "300")
    with server.connect(timeout=10) as sock:
        sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        data = read_all(sock)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in data
    assert elapsed < 5, elapsed


def test_max_header_size_limits_the_request_head(site: Path, servers: list[Server]) -> None:
    small = serve(site, servers, "--root", "www", "--max-header-size", "1k")
    big = {"X-Big": "x" * 1500}
    assert requests.get(small.url("/a.txt"), headers=big).status_code == 431
    assert requests.get(small.url("/a.txt"), headers={"X-Big": "x" * 500}).status_code == 200
    # A request line longer than the limit is a 414 (below the default 8 KiB).
    assert requests.get(small.url("/a.txt?" + "q" * 1500)).status_code == 414


def test_without_max_header_size_the_same_head_is_fine(site: Path, servers: list[Server]) -> None:
    server = serve(site, servers, "--root", "www")
    assert requests.get(server.url("/a.txt"), headers={"X-Big": "x" * 1500}).status_code == 200


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-header-size", "100"), ("--max-header-size", "2m"), ("--timeout-ms", "0")],
)
def test_bad_flag_values_are_refused(site: Path, flag: str, value: str) -> None:
    result = run_cli(["--root", "www", flag, value], site)
    assert result.returncode == 2
    assert f"argument {flag}: expected" in result.stderr


# -- the same flags over a file -----------------------------------------------------------


CONFIG = """
server {
    listen 127.0.0.1:{port0}
    root ./www
    client_header_timeout 60s
    location /sub { root ./www/sub }
}
"""


def write_config(site: Path) -> int:
    """Write ``CONFIG`` as site/test.conf; returns the port the file names."""
    port = free_port()
    (site / "test.conf").write_text(CONFIG.replace("{port0}", str(port)))
    return port


def test_flags_override_the_files_values(site: Path, servers: list[Server]) -> None:
    file_port = write_config(site)
    server = serve(site, servers, "--root", "other", "--listing", "test.conf")
    assert requests.get(server.url("/")).text == "other\n"  # --root
    listing = requests.get(server.url("/sub/"))  # its own root stays; --listing
    assert listing.status_code == 200 and 'href="b.txt"' in listing.text
    assert not _accepts(file_port)  # --port replaced the file's port


def test_without_flags_the_file_decides(site: Path, servers: list[Server]) -> None:
    server = start_server(CONFIG, site)
    servers.append(server)
    assert requests.get(server.url("/")).text == "home\n"
    assert requests.get(server.url("/sub/")).status_code == 403


def test_the_overrides_survive_a_reload(site: Path, servers: list[Server]) -> None:
    write_config(site)
    server = serve(site, servers, "--root", "other", "test.conf")
    (site / "other" / "index.html").write_text("other, reloaded\n")
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload" in server.log().lower(), 10), server.log()
    assert requests.get(server.url("/")).text == "other, reloaded\n"
    assert "ERROR" not in server.log()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# -- -T -----------------------------------------------------------------------------------


def test_dash_capital_t_prints_the_effective_configuration(site: Path) -> None:
    (site / "sites").mkdir()
    (site / "main.conf").write_text("include sites/*.conf\n")
    (site / "sites" / "a.conf").write_text(
        "server {\n    listen 127.0.0.1:8080 default_server\n    root ./www\n"
        "    error_page 404 ./www/index.html\n"
        "    location /sub {\n        alias ./www/sub\n        autoindex on\n"
        "        client_max_body_size 10k\n    }\n}\n"
    )
    result = run_cli(["-T", "main.conf"], site)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "main.conf: syntax is ok\n"
    out = result.stdout
    # nginx -T's part: every file, whole.
    assert f"# configuration file {site}/main.conf:\ninclude sites/*.conf\n" in out
    assert f"# configuration file {site}/sites/a.conf:\nserver {{\n" in out
    effective = out[out.index("# The effective configuration") :]
    # Includes expanded, defaults filled in, each location's effective values.
    for line in [
        "worker_processes 1;",
        f"server {{  # {site}/sites/a.conf:1",
        "    listen 127.0.0.1:8080 default_server;",
        "    keepalive_timeout 75s;",
        "    keepalive_requests 1000;",
        f"    location /sub {{  # {site}/sites/a.conf:5",
        "        # handlers: GET HEAD -> static; OPTIONS -> options",
        f'        root {site}/www/sub;  # replaces the prefix "/sub" (NGINX\'s alias)',
        "        index index.html;",
        "        directory_listing on;",
        "        body_limit 10k;",
        f"        error_page 404 {site}/www/index.html;  # a file",
        f"    root {site}/www;",
        "    location / {  # implicit: the server's root at /",
        f"        # root {site}/www: inherited; the request path is appended to it (NGINX's root)",
        "        directory_listing off;",
        "        body_limit 1m;",
    ]:
        assert line + "\n" in effective, line


def test_dash_capital_t_on_a_bad_file_exits_1_with_the_error(site: Path) -> None:
    (site / "main.conf").write_text("server {\n    listen 80\n    include nope.conf\n}\n")
    result = run_cli(["-T", "main.conf"], site)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith('localhost: main.conf:3:13: include "nope.conf" does not exist')
