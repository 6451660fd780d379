"""Static files, listings, redirects, virtual hosts and error pages, end to end."""

from __future__ import annotations

import email.utils
import re
import socket
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin

import requests

from tests.conftest import Server, recv_until
from tests.e2e.conftest import BIG_SIZE


def test_index_is_served_with_its_fields(site: Server) -> None:
    r = requests.get(site.url("/"))
    assert r.status_code == 200
    assert r.text == "<h1>home</h1>\n"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Length"] == str(len(r.content))
    assert r.headers["Server"].startswith("localhost/")
    assert email.utils.parsedate_to_datetime(r.headers["Date"]) is not None
    assert email.utils.parsedate_to_datetime(r.headers["Last-Modified"]) is not None


def test_content_types_come_from_mimetypes(site: Server) -> None:
    assert (
        requests.get(site.url("/page.txt")).headers["Content-Type"] == "text/plain; charset=utf-8"
    )
    assert (
        requests.get(site.url("/data.json")).headers["Content-Type"].startswith("application/json")
    )
    assert requests.get(site.url("/big.bin")).headers["Content-Type"] == "application/octet-stream"


def test_large_file_arrives_whole(site: Server, tmp_path: Path) -> None:
    r = requests.get(site.url("/big.bin"))
    assert r.status_code == 200
    assert len(r.content) == BIG_SIZE
    assert int(r.headers["Content-Length"]) == BIG_SIZE
    served_root = site.config.parent / "www" / "big.bin"
    assert r.content == served_root.read_bytes()


def test_head_has_the_get_fields_and_no_body(site: Server) -> None:
    get = requests.get(site.url("/page.txt"))
    head = requests.head(site.url("/page.txt"))
    assert head.status_code == 200
    assert head.content == b""
    for name in ("Content-Type", "Content-Length", "Last-Modified"):
        assert head.headers[name] == get.headers[name]
    raw = site.raw(b"HEAD /page.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n"), "HEAD must not send a body"


def test_missing_file_gets_the_custom_404(site: Server) -> None:
    r = requests.get(site.url("/nope"))
    assert r.status_code == 404
    assert "CUSTOM 404 PAGE" in r.text
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"


def test_missing_error_page_file_falls_back_to_builtin(site: Server) -> None:
    r = requests.get(site.url("/noindex/"))
    assert r.status_code == 403
    assert "403 Forbidden" in r.text


def test_directory_without_slash_redirects(site: Server) -> None:
    r = requests.get(site.url("/files/sub?x=1"), allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"] == "/files/sub/?x=1"
    assert requests.get(site.url("/files/sub")).url.endswith("/files/sub/")


def test_location_prefix_without_slash_redirects_to_the_listing(site: Server) -> None:
    r = requests.get(site.url("/files"), allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"] == "/files/"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs)["href"] or "")

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_listing_escapes_hides_dotfiles_and_links_work(site: Server) -> None:
    r = requests.get(site.url("/files/"))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert ".secret" not in r.text
    assert "<odd>" not in r.text and "&lt;odd&gt; &amp; name.txt" in r.text
    parser = _Links()
    parser.feed(r.text)
    names = {unquote(link) for link in parser.links}
    assert {
        "../",
        "sub/",
        "a.txt",
        "b.html",
        "<odd> & name.txt",
        "space name.txt",
        "ünï.txt",
    } <= names
    # Folders first.
    assert parser.links.index("sub/") < parser.links.index("a.txt")
    for link in parser.links:
        if link in ("../", "escape/"):
            continue
        followed = requests.get(urljoin(r.url, link))
        assert followed.status_code == 200, link
    # The size (7 bytes) is in the cell after the name, in bytes or human-readable.
    size = re.search(r'<a href="a\.txt">a\.txt</a></td>\s*<td[^>]*>(.*?)</td>', r.text)
    assert size is not None and re.sub(r"<[^>]+>", "", size.group(1)).strip() in ("7", "7 B")


def test_listing_off_without_index_is_forbidden(site: Server) -> None:
    assert requests.get(site.url("/noindex/")).status_code == 403
    assert requests.get(site.url("/noindex/x.txt")).text == "x\n"


def test_redirect_location(site: Server) -> None:
    r = requests.get(site.url("/old-path"), allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"] == "http://example.com/new"
    r = requests.get(site.url("/old-path/deeper"), allow_redirects=False)
    assert r.status_code == 301


def test_location_match_is_on_segment_boundary(site: Server) -> None:
    # /filesystem must not match "location /files"; it falls to "/" and is missing.
    r = requests.get(site.url("/filesystem"))
    assert r.status_code == 404


def test_virtual_hosts(site: Server) -> None:
    assert (
        requests.get(site.url("/"), headers={"Host": "other.local"}).text == "<h1>other site</h1>\n"
    )
    assert (
        requests.get(site.url("/"), headers={"Host": "OTHER.local:80"}).text
        == "<h1>other site</h1>\n"
    )
    assert (
        requests.get(site.url("/"), headers={"Host": "unknown.example"}).text == "<h1>home</h1>\n"
    )
    for host in ("www.other.local", "a.b.Other.Local:8080"):  # the *.other.local wildcard
        assert requests.get(site.url("/"), headers={"Host": host}).text == "<h1>other site</h1>\n"


def test_second_port_serves_the_default_server(site: Server) -> None:
    port = site.ports[1]
    r = requests.get(site.url("/", port=port))
    assert r.text == "<h1>home</h1>\n"
    # other.local listens only on the first port.
    r = requests.get(site.url("/", port=port), headers={"Host": "other.local"})
    assert r.text == "<h1>home</h1>\n"


def test_method_not_allowed_has_allow(site: Server) -> None:
    r = requests.delete(site.url("/files/a.txt"))
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
    r = requests.post(site.url("/page.txt"), data=b"x")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_unimplemented_method_is_501(site: Server) -> None:
    raw = site.raw(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 501 ")
    assert b"Connection: close" in raw


def test_options(site: Server) -> None:
    r = requests.options(site.url("/files/"))
    assert r.status_code == 200
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert r.headers["Content-Length"] == "0"
    raw = site.raw(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"Allow: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT" in raw


def test_cgi_script_source_is_never_served(site: Server) -> None:
    # The script runs (and, printing no header, gets 502); its source never leaks.
    r = requests.get(site.url("/cgi-bin/script.py"))
    assert "source code" not in r.text
    assert r.status_code == 502


def test_a_name_longer_than_any_file_name_is_404_not_403(site: Server) -> None:
    # ENAMETOOLONG means no such file can exist (NGINX answers 404 too).
    assert requests.get(site.url("/" + "a" * 300)).status_code == 404
    assert requests.get(site.url("/files/" + "b" * 300)).status_code == 404


def test_the_host_may_change_between_requests_of_a_connection(site: Server) -> None:
    """Each request of a kept-alive connection chooses its virtual host, and a
    head seen before on one address answers as its own address's blocks say."""

    def get(sock: socket.socket, host: str) -> bytes:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = recv_until(sock, b"</h1>\n")
        return data.partition(b"\r\n\r\n")[2]

    home, other = b"<h1>home</h1>\n", b"<h1>other site</h1>\n"
    with socket.create_connection(("127.0.0.1", site.port), timeout=5) as sock:
        hosts = ["other.local", "other.local", "unknown.example", "other.local", "x"]
        assert [get(sock, host) for host in hosts] == [other, other, home, other, home]
    # other.local listens on the first port only: the same head on the second
    # port is the default server's.
    for port, expected in ((site.ports[1], home), (site.port, other), (site.ports[1], home)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert get(sock, "other.local") == expected
