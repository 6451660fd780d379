"""log_format and access_log on a live server: a custom format with several
variables written to a file and read back, escape=json, two access_log lines
in one level, access_log off, and if= conditions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, recv_until, start_server
from tests.proc import wait_for

CONFIG = """
log_format main '$remote_addr "$request" $status $body_bytes_sent ' '"$http_user_agent" $arg_tag $request_method $uri'
log_format vars '$connection|$connection_requests|$request_length|$bytes_sent|$body_bytes_sent|$sent_http_content_type|$request_id|$arg_tag'
log_format js escape=json '{"uri":"$request_uri","ua":"$http_user_agent","status":$status,"ref":"$http_referer"}'
access_log ./top.log
server {
    host 127.0.0.1
    port {port0}
    root ./www
    access_log ./main.log main
    access_log ./json.log js
    location / { }
    location /quiet { access_log off }
    location /cond { access_log ./cond.log main if=$arg_log }
    location /vars { access_log ./vars.log vars }
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("logformat")
    (root / "www" / "cond").mkdir(parents=True)
    (root / "www" / "index.html").write_text("<h1>home</h1>\n")
    (root / "www" / "cond" / "a.txt").write_text("a\n")
    (root / "www" / "vars").mkdir()
    (root / "www" / "vars" / "v.txt").write_text("twelve bytes")
    running = start_server(CONFIG, root)
    yield running
    running.stop()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def logged(path: Path, marker: str) -> list[str]:
    """The lines of ``path`` holding ``marker``, once there is one (the
    worker writes its buffers at least once a second)."""
    assert wait_for(lambda: any(marker in line for line in lines(path)), 10), lines(path)
    return [line for line in lines(path) if marker in line]


def test_custom_format_is_written_with_its_variables(server: Server) -> None:
    folder = server.config.parent
    r = requests.get(server.url("/index.html?tag=custom1"), headers={"User-Agent": "probe/1"})
    assert r.status_code == 200
    [line] = logged(folder / "main.log", "custom1")
    assert line == (
        '127.0.0.1 "GET /index.html?tag=custom1 HTTP/1.1" 200 14 "probe/1" custom1 GET /index.html'
    )
    # A variable without a value is "-" with escape=default.
    requests.get(server.url("/nothing-here"), headers={"User-Agent": "probe/2"})
    [line] = logged(folder / "main.log", "/nothing-here ")
    pattern = r'127\.0\.0\.1 "GET /nothing-here HTTP/1\.1" 404 \d+ "probe/2" - GET /nothing-here'
    assert re.fullmatch(pattern, line), line


def test_json_escape_writes_one_json_document_per_line(server: Server) -> None:
    agent = 'say "hi" \\ back\\slash'
    requests.get(server.url("/index.html?tag=json1"), headers={"User-Agent": agent})
    [line] = logged(server.config.parent / "json.log", "json1")
    assert json.loads(line) == {
        "uri": "/index.html?tag=json1",
        "ua": agent,
        "status": 200,
        "ref": "",  # not found: nothing with escape=json
    }


def test_two_access_log_lines_write_two_files_and_replace_the_top_level(server: Server) -> None:
    folder = server.config.parent
    requests.get(server.url("/?tag=both1"), headers={"User-Agent": "probe/3"})
    [plain] = logged(folder / "main.log", "both1")
    [document] = logged(folder / "json.log", "both1")
    assert plain.startswith('127.0.0.1 "GET /?tag=both1 HTTP/1.1" 200 ')
    assert json.loads(document)["uri"] == "/?tag=both1"
    # The server's lines replace the top level's: nothing went to top.log.
    assert not any("both1" in line for line in lines(folder / "top.log"))


def test_access_log_off_and_if_conditions(server: Server) -> None:
    folder = server.config.parent
    for target in (
        "/quiet?tag=quiet1",
        "/cond/a.txt?tag=cond-none",
        "/cond/a.txt?tag=cond-zero&log=0",
        "/cond/a.txt?tag=cond-empty&log=",
        "/cond/a.txt?tag=cond-yes&log=1",
    ):
        assert requests.get(server.url(target)).status_code in (200, 404)
    # The same log keeps the order of its requests: once the last is there,
    # the ones before it would be too.
    [line] = logged(folder / "cond.log", "cond-yes")
    assert line.startswith('127.0.0.1 "GET /cond/a.txt?tag=cond-yes&log=1 HTTP/1.1" 200 2 ')
    assert len(lines(folder / "cond.log")) == 1
    requests.get(server.url("/?tag=after-quiet"))
    logged(folder / "main.log", "after-quiet")
    main = (folder / "main.log").read_text()
    # /quiet logs nothing; /cond has its own level, so main.log has none of it.
    assert "quiet1" not in main and "cond-" not in main


def test_connection_and_size_variables(server: Server) -> None:
    heads = [
        f"GET /vars/v.txt?tag=vars{n} HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * n}\r\n\r\n".encode()
        for n in (1, 2)
    ]
    answers = []
    with server.connect() as sock:  # one connection, two requests
        for head in heads:
            sock.sendall(head)
            answers.append(recv_until(sock, b"twelve bytes"))
    records = [logged(server.config.parent / "vars.log", f"|vars{n}")[0].split("|") for n in (1, 2)]
    for head, answer, record in zip(heads, answers, records, strict=True):
        connection, requests_on_it, request_length, bytes_sent, body, kind, request_id, _ = record
        assert int(request_length) == len(head)
        assert int(bytes_sent) == len(answer)
        assert body == "12"
        assert kind.startswith("text/plain")
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert records[0][0] == records[1][0]  # the same $connection
    assert [record[1] for record in records] == ["1", "2"]
    assert records[0][6] != records[1][6]  # a $request_id per request
