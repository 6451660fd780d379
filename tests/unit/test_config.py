"""The configuration grammar, model and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from localhost.config import ConfigError, load, loads

# The README's numbers: the default body_limit is 1 MiB, keepalive_timeout 75 s,
# and these are the methods the server implements.
README_BODY_LIMIT = 1024 * 1024
README_KEEPALIVE_TIMEOUT = 75.0
README_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"})


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www" / "files").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    return tmp_path


def parse(site: Path, text: str):
    return loads(text, site / "test.conf")


def error(site: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(site, text)
    return info.value


MINIMAL = "server {\n    port 8080\n    root ./www\n}\n"


# -- what parses, and into what --------------------------------------------


def test_minimal_server_gets_defaults(site: Path) -> None:
    config = parse(site, MINIMAL)
    (server,) = config.servers
    assert server.addresses == (("0.0.0.0", 8080),)
    assert server.server_names == ()
    assert server.body_limit == README_BODY_LIMIT
    assert server.timeouts.keepalive == README_KEEPALIVE_TIMEOUT
    (location,) = server.locations  # an implicit "/" from the server's root
    assert location.prefix == "/"
    assert location.root == site / "www"
    assert location.alias is False
    assert location.default_file == "index.html"
    assert location.directory_listing is False
    assert location.methods is None


def test_comments_blank_lines_and_semicolons(site: Path) -> None:
    text = "# top\n\nserver { # open\n  port 1; port 2;;\n\n  root ./www # trailing\n}\n# end"
    (server,) = parse(site, text).servers
    assert server.addresses == (("0.0.0.0", 1), ("0.0.0.0", 2))


def test_one_line_location_block(site: Path) -> None:
    text = "server {\n port 80\n location /x { methods GET; root ./www }\n}"
    (server,) = parse(site, text).servers
    location = server.locations[0]
    assert location.prefix == "/x"
    assert location.methods == frozenset({"GET"})
    assert location.alias is True


def test_several_blocks_on_one_line(site: Path) -> None:
    text = "server { port 80; root ./www; location /a { directory_listing on } location /b { } }"
    (server,) = parse(site, text).servers
    assert [loc.prefix for loc in server.locations] == ["/a", "/b", "/"]


def test_quoted_values(site: Path) -> None:
    (site / "with space").mkdir()
    text = "server {\n port 80\n root \"with space\"\n location /q { root './www' }\n}"
    (server,) = parse(site, text).servers
    assert server.locations[-1].root == site / "with space"


def test_host_and_ports(site: Path) -> None:
    (server,) = parse(site, "server {\n host 127.0.0.1\n port 8080 8081\n root ./www\n}").servers
    assert server.addresses == (("127.0.0.1", 8080), ("127.0.0.1", 8081))


@pytest.mark.parametrize(
    ("value", "host"),
    [("localhost", "127.0.0.1"), ("*", "0.0.0.0"), ("::1", "::1"), ("[::1]", "::1")],
)
def test_host_forms(site: Path, value: str, host: str) -> None:
    (server,) = parse(site, f"server {{\n host {value}\n port 80\n root ./www\n}}").servers
    assert server.addresses == ((host, 80),)


def test_server_names_are_lower_case(site: Path) -> None:
    text = "server {\n port 80\n root ./www\n server_name Example.COM www.example.com.\n}"
    (server,) = parse(site, text).servers
    assert server.server_names == ("example.com", "www.example.com")


@pytest.mark.parametrize(
    ("value", "size"),
    [("0", 0), ("512", 512), ("10k", 10240), ("2M", 2 * 1024**2), ("1g", 1024**3)],
)
def test_sizes(site: Path, value: str, size: int) -> None:
    (server,) = parse(site, f"server {{\n port 80\n root ./www\n body_limit {value}\n}}").servers
    assert server.body_limit == size


@pytest.mark.parametrize(
    ("value", "seconds"), [("30", 30.0), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1.5", 1.5)]
)
def test_times(site: Path, value: str, seconds: float) -> None:
    (server,) = parse(site, f"send_timeout {value}\nserver {{\n port 80\n root ./www\n}}").servers
    assert server.timeouts.send == seconds


def test_inheritance_top_level_server_location(site: Path) -> None:
    text = """
body_limit 5k
error_page 404 ./www/404.html
keepalive_timeout 3
server {
    port 80
    root ./www
    methods GET POST
    directory_listing on
    error_page 500 502 ./www/50x.html
    location /a { body_limit 1k; error_page 404 ./www/a404.html }
    location /b { methods GET; directory_listing off; default_file home.html }
}
"""
    (server,) = parse(site, text).servers
    by_prefix = {loc.prefix: loc for loc in server.locations}
    a, b, root = by_prefix["/a"], by_prefix["/b"], by_prefix["/"]
    assert server.timeouts.keepalive == 3.0
    assert a.body_limit == 1024 and b.body_limit == 5 * 1024
    assert a.error_pages[404] == site / "www/a404.html"
    assert a.error_pages[500] == site / "www/50x.html"
    assert b.error_pages[404] == site / "www/404.html"
    assert a.methods == frozenset({"GET", "POST"}) and b.methods == frozenset({"GET"})
    assert a.directory_listing is True and b.directory_listing is False
    assert b.default_file == "home.html"
    assert a.alias is False and a.root == site / "www"
    assert root.prefix == "/"


def test_locations_sorted_longest_first_and_trailing_slash_dropped(site: Path) -> None:
    text = "server {\n port 80\n root ./www\n location / { }\n location /files/ { }\n location /files/deep { }\n}"
    (server,) = parse(site, text).servers
    assert [loc.prefix for loc in server.locations] == ["/files/deep", "/files", "/"]


def test_cgi_and_redirect(site: Path) -> None:
    text = "server {\n port 80\n location /cgi { root ./www; cgi .py python3; cgi .sh sh }\n location /old { redirect https://example.com/ }\n}"
    (server,) = parse(site, text).servers
    by_prefix = {loc.prefix: loc for loc in server.locations}
    assert set(by_prefix["/cgi"].cgi) == {".py", ".sh"}
    assert by_prefix["/cgi"].cgi[".py"].endswith("python3")
    assert by_prefix["/old"].redirect == "https://example.com/"
    assert by_prefix["/old"].root is None


def test_upload_locations_know_every_cgi_root(site: Path) -> None:
    text = (
        "server {\n port 80\n location /cgi { root ./www/files; cgi .PY python3 }\n"
        " location /up { root ./www; methods GET POST }\n location /ro { root ./www }\n}\n"
        "server {\n port 81\n location /up2 { root ./other; methods POST }\n}"
    )
    servers = parse(site, text).servers
    by_prefix = {loc.prefix: loc for server in servers for loc in server.locations}
    expected = ((str((site / "www" / "files").resolve()), frozenset({".py"})),)
    assert by_prefix["/up"].cgi_roots == expected
    assert by_prefix["/up2"].cgi_roots == expected  # another server block's CGI counts too
    assert by_prefix["/ro"].cgi_roots == ()  # takes no uploads


def test_relative_paths_are_relative_to_the_config_file(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (site / "test.conf").write_text(MINIMAL)
    monkeypatch.chdir("/")
    config = load(site / "test.conf")
    assert config.servers[0].locations[0].root == site / "www"


def test_two_servers_share_an_address_by_name(site: Path) -> None:
    text = "server {\n port 80\n root ./www\n}\nserver {\n port 80\n server_name other\n root ./other\n}"
    config = parse(site, text)
    assert len(config.servers) == 2


def test_the_bundled_config_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    config = load(repo / "config.conf")
    addresses = {address for server in config.servers for address in server.addresses}
    assert ("127.0.0.1", 8080) in addresses and ("127.0.0.1", 8081) in addresses
    assert any("other.local" in server.server_names for server in config.servers)


def test_methods_know_every_implemented_method(site: Path) -> None:
    methods = " ".join(sorted(README_METHODS))
    (server,) = parse(site, f"server {{\n port 80\n root ./www\n methods {methods}\n}}").servers
    assert server.locations[0].methods == README_METHODS


# -- errors: each with its line, column and message ---------------------------

ERRORS = [
    # (text, line, column, message part)
    ("server {\n    prot 8080\n}", 2, 5, 'unknown directive "prot"'),
    ("server {\n    port 0\n    root ./www\n}", 2, 10, 'invalid port "0"'),
    ("server {\n    port 65536\n}", 2, 10, 'invalid port "65536"'),
    ("server {\n    port http\n}", 2, 10, 'invalid port "http"'),
    ("server {\n    port -1\n}", 2, 10, 'invalid port "-1"'),
    (
        "server {\n    port 80 80\n    root ./www\n}",
        2,
        13,
        "duplicate listen address 0.0.0.0:80 in one server (first at line 2)",
    ),
    (
        "server {\n    port 80\n    port 81 80\n}",
        3,
        13,
        "duplicate listen address 0.0.0.0:80 in one server (first at line 2)",
    ),
    ("server {\n    root ./www\n}", 1, 1, 'server block has no "port" directive'),
    ("server {\n    port 80\n    root ./nope\n}", 3, 10, 'root "./nope" does not exist'),
    ("server {\n    port 80\n    root ./a-file\n}", 3, 10, 'root "./a-file" is not a directory'),
    ("server {\n    port 80\n    body_limit lots\n}", 3, 16, 'invalid size "lots"'),
    ("server {\n    port 80\n    body_limit 10q\n}", 3, 16, 'invalid size "10q"'),
    (
        "server {\n    port 80\n    body_limit 1 2\n}",
        3,
        18,
        'invalid number of values in "body_limit"',
    ),
    ("server {\n    port 80\n    root\n}", 3, 5, 'invalid number of values in "root"'),
    ("server {\n    port\n}", 2, 5, 'invalid number of values in "port"'),
    ("server {\n    port 80\n    error_page 999 ./x.html\n}", 3, 16, 'unknown error code "999"'),
    ("server {\n    port 80\n    error_page 200 ./x.html\n}", 3, 16, 'unknown error code "200"'),
    ("server {\n    port 80\n    error_page 499 ./x.html\n}", 3, 16, 'unknown error code "499"'),
    (
        "server {\n    port 80\n    error_page ./x.html\n}",
        3,
        5,
        'invalid number of values in "error_page"',
    ),
    ("server {\n    port 80\n    methods GET FETCH\n}", 3, 17, 'unknown method "FETCH"'),
    ("server {\n    port 80\n    methods get\n}", 3, 13, 'unknown method "get"'),
    (
        "server {\n    port 80\n    directory_listing yes\n}",
        3,
        23,
        'invalid value "yes" (expected "on" or "off")',
    ),
    (
        "server {\n    port 80\n    root ./www\n    root ./www\n}",
        4,
        5,
        '"root" directive is duplicate (first at line 3)',
    ),
    ("server {\n    port 80\n    host 1.2.3.4.5\n}", 3, 10, 'invalid host "1.2.3.4.5"'),
    ("server {\n    port 80\n    host example.com\n}", 3, 10, 'invalid host "example.com"'),
    ("port 80\nserver {\n}", 1, 1, '"port" directive is not allowed in the top level'),
    (
        "root ./www\nserver {\n    port 80\n}",
        1,
        1,
        '"root" directive is not allowed in the top level',
    ),
    (
        "server {\n    port 80\n    location / {\n        port 81\n    }\n}",
        4,
        9,
        '"port" directive is not allowed in a "location" block',
    ),
    (
        "server {\n    port 80\n    location / {\n        client_header_timeout 5\n    }\n}",
        4,
        9,
        '"client_header_timeout" directive is not allowed in a "location" block',
    ),
    (
        "server {\n    port 80\n    redirect /x\n}",
        3,
        5,
        '"redirect" directive is not allowed in a "server" block',
    ),
    ("location / {\n}", 1, 1, '"location" block is not allowed in the top level'),
    (
        "server {\n    port 80\n    server {\n    }\n}",
        3,
        5,
        '"server" block is not allowed in a "server" block',
    ),
    (
        "server {\n    port 80\n    location {\n    }\n}",
        3,
        5,
        '"location" takes a path, with an optional modifier',
    ),
    (
        "server {\n    port 80\n    location /a /b {\n    }\n}",
        3,
        14,
        'unknown location modifier "/a"',
    ),
    (
        "server {\n    port 80\n    location files {\n    }\n}",
        3,
        14,
        'location path "files" must start with "/"',
    ),
    ("server {\n    port 80\n    location /x {\n    }\n}", 3, 14, 'location "/x" has no "root"'),
    (
        "server {\n    port 80\n    root ./www\n    location /x { }\n    location /x/ { }\n}",
        5,
        14,
        'duplicate location "/x" (first at line 4)',
    ),
    (
        "server {\n    port 80\n    root ./www\n    widget {\n    }\n}",
        4,
        5,
        'unknown block "widget"',
    ),
    ("server 1 {\n    port 80\n}", 1, 8, '"server" block takes no values'),
    ("server\n", 1, 1, '"server" must be followed by a block in braces'),
    (
        "server {\n    port 80\n",
        2,
        12,
        'unexpected end of file: the "server" block opened at 1:1 is never closed',
    ),
    ("server {\n    port 80\n}\n}\n", 4, 1, 'unexpected "}": no block is open here'),
    ("server {\n    port 80 {\n}", 3, 2, "unexpected end of file"),
    ('server {\n    root "./www\n}', 2, 10, "unterminated string"),
    ("", 1, 1, 'no "server" block'),
    ("# only a comment\n", 1, 1, 'no "server" block'),
    (
        "server {\n    port 80\n    root ./www\n    send_timeout soon\n}",
        4,
        18,
        'invalid time "soon"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    keepalive_timeout 0\n}",
        4,
        23,
        'invalid time "0"',
    ),
    (
        "server {\n    port 80\n    location /c {\n        root ./www\n        cgi py python3\n    }\n}",
        5,
        13,
        'invalid CGI extension "py"',
    ),
    (
        "server {\n    port 80\n    location /c {\n        root ./www\n        cgi .py no-such-interpreter-xyz\n    }\n}",
        5,
        17,
        'CGI interpreter "no-such-interpreter-xyz" not found',
    ),
    (
        "server {\n    port 80\n    location /c {\n        root ./www\n        cgi .py\n    }\n}",
        5,
        9,
        'invalid number of values in "cgi"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    default_file ../secret\n}",
        4,
        18,
        'invalid default_file "../secret"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    server_name a/b\n}",
        4,
        17,
        'invalid server name "a/b"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    server_name ok www.*.example.com\n}",
        4,
        20,
        'invalid server name or wildcard "www.*.example.com"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    server_name *\n}",
        4,
        17,
        'invalid server name or wildcard "*"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    server_name ..\n}",
        4,
        17,
        'invalid server name or wildcard ".."',
    ),
    (
        'server {\n    port 80\n    root ./www\n    server_name "~^(www\\.)?ex(ample\\.com$"\n}',
        4,
        17,
        'invalid server_name regex "^(www\\.)?ex(ample\\.com$"',
    ),
    (
        "server {\n    port 80\n    root ./www\n    server_name a\n}\nserver {\n    port 80\n    root ./www\n    server_name b A\n}",
        9,
        19,
        'duplicate server_name "a" on 0.0.0.0:80 (first at line 4)',
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), ERRORS)
def test_errors_name_line_and_column(
    site: Path, text: str, line: int, column: int, message: str
) -> None:
    exc = error(site, text)
    assert (exc.line, exc.column) == (line, column), str(exc)
    assert message in exc.message
    assert str(exc).startswith(f"{site / 'test.conf'}:{line}:{column}: ")


def test_error_text_shows_the_line_and_a_caret(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    colour blue\n}")
    lines = str(exc).splitlines()
    assert lines[0] == f'{site / "test.conf"}:3:5: unknown directive "colour"'
    assert lines[1] == "        colour blue"
    assert lines[2] == "        ^"


def test_same_name_on_different_addresses_is_fine(site: Path) -> None:
    text = "server {\n port 80\n root ./www\n server_name a\n}\nserver {\n port 81\n root ./www\n server_name a\n}"
    assert len(parse(site, text).servers) == 2


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "missing.conf")
    assert "cannot read the configuration file" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "missing.conf"))
    assert ":0:0" not in str(info.value)  # no position to give


def test_invalid_utf8_names_its_line_and_column(site: Path) -> None:
    path = site / "latin1.conf"
    path.write_bytes(b"server {\n    port 80\n    root ./www  # caf\xe9\n}\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert (info.value.line, info.value.column) == (3, 22)
    assert str(info.value).startswith(f"{path}:3:22: invalid UTF-8 (byte 0xe9)")
