"""The loader against arbitrary and near-valid text (Hypothesis).

Every input must give a ``Config`` or a ``ConfigError`` whose position lies
inside the text and whose rendering is printable; never another exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from localhost.config import Config, ConfigError, load, loads

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of configurations, and the characters that have tripped line
# counting or the lexer: CR, FF, VT, NEL, U+2028/9, NUL, BOM, NBSP.
FRAGMENTS = st.sampled_from(
    [
        "server",
        "location",
        "/",
        "/x",
        "port",
        "80",
        "8080",
        "root",
        "./www",
        "host",
        "::1",
        "server_name",
        "~^(a",
        "error_page",
        "404",
        "./www/missing.html",
        "cgi",
        ".py",
        "python3",
        "./bin/none",
        "session_store",
        "pid",
        "./www",
        "~no-such-user-here/x",
        "body_limit",
        "10k",
        "send_timeout",
        "1.5",
        "methods",
        "GET",
        "redirect",
        "listen",
        "autoindex",
        "prot",
        "9" * 5000,
        "x" * 300,
        "{",
        "}",
        ";",
        "#",
        '"',
        "'",
        '"a b"',
        " ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "\f",
        "\v",
        "\x85",
        "\u2028",
        "\u2029",
        "\x00",
        "\ufeff",
        "\xa0",
        "日本",
    ]
)
NEAR_VALID = st.lists(FRAGMENTS, max_size=40).map("".join)
VALID_START = "server {\n    port 80\n    root ./www\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "www").mkdir()
    return path


def check(text: str, path: Path) -> None:
    """Load ``text``: a Config, or a ConfigError that points inside the text."""
    try:
        config = loads(text, path)
    except ConfigError as exc:
        check_error(exc, text.removeprefix("\ufeff"), path)
    else:
        assert isinstance(config, Config)


def check_error(exc: ConfigError, text: str, path: Path) -> None:
    lines = text.split("\n")
    positions = [(exc.line, exc.column)] + [(n.line, n.column) for n in exc.notes]
    for line, column in positions:
        assert 1 <= line <= len(lines), (line, len(lines))
        assert 1 <= column <= len(lines[line - 1]) + 1, (line, column)
    rendered = str(exc)
    assert rendered.startswith(f"{path}:{exc.line}:{exc.column}: ")
    # printable on any UTF-8 terminal: only tabs and line ends are not printable
    rendered.encode("utf-8")
    for row in rendered.split("\n"):
        assert all(c == "\t" or c.isprintable() for c in row), row


@SETTINGS
@given(st.text(max_size=300))
# Each of these raised something other than ConfigError once, or printed raw control characters.
@example("\v")  # IndexError: the excerpt's lines split at VT, the grammar's did not
@example("#\f\nabcde\xa0")  # IndexError, the same at a form feed
@example("a{" * 3000)  # unclosed thousands deep: names the innermost block
@example("a{" * 3000 + "}" * 3000)  # RecursionError transforming the deep tree
@example("server {\n port " + "9" * 5000 + "\n}")  # ValueError: int() digit limit
@example("body_limit " + "1" * 5000 + "k\nserver {\n}")  # the same in a size
@example("server {\n port 80\n root ~no-such-user-here/www\n}")  # RuntimeError: expanduser
@example("server {\n port 80\n root /" + "a" * 5000 + "\n}")  # OSError: name too long
@example('server {\n port 80\n root ./www\n server_name "~a{4294967296}"\n}')  # OverflowError
@example("server {\n port 80\n location /c {\n  root ./www\n  cgi .py ./a\x00b\n }\n}")  # a raw NUL
def test_any_text_gives_a_config_or_a_positioned_error(site: Path, text: str) -> None:
    check(text, site / "fuzz.conf")


@SETTINGS
@given(NEAR_VALID)
@example("\ufeff")
@example("\ufeff\ufeff")
@example("}")
@example("server {\n" + "location /x {\n" * 50)
@example('server {\r\n root "./www\r\n}')
def test_near_valid_text_gives_a_config_or_a_positioned_error(site: Path, text: str) -> None:
    check(text, site / "fuzz.conf")


@SETTINGS
@given(NEAR_VALID)
def test_inside_a_valid_server_block(site: Path, text: str) -> None:
    check(VALID_START + text + "\n}\n", site / "fuzz.conf")


@SETTINGS
@given(st.binary(max_size=300))
@example(b"\xef\xbb\xbf\xff")
@example(b"\xef\xbb\xbf")
def test_any_bytes_in_a_file(site: Path, data: bytes) -> None:
    path = site / "bytes.conf"
    path.write_bytes(data)
    try:
        load(path)
    except ConfigError as exc:
        try:
            text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError:  # positioned at the bad byte: the line is in the bytes
            assert 1 <= exc.line <= data.count(b"\n") + 1
            assert exc.column >= 1
            str(exc).encode("utf-8")
        else:
            check_error(exc, text, path)
