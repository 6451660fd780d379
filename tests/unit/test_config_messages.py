"""What a configuration error says, and where: byte-order mark, unclosed blocks,
paths, NGINX names, did-you-mean, error_page warnings, line counting and the
excerpt under the message."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from localhost.config import ConfigError, load, loads

BOM = "\ufeff"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "404.html").write_text("<h1>not here</h1>")
    (tmp_path / "a-file").write_text("not a directory")
    return tmp_path


def error(site: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(text, site / "test.conf")
    return info.value


def excerpt(exc: ConfigError) -> tuple[str, str]:
    """The shown source line and the caret line of an error, gutter removed."""
    lines = str(exc).split("\n")
    assert lines[1].startswith("    ") and lines[2].startswith("    ")
    return lines[1][4:], lines[2][4:]


SERVER = "server {{\n    port 80\n    root ./www\n{}}}\n"

# -- a UTF-8 byte-order mark ---------------------------------------------------


def test_a_byte_order_mark_is_skipped_in_a_file(site: Path) -> None:
    path = site / "bom.conf"
    path.write_bytes(BOM.encode() + SERVER.format("").encode())
    (server,) = load(path).servers
    assert server.addresses == (("0.0.0.0", 80),)


@pytest.mark.parametrize("how", ["file", "text"])
def test_columns_on_line_1_do_not_count_the_byte_order_mark(site: Path, how: str) -> None:
    text = "server { port 80; root ./www; colour blue }\n"
    if how == "file":
        path = site / "bom.conf"
        path.write_bytes(BOM.encode() + text.encode())
        with pytest.raises(ConfigError) as info:
            load(path)
        exc = info.value
    else:
        exc = error(site, BOM + text)
    assert (exc.line, exc.column) == (1, 31)
    assert exc.message == 'unknown directive "colour"'
    shown, caret = excerpt(exc)
    assert shown == text.rstrip("\n")
    assert caret == " " * 30 + "^"


def test_invalid_utf8_after_a_byte_order_mark_keeps_its_column(site: Path) -> None:
    path = site / "latin1.conf"
    path.write_bytes(BOM.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert (info.value.line, info.value.column) == (1, 6)


def test_a_byte_order_mark_later_in_the_file_is_shown_escaped(site: Path) -> None:
    exc = error(site, f"server {{\n    {BOM}port 80\n}}")
    assert (exc.line, exc.column) == (2, 5)
    assert exc.message.startswith('unknown directive "\\ufeffport"')
    shown, caret = excerpt(exc)
    assert shown == "    \\ufeffport 80"
    assert caret == "    ^"


# -- an unclosed "{" ---------------------------------------------------------------


def test_an_unclosed_block_is_named_with_the_line_it_opened_at(site: Path) -> None:
    text = "server {\n    port 80\n    location / {\n        root ./www\n"
    exc = error(site, text)
    assert (exc.line, exc.column) == (4, 19)  # the end of the file, after the last value
    assert exc.message == (
        'unexpected end of file: the "location /" block opened at 3:5 is never closed'
    )
    (note,) = exc.notes
    assert (note.line, note.column) == (3, 5)
    assert f"\n{site / 'test.conf'}:3:5: note: " in str(exc)
    assert "\n        location / {\n        ^" in str(exc)


def test_an_unclosed_block_whose_brace_closed_another_is_pointed_out(site: Path) -> None:
    # location /a lost its "}": the one written for the server now closes it,
    # and the server is what the parser finds open at the end.
    text = (
        "server {\n"
        "    port 80\n"
        "    location /a {\n"
        "        root ./www\n"
        "\n"
        "    location /b {\n"
        "        root ./www\n"
        "    }\n"
        "}\n"
    )
    exc = error(site, text)
    assert (exc.line, exc.column) == (9, 2)
    assert 'the "server" block opened at 1:1 is never closed' in exc.message
    first, suspect = exc.notes
    assert (first.line, first.column) == (1, 1)
    assert (suspect.line, suspect.column) == (3, 5)
    assert 'the "location /a" block opened here may be the one missing its "}"' in suspect.message
    assert 'the "}" at 9:1 that closes it' in suspect.message


def test_a_well_indented_file_gets_no_guess(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    location / {\n        root ./www\n    }\n")
    assert 'the "server" block opened at 1:1 is never closed' in exc.message
    assert len(exc.notes) == 1


def test_a_lone_closing_brace(site: Path) -> None:
    exc = error(site, "}")
    assert (exc.line, exc.column) == (1, 1)
    assert exc.message == 'unexpected "}": no block is open here'


def test_a_brace_on_its_own_line_says_where_it_goes(site: Path) -> None:
    exc = error(site, "server\n{\n    port 80\n}\n")
    assert (exc.line, exc.column) == (2, 1)
    assert "goes on the line of its name" in exc.message


# -- paths -----------------------------------------------------------------------


def test_a_missing_root_says_so_with_the_absolute_path(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site)
    with pytest.raises(ConfigError) as info:
        loads("server {\n    port 80\n    root ./upload\n}", "test.conf")
    assert info.value.message == f'root "./upload" does not exist (resolved to {site}/upload)'


def test_a_root_that_is_a_file_says_so(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    root ./a-file\n}")
    assert exc.message == f'root "./a-file" is not a directory (resolved to {site}/a-file)'


def test_a_root_behind_a_file_does_not_exist(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    root ./a-file/www\n}")
    assert exc.message.startswith('root "./a-file/www" does not exist (a folder on its way')


def test_a_root_through_a_broken_link(site: Path) -> None:
    (site / "gone").symlink_to(site / "nowhere")
    exc = error(site, "server {\n    port 80\n    root ./gone\n}")
    assert exc.message == f'root "./gone" is a broken symbolic link (resolved to {site}/nowhere)'


def test_an_absolute_root_is_not_repeated(site: Path) -> None:
    exc = error(site, f"server {{\n    port 80\n    root {site}/upload\n}}")
    assert exc.message == f'root "{site}/upload" does not exist'


def test_a_root_with_an_unknown_home_folder(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    root ~no-such-user-here/www\n}")
    assert (exc.line, exc.column) == (3, 10)
    assert "cannot find the home folder" in exc.message


def test_a_path_with_a_nul_character(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    root ./w\x00w\n}")
    assert exc.message == 'root "./w\\x00w": a path cannot contain a NUL character'


def test_a_path_too_long_to_check(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    root /" + "a" * 5000 + "\n}")
    assert "cannot be checked (File name too long)" in exc.message
    assert len(exc.message) < 300


@pytest.mark.parametrize(
    ("directive", "value", "expected"),
    [
        ("session_store", "./state/s.db", "folder {site}/state does not exist"),
        ("pid", "./a-file/x.pid", "folder {site}/a-file is not a directory"),
        ("error_log", "./logs/error.log", "folder {site}/logs does not exist"),
        ("pid", "./www", "is a directory"),
    ],
)
def test_files_the_server_writes_need_their_folder(
    site: Path, directive: str, value: str, expected: str
) -> None:
    exc = error(site, f"{directive} {value}\n" + SERVER.format(""))
    assert (exc.line, exc.column) == (1, len(directive) + 2)
    assert exc.message.startswith(f'{directive} "{value}"')
    assert expected.format(site=site) in exc.message


def test_a_cgi_interpreter_path_says_what_is_wrong(site: Path) -> None:
    location = "    location /c {{\n        root ./www\n        cgi .py {}\n    }}\n"
    exc = error(site, SERVER.format(location.format("./bin/python3")))
    assert exc.message == (
        f'CGI interpreter "./bin/python3" does not exist (resolved to {site}/bin/python3)'
    )
    exc = error(site, SERVER.format(location.format("./www")))
    assert exc.message == f'CGI interpreter "./www" is a directory (resolved to {site}/www)'
    (site / "plain").write_text("#!/bin/sh\n")
    os.chmod(site / "plain", 0o644)
    exc = error(site, SERVER.format(location.format("./plain")))
    assert exc.message == f'CGI interpreter "./plain" is not executable (resolved to {site}/plain)'


# -- NGINX names and near misses ------------------------------------------------------

NGINX = [
    # (the NGINX directive as written, the localhost name the hint must give)
    ("limit_except GET", "methods"),
]


@pytest.mark.parametrize(("line", "equivalent"), NGINX)
def test_nginx_names_get_their_localhost_equivalent(site: Path, line: str, equivalent: str) -> None:
    name = line.split()[0]
    text = SERVER.format(f"    location /x {{\n        {line}\n    }}\n")
    exc = error(site, text)
    assert (exc.line, exc.column) == (5, 9)
    assert exc.message.startswith(f'unknown directive "{name}"; localhost calls it {equivalent}')


def test_the_hint_reads_as_documented(site: Path) -> None:
    exc = error(site, SERVER.format("    limit_except GET\n"))
    assert exc.message == 'unknown directive "limit_except"; localhost calls it methods'


NGINX_STYLE = """worker_processes 1;
events {
    worker_connections 512;
    multi_accept on;
    use epoll;
}
http {
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    types_hash_max_size 2048;
    server_names_hash_bucket_size 64;
    ssl_prefer_server_ciphers on;
    keepalive_timeout 30;
    server {
        listen 127.0.0.1:8080;
        root ./www;
        location /x { return 204; }
    }
}
"""

# The same, without the wrappers and the directives that change nothing (the
# same lines and columns: a location remembers where it was written).
PLAIN_STYLE = """worker_processes 1;

    worker_connections 512;



# http






    keepalive_timeout 30;
    server {
        listen 127.0.0.1:8080;
        root ./www;
        location /x { return 204; }
    }
"""


def test_an_nginx_style_file_with_http_and_events_loads_as_written(site: Path) -> None:
    wrapped = loads(NGINX_STYLE, site / "test.conf")
    plain = loads(PLAIN_STYLE, site / "test.conf")
    assert wrapped.worker_connections == 512
    assert wrapped.servers[0].addresses == (("127.0.0.1", 8080),)
    assert wrapped.servers[0].timeouts.keepalive == 30
    assert wrapped == plain


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (
            "http {\n" + SERVER.format("") + "}\nhttp {\n}\n",
            7,
            1,
            '"http" block is duplicate (first at line 1)',
        ),
        ("http main {\n" + SERVER.format("") + "}\n", 1, 6, '"http" block takes no values'),
        (
            "http {\n    worker_processes 2;\n" + SERVER.format("") + "}\n",
            2,
            5,
            '"worker_processes" directive is not allowed in "http" '
            "(it goes in the top level, as in NGINX)",
        ),
        (
            "http {\n    worker_connections 2;\n" + SERVER.format("") + "}\n",
            2,
            5,
            '"worker_connections" directive is not allowed in "http" '
            '(it goes in "events" or the top level, as in NGINX)',
        ),
        (
            "events {\n    worker_aio_requests 32;\n}\n" + SERVER.format(""),
            2,
            5,
            '"worker_aio_requests" is not supported in the "events" block '
            "(worker_connections, multi_accept, accept_mutex, use epoll)",
        ),
        (
            "events {\n    use kqueue;\n}\n" + SERVER.format(""),
            2,
            9,
            'invalid event method "kqueue" (localhost uses epoll)',
        ),
        (
            "http {\n    multi_accept on;\n" + SERVER.format("") + "}\n",
            2,
            5,
            '"multi_accept" directive is not allowed in "http" '
            '(it goes in "events" or the top level, as in NGINX)',
        ),
        (
            SERVER.format("    sendfile maybe\n"),
            4,
            14,
            'invalid value "maybe" (expected "on" or "off")',
        ),
        (
            "http {\n    events {\n    }\n" + SERVER.format("") + "}\n",
            2,
            5,
            '"events" block is not allowed in "http"',
        ),
        (
            SERVER.format("    http {\n    }\n"),
            4,
            5,
            'unknown block "http"; "http" is read only at the top level',
        ),
    ],
)
def test_nginx_wrapper_blocks_are_checked_as_nginx_checks_them(
    site: Path, text: str, line: int, column: int, message: str
) -> None:
    exc = error(site, text)
    assert (exc.line, exc.column, exc.message) == (line, column, message)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        (SERVER.format("    server_names a.test\n"), '; did you mean "server_name"?'),
        (SERVER.format("    Default_File a.html\n"), '; did you mean "default_file"?'),
        (SERVER.format("    prot 80\n"), '; did you mean "port" or "root"?'),
        # valid only elsewhere: still the best guess, and it says where it goes
        (
            SERVER.format("    sesion_timeout 30m\n"),
            '; did you mean "session_timeout" (allowed only at the top level)?',
        ),
        (SERVER.format("    locaton /x {\n    }\n"), '; did you mean "location"?'),
    ],
)
def test_near_misses_get_a_did_you_mean(site: Path, text: str, suggestion: str) -> None:
    exc = error(site, text)
    assert exc.message.endswith(suggestion)


def test_names_valid_here_are_preferred(site: Path) -> None:
    # "session" and "session_store" are both near "sessions"; only "session" is valid in a server.
    exc = error(site, SERVER.format("    sessions on\n"))
    assert exc.message == 'unknown directive "sessions"; did you mean "session"?'


def test_far_names_get_no_guess(site: Path) -> None:
    exc = error(site, SERVER.format("    colour blue\n"))
    assert exc.message == 'unknown directive "colour"'


def test_a_directive_written_as_a_block(site: Path) -> None:
    exc = error(site, SERVER.format("    methods GET {\n    }\n"))
    assert exc.message == '"methods" is a directive, not a block (it takes no "{ }")'


def test_a_misplaced_directive_says_where_it_belongs(site: Path) -> None:
    exc = error(site, "port 80\n" + SERVER.format(""))
    assert exc.message == (
        '"port" directive is not allowed in the top level (allowed only in "server" blocks)'
    )
    exc = error(site, "location / {\n}\n")
    assert exc.message == (
        '"location" block is not allowed in the top level '
        '(allowed only in "server" and "location" blocks)'
    )


# -- error_page naming a missing file: a warning, not an error --------------------------


def test_a_missing_error_page_is_a_warning(site: Path) -> None:
    config = loads(SERVER.format("    error_page 404 500 ./www/missing.html\n"), site / "test.conf")
    (warning,) = config.warnings
    assert (warning.line, warning.column) == (4, 24)
    assert warning.message == (
        f'error_page file "./www/missing.html" does not exist (resolved to '
        f"{site}/www/missing.html); the built-in page is served instead"
    )
    lines = str(warning).split("\n")
    assert lines[0].startswith(f"{site / 'test.conf'}:4:24: warning: error_page file ")
    assert lines[1] == "        error_page 404 500 ./www/missing.html"
    assert lines[2] == "    " + " " * 23 + "^"
    # the server is configured as written: the page is looked up at request time
    assert config.servers[0].error_pages[404] == site / "www" / "missing.html"


def test_an_error_page_that_is_a_directory_is_a_warning(site: Path) -> None:
    config = loads(SERVER.format("    error_page 404 ./www\n"), site / "test.conf")
    (warning,) = config.warnings
    assert 'error_page file "./www" is a directory' in warning.message


def test_warnings_come_in_file_order(site: Path) -> None:
    text = SERVER.format("    error_page 404 ./b.html\n") + "error_page 500 ./a.html\n"
    config = loads(text, site / "test.conf")
    assert [(w.line, w.message[:24]) for w in config.warnings] == [
        (4, 'error_page file "./b.htm'),
        (6, 'error_page file "./a.htm'),
    ]


def test_an_existing_error_page_gives_no_warning(site: Path) -> None:
    config = loads(SERVER.format("    error_page 404 ./www/404.html\n"), site / "test.conf")
    assert config.warnings == ()


def test_an_unreadable_error_page_is_a_warning() -> None:
    # Root reads any file, so the check runs in a child that gives up root
    # (as the tests run as root in CI); as another user it runs in place.
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        (folder / "www").mkdir(mode=0o755)
        page = folder / "www" / "secret.html"
        page.write_text("x")
        page.chmod(0)
        text = SERVER.format("    error_page 404 ./www/secret.html\n")
        loads(text, folder / "test.conf")  # imports done while they are readable
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            os.close(read)
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                warnings = loads(text, folder / "test.conf").warnings
                os.write(write, "\n".join(w.message for w in warnings).encode())
            except BaseException as exc:
                os.write(write, repr(exc).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            messages = pipe.read().decode()
        os.waitpid(pid, 0)
        assert "cannot be read (permission denied)" in messages, messages
    finally:
        shutil.rmtree(folder)


# -- lines are counted at LF only; the excerpt shows the line the position names ----------


@pytest.mark.parametrize(
    "separator", ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
)
def test_line_breaks_other_than_lf_in_a_comment_do_not_shift_the_excerpt(
    site: Path, separator: str
) -> None:
    text = f"# one{separator}two\nserver {{\n    port 80\n    colour blue\n}}\n"
    exc = error(site, text)
    assert (exc.line, exc.column) == (4, 5)
    assert exc.source == "    colour blue"
    assert excerpt(exc) == ("    colour blue", "    ^")


@pytest.mark.parametrize(
    "text", ["\v", "#\f\nabcde\xa0", "# \u2028\nserver {\n    port\u00a080\n}"]
)
def test_an_unexpected_character_after_such_a_break_is_reported(site: Path, text: str) -> None:
    # These made the syntax-error path index past the end of the wrong line (IndexError).
    exc = error(site, text)
    assert exc.message.startswith("unexpected character U+")
    assert "only spaces and tabs separate values" in exc.message
    line = text.split("\n")[exc.line - 1]
    assert line[exc.column - 1].isspace()


def test_a_line_separator_in_a_value_names_itself(site: Path) -> None:
    exc = error(site, "server {\n    port 80\u2028\n}")
    assert (exc.line, exc.column) == (2, 12)
    assert exc.message == (
        "unexpected character U+2028 (LINE SEPARATOR): only spaces and tabs separate values"
    )
    assert excerpt(exc) == ("    port 80\\u2028", "           ^")


def test_crlf_files_load_and_report_like_lf_files(site: Path) -> None:
    text = SERVER.format("    error_page 404 ./www/404.html\n").replace("\n", "\r\n")
    (server,) = loads(text, site / "test.conf").servers
    assert server.error_pages[404] == site / "www" / "404.html"
    exc = error(site, SERVER.format("    colour blue\n").replace("\n", "\r\n"))
    assert (exc.line, exc.column) == (4, 5)
    assert exc.source == "    colour blue"
    assert "\r" not in str(exc)


def test_an_unterminated_string_in_a_crlf_file(site: Path) -> None:
    exc = error(site, 'server {\r\n    root "./www\r\n}\r\n')
    assert (exc.line, exc.column) == (2, 10)
    assert exc.message == 'unterminated string (missing closing " on this line)'


# -- the excerpt: tabs, wide characters, control characters, long lines -------------------


def test_the_caret_keeps_the_tabs_of_the_line(site: Path) -> None:
    exc = error(site, "server {\n\tport 80\n\t\tcolour\tblue\n}")
    assert (exc.line, exc.column) == (3, 3)
    assert excerpt(exc) == ("\t\tcolour\tblue", "\t\t^")


def test_the_caret_steps_over_wide_characters(site: Path) -> None:
    exc = error(site, SERVER.format("    server_name 日本.test a/b\n"))
    assert (exc.line, exc.column) == (4, 25)
    shown, caret = excerpt(exc)
    assert shown == "    server_name 日本.test a/b"
    assert caret == " " * 16 + "    " + " " * 6 + "^"  # two columns per wide character


def test_control_characters_are_shown_escaped_and_the_caret_follows(site: Path) -> None:
    exc = error(site, "server {\n\x00port 80\n}")
    assert exc.message.startswith('unknown directive "\\x00port"')
    assert excerpt(exc) == ("\\x00port 80", "^")
    exc = error(site, "server {\n    port\f80 \x00\n}")
    assert (exc.line, exc.column) == (2, 13)
    assert excerpt(exc) == ("    port\\x0c80 \\x00", "               ^")


def test_a_long_line_is_cut_around_the_column(site: Path) -> None:
    filler = "x" * 5000
    text = f"server {{ port 80; root ./www; server_name {filler} a/b {filler} }}"
    exc = error(site, text)
    assert exc.column == text.index("a/b") + 1
    shown, caret = excerpt(exc)
    assert len(shown) <= 130
    assert shown.startswith("...") and shown.endswith("...")
    assert shown[caret.index("^") :].startswith("a/b ")


def test_a_long_value_is_cut_in_the_message(site: Path) -> None:
    exc = error(site, "server {\n    port " + "9" * 10_000 + "\n}")
    assert (exc.line, exc.column) == (2, 10)
    assert exc.message.startswith('invalid port "9999')
    assert len(exc.message) < 300
