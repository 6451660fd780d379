"""CGI/1.1 end to end: environment, bodies, streaming, failures, timeouts, reaping."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, read_all, recv_until, start_server
from tests.proc import children_of, wait_for

CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    cgi_timeout 1
    location /cgi-bin {
        root ./cgi-bin
        cgi .py python3
        cgi .sh sh
        methods GET POST DELETE
        body_limit 20M
    }
    location /no-interpreter {
        root ./cgi-bin
        cgi .py ./interpreter/python
    }
}
"""
# README: at most max(16, 4 × CPUs) scripts run at once in a worker.
MAX_RUNNING = max(16, 4 * (os.cpu_count() or 1))

SCRIPTS = {
    "hello.py": 'print("Content-Type: text/plain")\nprint()\nprint("Hello from CGI")\n',
    "env.py": (
        "import json, os, sys\n"
        'sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n")\n'
        "sys.stdout.write(json.dumps(dict(os.environ)))\n"
    ),
    "echo.py": (
        "import os, sys\n"
        "data = sys.stdin.buffer.read()\n"
        'sys.stdout.buffer.write(b"Content-Type: application/octet-stream\\n")\n'
        'sys.stdout.buffer.write(b"X-Length: %d\\n" % len(data))\n'
        'sys.stdout.buffer.write(b"X-Content-Length: " + os.environ.get("CONTENT_LENGTH", "none").encode() + b"\\n\\n")\n'
        "sys.stdout.buffer.write(data)\n"
    ),
    "sleep.py": "import time\ntime.sleep(3600)\n",
    "crash.py": 'import sys\nsys.stderr.write("something broke badly\\n")\nsys.exit(3)\n',
    "garbage.py": 'print("this is not a header")\nprint()\nprint("body")\n',
    "nothing.py": "pass\n",
    "status.py": 'print("Status: 418 I\'m a teapot")\nprint("Content-Type: text/plain")\nprint("X-Custom: yes")\nprint()\nprint("short and stout")\n',
    "local.py": 'print("Location: /cgi-bin/hello.py")\nprint()\n',
    "client.py": 'print("Location: https://example.com/elsewhere")\nprint()\n',
    "cycle.py": 'print("Location: /cgi-bin/cycle.py")\nprint()\n',
    "hops.py": (  # hops.py?N redirects locally to hops.py?N-1, ..., hops.py?0 answers
        "import os\n"
        'left = int(os.environ["QUERY_STRING"])\n'
        "if left:\n"
        '    print(f"Location: /cgi-bin/hops.py?{left - 1}")\n'
        "    print()\n"
        "else:\n"
        '    print("Content-Type: text/plain")\n'
        "    print()\n"
        '    print("arrived")\n'
    ),
    "stall.py": (  # starts its answer, then hangs past cgi_timeout
        "import sys, time\n"
        'sys.stdout.write("Content-Type: text/plain\\n\\npartial answer\\n")\n'
        "sys.stdout.flush()\n"
        "time.sleep(3600)\n"
    ),
    "stall_length.py": (  # the same with a Content-Length it never reaches
        "import sys, time\n"
        'sys.stdout.write("Content-Type: text/plain\\nContent-Length: 100\\n\\npartial answer\\n")\n'
        "sys.stdout.flush()\n"
        "time.sleep(3600)\n"
    ),
    "big.py": (
        "import sys, random\n"
        "random.seed(7)\n"
        'sys.stdout.buffer.write(b"Content-Type: application/octet-stream\\n\\n")\n'
        "for _ in range(80):\n"
        "    sys.stdout.buffer.write(random.randbytes(65536))\n"
    ),
    "length.py": 'import sys\nsys.stdout.write("Content-Type: text/plain\\nContent-Length: 5\\n\\nhello")\n',
    "short.py": 'import sys\nsys.stdout.write("Content-Type: text/plain\\nContent-Length: 50\\n\\nhello")\n',
    "slowstart.py": (
        "import sys, time\n"
        'sys.stdout.write("Content-Type: text/plain\\n\\nfirst\\n")\n'
        "sys.stdout.flush()\n"
        "time.sleep(0.3)\n"
        'sys.stdout.write("second\\n")\n'
    ),
    "hello.sh": 'printf "Content-Type: text/plain\\r\\n\\r\\n"\necho "hello from sh"\n',
    "sub/inner.py": 'import os\nprint("Content-Type: text/plain")\nprint()\nprint(os.getcwd())\n',
}


def make_broken_interpreter(root: Path) -> None:
    """An interpreter that exists (the config checks that) but cannot start: its
    exec fails as for a missing one."""
    (root / "interpreter").mkdir()
    (root / "interpreter" / "python").write_text("#!/nonexistent/python\n")
    (root / "interpreter" / "python").chmod(0o755)


@pytest.fixture(scope="module")
def cgi_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cgi")
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text("home\n")
    for name, text in SCRIPTS.items():
        path = root / "cgi-bin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    make_broken_interpreter(root)
    server = start_server(CONFIG, root, env={"LEAKY_SECRET": "do-not-pass"})
    yield server
    server.stop()


def test_hello(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/hello.py"))
    assert r.status_code == 200
    assert r.text == "Hello from CGI\n"
    assert r.headers["Content-Type"] == "text/plain"
    head = requests.head(cgi_site.url("/cgi-bin/hello.py"))
    assert head.status_code == 200 and head.content == b""


def test_shell_script(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/hello.sh"))
    assert r.status_code == 200 and r.text == "hello from sh\n"


def test_working_directory_is_the_scripts_folder(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/sub/inner.py"))
    assert r.text.strip().endswith("cgi-bin/sub")


def test_meta_variables(cgi_site: Server) -> None:
    r = requests.get(
        cgi_site.url("/cgi-bin/env.py/extra/path?x=1&y=%20"),
        headers={"X-Custom": "a", "Proxy": "http://evil/", "User-Agent": "tester", "X_Under": "no"},
    )
    env = r.json()
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["SCRIPT_FILENAME"].endswith("/cgi-bin/env.py")
    assert env["PATH_INFO"] == "/extra/path"
    assert env["PATH_TRANSLATED"].endswith("/cgi-bin/extra/path")
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["REQUEST_URI"] == "/cgi-bin/env.py/extra/path?x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(cgi_site.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("localhost/")
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["DOCUMENT_ROOT"].endswith("/cgi-bin")
    assert env["HTTP_X_CUSTOM"] == "a"
    assert env["HTTP_USER_AGENT"] == "tester"
    assert "HTTP_PROXY" not in env
    assert "HTTP_X_UNDER" not in env
    assert "CONTENT_LENGTH" not in env
    assert "LEAKY_SECRET" not in env
    assert set(env) - {"PATH"} <= {k for k in env if k.isupper()}
    assert env["PATH"]


def test_query_string_is_empty_without_query_and_repeated_fields_join(cgi_site: Server) -> None:
    raw = cgi_site.raw(
        b"GET /cgi-bin/env.py HTTP/1.1\r\nHost: h.example:8080\r\nX-Rep: 1\r\nX-Rep: 2\r\nConnection: close\r\n\r\n"
    )
    env = json.loads(raw.partition(b"\r\n\r\n")[2].split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0])
    assert env["QUERY_STRING"] == ""
    assert env["PATH_INFO"] == ""
    assert "PATH_TRANSLATED" not in env
    assert env["HTTP_X_REP"] == "1, 2"
    assert env["SERVER_NAME"] == "h.example"


def test_post_body_reaches_stdin_with_content_length(cgi_site: Server) -> None:
    r = requests.post(
        cgi_site.url("/cgi-bin/echo.py"),
        data=b"a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert r.content == b"a=1&b=2"
    assert r.headers["X-Content-Length"] == "7"


def test_chunked_post_arrives_dechunked(cgi_site: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"hello "
        yield b"chunked "
        yield b"world"

    r = requests.post(cgi_site.url("/cgi-bin/echo.py"), data=chunks())
    assert r.status_code == 200
    assert r.content == b"hello chunked world"
    assert r.headers["X-Content-Length"] == "19"
    assert r.headers["X-Length"] == "19"


def test_large_body_round_trip(cgi_site: Server) -> None:
    body = os.urandom(3 * 1024 * 1024 + 5)
    r = requests.post(cgi_site.url("/cgi-bin/echo.py"), data=body)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(body).digest()


def test_status_and_extra_fields_pass_through(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/status.py"))
    assert r.status_code == 418
    assert r.headers["X-Custom"] == "yes"
    assert r.text == "short and stout\n"


def test_streamed_output_is_chunked_and_whole(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/big.py"))
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    import random

    rng = random.Random(7)
    expected = b"".join(rng.randbytes(65536) for _ in range(80))
    assert r.content == expected


def test_http10_gets_a_close_delimited_body(cgi_site: Server) -> None:
    raw = cgi_site.raw(b"GET /cgi-bin/hello.py HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert b"Connection: close" in head
    assert body == b"Hello from CGI\n"


def test_script_content_length_is_kept(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/length.py"))
    assert r.headers["Content-Length"] == "5" and r.text == "hello"


def test_script_shorter_than_its_content_length_drops_the_connection(cgi_site: Server) -> None:
    raw = cgi_site.raw(b"GET /cgi-bin/short.py HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"hello")  # then closed: the client sees the body is incomplete


def test_output_is_streamed_as_it_arrives(cgi_site: Server) -> None:
    with cgi_site.connect() as sock:
        sock.sendall(b"GET /cgi-bin/slowstart.py HTTP/1.1\r\nHost: x\r\n\r\n")
        first = recv_until(sock, b"first")
        assert b"second" not in first  # the script sleeps 0.3 s before writing it
        rest = recv_until(sock, b"\r\n0\r\n\r\n")
        assert b"second" in rest


@pytest.mark.parametrize("script", ["garbage.py", "nothing.py", "crash.py"])
def test_bad_scripts_get_502_and_the_server_goes_on(cgi_site: Server, script: str) -> None:
    r = requests.get(cgi_site.url(f"/cgi-bin/{script}"))
    assert r.status_code == 502
    assert requests.get(cgi_site.url("/cgi-bin/hello.py")).status_code == 200


def test_stderr_goes_to_the_log_with_the_script_name(cgi_site: Server) -> None:
    requests.get(cgi_site.url("/cgi-bin/crash.py"))
    deadline = time.monotonic() + 5
    while "something broke badly" not in cgi_site.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in cgi_site.log().splitlines() if "something broke badly" in line)
    assert "/cgi-bin/crash.py" in line


def test_redirects(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/local.py"), allow_redirects=False)
    assert r.status_code == 200 and r.text == "Hello from CGI\n"
    r = requests.get(cgi_site.url("/cgi-bin/client.py"), allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "https://example.com/elsewhere"
    r = requests.get(cgi_site.url("/cgi-bin/cycle.py"), allow_redirects=False)
    assert r.status_code == 500


def test_at_most_5_local_redirects_in_a_row(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/cgi-bin/hops.py?5"), allow_redirects=False)
    assert r.status_code == 200 and r.text == "arrived\n"
    r = requests.get(cgi_site.url("/cgi-bin/hops.py?6"), allow_redirects=False)
    assert r.status_code == 500


def test_missing_script_is_404(cgi_site: Server) -> None:
    assert requests.get(cgi_site.url("/cgi-bin/none.py")).status_code == 404


def test_an_interpreter_that_cannot_start_is_502(cgi_site: Server) -> None:
    r = requests.get(cgi_site.url("/no-interpreter/hello.py"))
    assert r.status_code == 502
    assert wait_for(lambda: "/no-interpreter/hello.py could not start" in cgi_site.log())
    assert requests.get(cgi_site.url("/cgi-bin/hello.py")).text == "Hello from CGI\n"


@pytest.mark.parametrize("script", ["stall.py", "stall_length.py"])
def test_timeout_after_the_answer_started_closes_the_connection(
    cgi_site: Server, script: str
) -> None:
    # The status line is out: too late for a 504. Closing before the end of the
    # body (no last chunk; fewer bytes than Content-Length) tells the client
    # the answer is incomplete.
    with cgi_site.connect(timeout=10) as sock:
        sock.sendall(f"GET /cgi-bin/{script} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = recv_until(sock, b"partial answer\n")
        started = time.monotonic()
        data = first + read_all(sock)
        waited = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 200 ")
    assert waited < 1 + 1  # cgi_timeout 1
    head, _, body = data.partition(b"\r\n\r\n")
    if script == "stall.py":
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"f\r\npartial answer\n\r\n"  # and no last chunk
    else:
        assert b"Content-Length: 100" in head
        assert body == b"partial answer\n"
    assert wait_for(lambda: not children_of(cgi_site.process.pid))
    assert requests.get(cgi_site.url("/cgi-bin/hello.py")).text == "Hello from CGI\n"


def test_timeout_gives_504_while_others_are_served(cgi_site: Server) -> None:
    result: dict[str, object] = {}

    def slow() -> None:
        start = time.monotonic()
        result["response"] = requests.get(cgi_site.url("/cgi-bin/sleep.py"))
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.2)
    latencies = []
    for _ in range(5):
        start = time.monotonic()
        assert requests.get(cgi_site.url("/")).status_code == 200
        latencies.append(time.monotonic() - start)
    thread.join(10)
    assert statistics.median(latencies) < 0.1
    response = result["response"]
    assert isinstance(response, requests.Response) and response.status_code == 504
    assert float(result["elapsed"]) < 1 + 1  # type: ignore[arg-type]


def test_client_going_away_kills_the_script(cgi_site: Server) -> None:
    with cgi_site.connect() as sock:
        sock.sendall(b"GET /cgi-bin/sleep.py HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: children_of(cgi_site.process.pid))
    assert wait_for(lambda: not children_of(cgi_site.process.pid), 0.9)


def test_no_zombies_after_many_runs(cgi_site: Server) -> None:
    with requests.Session() as session:
        for index in range(200):
            script = "hello.py" if index % 4 else "crash.py"
            session.get(cgi_site.url(f"/cgi-bin/{script}"))
    assert wait_for(lambda: not children_of(cgi_site.process.pid))


def test_pipelined_request_after_a_cgi_response(cgi_site: Server) -> None:
    with cgi_site.connect() as sock:
        sock.sendall(
            b"GET /cgi-bin/hello.py HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        sock.settimeout(5)
        data = read_all(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.endswith(b"home\n")


def test_client_closing_mid_body_leaves_nothing_running(cgi_site: Server) -> None:
    with socket.create_connection(("127.0.0.1", cgi_site.port)) as sock:
        sock.sendall(
            b"POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc"
        )
    assert wait_for(lambda: not children_of(cgi_site.process.pid), 2)
    assert requests.get(cgi_site.url("/cgi-bin/hello.py")).status_code == 200


COUNTING = (
    "import os, time\n"
    "here = os.path.join(os.environ['DOCUMENT_ROOT'], 'running')\n"
    "mine = os.path.join(here, str(os.getpid()))\n"
    "open(mine, 'w').close()\n"
    "seen = len(os.listdir(here))\n"
    "time.sleep(0.4)\n"
    "os.unlink(mine)\n"
    "print('Content-Type: text/plain')\n"
    "print()\n"
    "print(seen)\n"
)


def test_a_burst_is_queued_not_run_all_at_once(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "cgi-bin" / "running").mkdir(parents=True)
    (tmp_path / "cgi-bin" / "count.py").write_text(COUNTING)
    make_broken_interpreter(tmp_path)
    server = start_server(CONFIG.replace("cgi_timeout 1", "cgi_timeout 30"), tmp_path)
    try:
        results: list[tuple[int, str]] = []

        def fetch() -> None:
            r = requests.get(server.url("/cgi-bin/count.py"), timeout=60)
            results.append((r.status_code, r.text))

        threads = [threading.Thread(target=fetch) for _ in range(MAX_RUNNING + 8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert len(results) == MAX_RUNNING + 8
        assert all(status == 200 for status, _ in results), results
        seen = [int(text) for _, text in results]
        # Each script counted the scripts running beside it: never over the cap.
        assert max(seen) <= MAX_RUNNING, seen
        assert wait_for(lambda: not children_of(server.process.pid))
    finally:
        server.stop()


QUEUE_CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /slow {
        root ./slow
        cgi .py python3
        cgi_timeout 4
    }
    location /fast {
        root ./fast
        cgi .py python3
        cgi_timeout 1
    }
}
"""


def test_waiting_for_a_slot_counts_against_cgi_timeout(tmp_path: Path) -> None:
    for folder in ("www", "slow", "fast"):
        (tmp_path / folder).mkdir()
    (tmp_path / "slow" / "sleep.py").write_text(SCRIPTS["sleep.py"])
    (tmp_path / "fast" / "hello.py").write_text(SCRIPTS["hello.py"])
    server = start_server(QUEUE_CONFIG, tmp_path)
    sleepers = []
    try:
        for _ in range(MAX_RUNNING):  # every slot taken by a script that hangs
            sock = server.connect(timeout=30)
            sock.sendall(b"GET /slow/sleep.py HTTP/1.1\r\nHost: x\r\n\r\n")
            sleepers.append(sock)
        assert wait_for(lambda: len(children_of(server.process.pid)) == MAX_RUNNING)
        started = time.monotonic()
        r = requests.get(server.url("/fast/hello.py"), timeout=30)
        waited = time.monotonic() - started
        assert r.status_code == 504  # its own cgi_timeout, spent in the queue
        assert waited < 3.5  # before the sleepers' 4 s ran out and freed a slot
        assert "found no free slot" in server.log()
        for sock in sleepers:  # the hung scripts end in 504 and free their slots
            assert recv_until(sock, b"\r\n\r\n", 10).startswith(b"HTTP/1.1 504 ")
        assert requests.get(server.url("/fast/hello.py"), timeout=30).text == "Hello from CGI\n"
    finally:
        for sock in sleepers:
            sock.close()
        server.stop()
