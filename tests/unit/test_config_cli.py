"""Hostile and odd configuration files through the command line (``python -m localhost``):
every one is ``FILE:LINE:COLUMN: message``, the line and a caret, and exit status 1;
a missing ``error_page`` file is a warning at ``-t`` and at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import run_cli
from tests.proc import wait_for

HOSTILE = [
    # (name, file content, line, column, message start)
    ("empty", b"", 1, 1, 'no "server" block'),
    ("only a byte-order mark", b"\xef\xbb\xbf", 1, 1, 'no "server" block'),
    ("NUL bytes", b"server {\n    port 80\x00\n}\n", 2, 10, 'invalid port "80\\x00"'),
    ("deeply nested", b"server {\n" + b"a {\n" * 2000 + b"}\n" * 2001, 2, 1, 'unknown block "a"'),
    ("deeply nested, unclosed", b"a{" * 2000, 1, 4001, "unexpected end of file: the"),
    (
        "a 10k-character line",
        b"server { port 80; root ./www; " + b"x" * 10_000 + b" }",
        1,
        31,
        'unknown directive "xxxx',
    ),
    ("an unterminated quote", b'server {\n    root "./www\n}\n', 2, 10, "unterminated string"),
    ("a lone }", b"}\n", 1, 1, 'unexpected "}": no block is open here'),
    ("location at the top level", b"location / {\n}\n", 1, 1, '"location" block is not allowed'),
    ("CRLF", b"server {\r\n    port 80\r\n    colour blue\r\n}\r\n", 3, 5, "unknown directive"),
    ("a tab-indented line", b"server {\n\tport 80\n\t\tcolour\n}\n", 3, 3, "unknown directive"),
    ("invalid UTF-8", b"server {\n    root ./caf\xe9\n}\n", 2, 15, "invalid UTF-8 (byte 0xe9)"),
]


@pytest.mark.parametrize(
    ("content", "line", "column", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_files_give_a_position_an_excerpt_and_status_1(
    tmp_path: Path, content: bytes, line: int, column: int, message: str
) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "bad.conf").write_bytes(content)
    result = run_cli(["-t", "bad.conf"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first, shown, caret, *_ = result.stderr.split("\n")
    assert first.startswith(f"localhost: bad.conf:{line}:{column}: {message}"), first
    assert shown.startswith("    ") and caret.startswith("    ")
    assert caret.rstrip().endswith("^") and caret.count("^") == 1
    assert all(c == "\t" or c.isprintable() for c in shown + caret)


def test_the_caret_of_a_tab_indented_line_sits_under_the_column(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("server {\n\tport 80\n\t\tcolour\tblue\n}\n")
    result = run_cli(["-t", "bad.conf"], tmp_path)
    assert result.stderr.split("\n")[1:3] == ["    \t\tcolour\tblue", "    \t\t^"]


ERROR_PAGE_CONFIG = """server {
    host 127.0.0.1
    port {port0}
    root ./www
    error_page 404 ./www/errors/404.html
}
"""


def test_a_missing_error_page_is_a_warning_at_dash_t(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "c.conf").write_text(ERROR_PAGE_CONFIG.replace("{port0}", "8080"))
    result = run_cli(["-t", "c.conf"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "c.conf: syntax is ok"
    first, shown, caret, *_ = result.stderr.split("\n")
    assert first == (
        'localhost: c.conf:5:20: warning: error_page file "./www/errors/404.html" does not '
        f"exist (resolved to {tmp_path}/www/errors/404.html); the built-in page is served instead"
    )
    assert shown == "        error_page 404 ./www/errors/404.html"
    assert caret == "    " + " " * 19 + "^"


def test_a_missing_error_page_is_logged_at_start_up(server_factory, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    server = server_factory(ERROR_PAGE_CONFIG)
    response = requests.get(server.url("/nothing"), timeout=5)
    assert response.status_code == 404  # the server runs, with the built-in page
    assert "<h1>404 Not Found</h1>" in response.text
    warning = 'test.conf:5:20: warning: error_page file "./www/errors/404.html" does not exist'
    assert wait_for(lambda: warning in server.log())
