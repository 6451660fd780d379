"""Virtual-host selection, location matching and request-target normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from localhost.config import loads
from localhost.http.errors import HTTPError
from localhost.http.target import normalize_target
from localhost.routing import Router, split_host


@pytest.fixture
def router(tmp_path: Path) -> Router:
    for name in ("www", "files", "other", "third"):
        (tmp_path / name).mkdir()
    text = """
server {
    host 127.0.0.1
    port 8080 8081
    root ./www
    location /files { root ./files }
    location /files/deep { root ./files }
    location /a/b { root ./www }
}
server {
    host 127.0.0.1
    port 8080
    server_name other.local www.other.local
    root ./other
}
server {
    host 127.0.0.1
    port 8082
    server_name named.only
    root ./third
}
server {
    host 0.0.0.0
    port 9000
    root ./www
}
server {
    host 127.0.0.1
    port 9000
    server_name specific
    root ./other
}
"""
    return Router(loads(text, tmp_path / "t.conf"))


def test_host_selects_the_server_block(router: Router) -> None:
    default = router.select(("127.0.0.1", 8080), "anything")
    other = router.select(("127.0.0.1", 8080), "other.local")
    assert default.server_names == ()
    assert other.server_names == ("other.local", "www.other.local")
    assert router.select(("127.0.0.1", 8080), "WWW.Other.Local:8080") is other
    assert router.select(("127.0.0.1", 8080), "other.local.") is other
    assert router.select(("127.0.0.1", 8080), "") is default


def test_names_are_per_address(router: Router) -> None:
    # other.local does not listen on 8081: the default of 8081 answers.
    assert router.select(("127.0.0.1", 8081), "other.local").server_names == ()


def test_first_block_is_default_when_all_have_names(router: Router) -> None:
    assert router.select(("127.0.0.1", 8082), "unknown").server_names == ("named.only",)


def test_wildcard_and_specific_address_share_one_socket(router: Router) -> None:
    binds = router.bind_addresses()
    assert ("0.0.0.0", 9000, True) in binds
    assert not any(host == "127.0.0.1" and port == 9000 for host, port, _ in binds)
    assert ("127.0.0.1", 8080, False) in binds
    specific = router.select(("127.0.0.1", 9000), "specific")
    assert specific.server_names == ("specific",)
    # Another local address on the wildcard socket falls back to the wildcard block.
    assert router.select(("10.1.2.3", 9000), "specific").server_names == ()


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/", "/"),
        ("/index.html", "/"),
        ("/files", "/files"),
        ("/files/", "/files"),
        ("/files/a.txt", "/files"),
        ("/filesystem", "/"),
        ("/files/deep", "/files/deep"),
        ("/files/deeper", "/files"),
        ("/files/deep/x", "/files/deep"),
        ("/a/b/c", "/a/b"),
        ("/a/bc", "/"),
        ("/a", "/"),
    ],
)
def test_longest_prefix_on_a_segment_boundary(router: Router, path: str, prefix: str) -> None:
    server = router.select(("127.0.0.1", 8080), "")
    location = router.match(server, path)
    assert location is not None and location.prefix == prefix


def test_no_location_matches_without_a_root_location(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    config = loads("server {\n port 80\n location /only { root ./f }\n}", tmp_path / "t.conf")
    router = Router(config)
    server = router.select(("0.0.0.0", 80), "")
    assert router.match(server, "/elsewhere") is None
    assert router.match(server, "/only/x") is not None


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/a/b?x=1&y", "/a/b", "x=1&y"),
        ("/a%20b", "/a b", ""),
        ("/%E2%82%AC", "/\u20ac", ""),
        ("/a/./b", "/a/b", ""),
        ("/a/../b", "/b", ""),
        ("/a/b/..", "/a/", ""),
        ("/a//b///c", "/a/b/c", ""),
        ("/a/%2e%2e/b", "/b", ""),
        ("/a/..%2fb", "/b", ""),
        ("/a/", "/a/", ""),
        ("/a?q=%2e%2e", "/a", "q=%2e%2e"),
        ("http://h/x/y?z", "/x/y", "z"),
        ("http://h", "/", ""),
        ("*", "*", ""),
        ("/%ff", "/\udcff", ""),
    ],
)
def test_normalize_target(target: str, path: str, query: str) -> None:
    assert normalize_target(target) == (path, query)


@pytest.mark.parametrize(
    "target",
    ["/..", "/../x", "/a/../../x", "/%2e%2e/x", "/a%2f..%2f..%2fx", "/%zz", "/%2", "/a%00b", "/%"],
)
def test_normalize_target_rejects(target: str) -> None:
    with pytest.raises(HTTPError) as info:
        normalize_target(target)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("a.example", "a.example"),
        ("A.Example:8080", "a.example"),
        ("[::1]:80", "[::1]"),
        ("x.", "x"),
    ],
)
def test_split_host(host: str, name: str) -> None:
    assert split_host(host) == name


def test_wildcard_and_regex_names_follow_nginx_precedence(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    names = [
        "default",
        "exact.example.com",
        "*.example.com",
        "*.deep.example.com",
        ".example.org",
        "mail.*",
        "mail.example.*",
        '"~^api[0-9]+\\.(?P<zone>.+)$"',
        '"~^api"',
        '""',
    ]
    text = "".join(
        f"server {{\n port 8080\n root ./www\n server_name {name}\n}}\n" for name in names
    )
    router = Router(loads(text, tmp_path / "t.conf"))

    def chosen(host: str) -> str:
        return router.select(("0.0.0.0", 8080), host).server_names[0]

    assert chosen("exact.example.com") == "exact.example.com"  # exact beats *.example.com
    assert chosen("www.example.com") == "*.example.com"
    assert chosen("a.b.example.com") == "*.example.com"  # any depth
    assert chosen("x.deep.example.com") == "*.deep.example.com"  # the longest wins
    assert chosen("example.com") == "default"  # "*." needs a label
    assert chosen("example.org") == ".example.org"  # ".name" is the name too
    assert chosen("www.example.org") == ".example.org"
    assert chosen("mail.other.net") == "mail.*"
    assert chosen("mail.example.co.uk") == "mail.example.*"  # the longest wins
    assert chosen("mail") == "default"  # ".*" needs a label
    assert chosen("mail.example.com") == "*.example.com"  # leading before trailing
    assert chosen("API7.Other.NET:8080") == "~^api[0-9]+\\.(?P<zone>.+)$"  # regex, first one
    assert chosen("apix") == "~^api"
    assert chosen("nothing.test") == "default"
    assert chosen("") == ""  # no Host: the "" name
    assert chosen("www.example.com") == "*.example.com"  # memoised answer is the same
