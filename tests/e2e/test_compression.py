"""gzip, br and zstd on the fly and precompressed files, end to end.

One server for the module; every response is checked by decoding it with
the coding's own library (zlib/gzip, brotli, zstandard) and comparing with
the bytes on disk or the bytes the script or application produced.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest
import requests
import zstandard

from tests.conftest import Server, read_all, recv_until, start_server
from tests.proc import open_fds, rss_kib, wait_for

CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    wsgi_path ./apps
    error_page 404 ./www/errors/404.html
    gzip on
    gzip_vary on
    brotli on
    zstd on

    location / { }
    location /files {
        root ./www/files
        directory_listing on
    }
    location /cgi-bin {
        root ./cgi-bin
        cgi .py python3
    }
    location /app {
        wsgi app:application
    }
    location /off {
        root ./www
        gzip off
        brotli off
        zstd off
    }
    location /gzip-only {
        root ./www
        brotli off
        zstd off
    }
    location /v10 {
        root ./www
        gzip_http_version 1.0
    }
    location /v10-cgi {
        root ./cgi-bin
        cgi .py python3
        gzip_http_version 1.0
    }
    location /proxied {
        root ./www
        gzip_proxied any
    }
    location /msie {
        root ./www
        gzip_disable msie6
    }
    location /pre {
        root ./www/pre
        gzip off
        brotli off
        zstd off
        gzip_static on
        brotli_static on
        zstd_static on
    }
    location /pre-fly {
        root ./www/pre
        brotli off
        zstd off
        gzip_static on
    }
}
"""

CODINGS = ["gzip", "br", "zstd"]
# Compressible text of a given size (lines that differ, as in a real page).
TEXT = "".join(
    f"<p>paragraph {i}: the quick brown fox jumps over the lazy dog</p>\n" for i in range(40000)
).encode()
SMALL = TEXT[:4000]  # kept in memory by the open-file cache
MEDIUM = TEXT[:200_000]  # cached by descriptor; its encoded variants are kept
LARGE = TEXT[:2_500_000]  # above the variant limit: encoded as it is sent
TINY = b"<p>tiny</p>\n"  # below gzip_min_length (256 bytes, the README's default)
ERROR_PAGE = ("<html><body>" + "<p>CUSTOM NOT FOUND PAGE</p>\n" * 30 + "</body></html>\n").encode()
CGI_BODY = b"".join(b"<li>cgi line %d</li>\n" % i for i in range(3000))
WSGI_WHOLE = b"".join(b'{"item": %d, "name": "entry number %d"},\n' % (i, i) for i in range(500))
WSGI_CHUNKS = [b"".join(b"streamed %d.%d\n" % (n, i) for i in range(400)) for n in range(12)]
# Poorly compressible but listed text: its encoded form is nearly as large.
SLOW_SIZE = 24 * 1024 * 1024

CGI_SCRIPTS = {
    "page.py": f"""
import sys
body = {CGI_BODY!r}
sys.stdout.write("Content-Type: text/html\\r\\n\\r\\n")
sys.stdout.flush()
sys.stdout.buffer.write(body)
""",
    "encoded.py": f"""
import gzip, sys
body = gzip.compress({CGI_BODY!r})
sys.stdout.write("Content-Type: text/html\\r\\nContent-Encoding: gzip\\r\\n\\r\\n")
sys.stdout.flush()
sys.stdout.buffer.write(body)
""",
    "notransform.py": f"""
import sys
sys.stdout.write("Content-Type: text/html\\r\\nCache-Control: no-transform\\r\\n\\r\\n")
sys.stdout.flush()
sys.stdout.buffer.write({CGI_BODY!r})
""",
}

APP = f"""
WHOLE = {WSGI_WHOLE!r}
CHUNKS = {WSGI_CHUNKS!r}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/whole"):
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(WHOLE))), ("ETag", '"v1"')])
        return [WHOLE]
    if path.endswith("/vary"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Vary", "Cookie")])
        return [WHOLE]

    def stream():
        for chunk in CHUNKS:
            yield chunk

    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return stream()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("compression")
    www = root / "www"
    (www / "files" / "sub").mkdir(parents=True)
    (www / "errors").mkdir()
    (www / "pre").mkdir()
    (www / "small.html").write_bytes(SMALL)
    (www / "medium.html").write_bytes(MEDIUM)
    (www / "large.txt").write_bytes(LARGE)
    (www / "tiny.html").write_bytes(TINY)
    (www / "data.json").write_bytes(WSGI_WHOLE)
    (www / "image.png").write_bytes(SMALL)  # listed as image/png: never encoded
    (www / "styles.css").write_bytes(SMALL)
    slow = base64.b64encode(os.urandom(SLOW_SIZE * 3 // 4))
    (www / "slow.txt").write_bytes(slow)
    (www / "errors" / "404.html").write_bytes(ERROR_PAGE)
    for index in range(60):
        (www / "files" / f"entry-{index:03d}-with-a-long-name.txt").write_text("x\n")
    (www / "pre" / "page.html").write_bytes(SMALL)
    (www / "pre" / "page.html.gz").write_bytes(gzip.compress(SMALL, 9))
    (www / "pre" / "page.html.br").write_bytes(brotli.compress(SMALL))
    (www / "pre" / "page.html.zst").write_bytes(zstandard.ZstdCompressor().compress(SMALL))
    (www / "pre" / "only-gz.css").write_bytes(SMALL)
    (www / "pre" / "only-gz.css.gz").write_bytes(gzip.compress(SMALL, 9))
    (www / "pre" / "none.html").write_bytes(SMALL)
    (www / "pre" / "orphan.txt.gz").write_bytes(gzip.compress(SMALL, 9))
    cgi = root / "cgi-bin"
    cgi.mkdir()
    for name, text in CGI_SCRIPTS.items():
        (cgi / name).write_text(text)
    (root / "apps").mkdir()
    (root / "apps" / "app.py").write_text(APP)
    server = start_server(CONFIG, root)
    yield server
    server.stop()


def decode(coding: str | None, data: bytes) -> bytes:
    if coding is None:
        return data
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    assert coding == "zstd"
    # A streamed frame has no content size: read it with a stream decoder.
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


def fetch(
    server: Server,
    path: str,
    accept: str | None = "gzip",
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[requests.Response, bytes]:
    """The response and its body as sent (content coding kept; chunks joined)."""
    sent = {"Accept-Encoding": accept if accept is not None else "", **(headers or {})}
    if accept is None:
        sent["Accept-Encoding"] = None  # type: ignore[assignment]  # requests: leave it out
    response = requests.request(method, server.url(path), headers=sent, stream=True, timeout=20)
    body = response.raw.read(decode_content=False)
    response.close()
    return response, body


def assert_encoded(response: requests.Response, body: bytes, coding: str, original: bytes) -> None:
    assert response.status_code == 200 or response.status_code == 404
    assert response.headers.get("Content-Encoding") == coding
    assert "Accept-Encoding" in response.headers.get("Vary", "")
    assert len(body) < len(original)
    assert decode(coding, body) == original


# -- static files --------------------------------------------------------------------


@pytest.mark.parametrize("coding", CODINGS)
def test_small_cached_file_each_coding(site: Server, coding: str) -> None:
    plain, plain_body = fetch(site, "/small.html", accept=None)
    assert plain_body == SMALL and "Content-Encoding" not in plain.headers
    first, first_body = fetch(site, "/small.html", accept=coding)
    assert_encoded(first, first_body, coding, SMALL)
    assert int(first.headers["Content-Length"]) == len(first_body)
    # From the open-file cache now: the same bytes, with their length, again.
    for _ in range(2):
        again, again_body = fetch(site, "/small.html", accept=coding)
        assert again_body == first_body
        assert again.headers["Content-Length"] == str(len(first_body))
    # A strong ETag becomes weak on the encoded variant.
    assert plain.headers["ETag"].startswith('"')
    assert first.headers["ETag"] == "W/" + plain.headers["ETag"]
    assert "Accept-Ranges" not in first.headers


@pytest.mark.parametrize("coding", CODINGS)
def test_medium_file_streams_first_then_comes_from_the_cache(site: Server, coding: str) -> None:
    path = f"/medium.html?{coding}"  # the query does not change the file
    seen = []
    for _ in range(3):
        response, body = fetch(site, path, accept=coding)
        assert_encoded(response, body, coding, MEDIUM)
        seen.append((response.headers.get("Content-Length"), body))
    # Once cached, the variant goes out with its Content-Length, byte for byte the same.
    assert seen[2][0] == str(len(seen[2][1]))
    assert seen[1] == seen[2]


@pytest.mark.parametrize("coding", CODINGS)
def test_large_file_is_encoded_as_it_is_sent(site: Server, coding: str) -> None:
    for _ in range(2):
        response, body = fetch(site, "/large.txt", accept=coding)
        assert_encoded(response, body, coding, LARGE)
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"


def test_head_gets_the_fields_a_get_gets(site: Server) -> None:
    for path in ("/small.html", "/large.txt", "/files/"):
        get, _ = fetch(site, path, accept="gzip")
        head, body = fetch(site, path, accept="gzip", method="HEAD")
        assert body == b""
        for name in ("Content-Encoding", "Vary", "ETag", "Content-Length", "Transfer-Encoding"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


# -- negotiation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, br", "br"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("*", "zstd"),
        ("*;q=0.5, gzip", "gzip"),
        ("br;q=0, *", "zstd"),
        ("gzip;q=0", None),
        ("*;q=0", None),
        ("identity", None),
        ("gzip;q=0.5, identity", None),
        ("identity;q=0, br", "br"),
        ("deflate", None),
        ("gzip;q=7, br;q=0.2", "br"),
        ("", None),
        (None, None),
    ],
)
def test_negotiation(site: Server, accept: str | None, expected: str | None) -> None:
    response, body = fetch(site, "/small.html", accept=accept)
    assert response.headers.get("Content-Encoding") == expected
    assert decode(expected, body) == SMALL
    # Whatever the client asked, the answer says it varies.
    assert response.headers["Vary"] == "Accept-Encoding"


def test_only_the_codings_on_in_the_location(site: Server) -> None:
    response, body = fetch(site, "/gzip-only/small.html", accept="zstd, br, gzip")
    assert_encoded(response, body, "gzip", SMALL)
    response, body = fetch(site, "/gzip-only/small.html", accept="zstd, br")
    assert "Content-Encoding" not in response.headers and body == SMALL


# -- every source of responses -----------------------------------------------------------


@pytest.mark.parametrize("coding", CODINGS)
def test_directory_listing(site: Server, coding: str) -> None:
    plain, plain_body = fetch(site, "/files/", accept=None)
    assert b"entry-059-with-a-long-name.txt" in plain_body
    response, body = fetch(site, "/files/", accept=coding)
    assert_encoded(response, body, coding, plain_body)


@pytest.mark.parametrize("coding", CODINGS)
def test_error_page(site: Server, coding: str) -> None:
    response, body = fetch(site, "/no/such/page.html", accept=coding)
    assert response.status_code == 404
    assert_encoded(response, body, coding, ERROR_PAGE)


@pytest.mark.parametrize("coding", CODINGS)
def test_cgi_output(site: Server, coding: str) -> None:
    response, body = fetch(site, "/cgi-bin/page.py", accept=coding)
    assert_encoded(response, body, coding, CGI_BODY)
    assert response.headers["Transfer-Encoding"] == "chunked"


@pytest.mark.parametrize("coding", CODINGS)
def test_wsgi_whole_and_streamed(site: Server, coding: str) -> None:
    response, body = fetch(site, "/app/whole", accept=coding)
    assert_encoded(response, body, coding, WSGI_WHOLE)
    assert response.headers["ETag"] == 'W/"v1"'
    response, body = fetch(site, "/app/stream", accept=coding)
    assert_encoded(response, body, coding, b"".join(WSGI_CHUNKS))
    assert "Content-Length" not in response.headers


def test_an_existing_vary_is_merged(site: Server) -> None:
    response, body = fetch(site, "/app/vary", accept="gzip")
    assert response.headers["Vary"] == "Cookie, Accept-Encoding"
    assert_encoded(response, body, "gzip", WSGI_WHOLE)


# -- what is never encoded ------------------------------------------------------------


def test_small_bodies_are_not_encoded(site: Server) -> None:
    response, body = fetch(site, "/tiny.html", accept="gzip, br, zstd")
    assert "Content-Encoding" not in response.headers
    assert body == TINY


def test_ranges_are_answered_from_the_plain_file(site: Server) -> None:
    response, body = fetch(site, "/medium.html", accept="gzip", headers={"Range": "bytes=10-99"})
    assert response.status_code == 206
    assert "Content-Encoding" not in response.headers
    assert body == MEDIUM[10:100]


def test_unlisted_types_are_not_encoded(site: Server) -> None:
    response, body = fetch(site, "/image.png", accept="gzip, br, zstd")
    assert response.headers["Content-Type"] == "image/png"
    assert "Content-Encoding" not in response.headers and "Vary" not in response.headers
    assert body == SMALL
    # text/css is in the default list.
    response, body = fetch(site, "/styles.css", accept="gzip")
    assert_encoded(response, body, "gzip", SMALL)


def test_an_encoded_response_is_not_encoded_again(site: Server) -> None:
    response, body = fetch(site, "/cgi-bin/encoded.py", accept="br, gzip")
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == CGI_BODY


def test_no_transform_is_respected(site: Server) -> None:
    response, body = fetch(site, "/cgi-bin/notransform.py", accept="gzip")
    assert "Content-Encoding" not in response.headers
    assert body == CGI_BODY


def test_off_location_pays_nothing(site: Server) -> None:
    response, body = fetch(site, "/off/small.html", accept="gzip, br, zstd")
    assert "Content-Encoding" not in response.headers and "Vary" not in response.headers
    assert body == SMALL


def test_a_conditional_request_gets_304_for_the_weak_tag(site: Server) -> None:
    response, _ = fetch(site, "/small.html", accept="gzip")
    etag = response.headers["ETag"]
    again, body = fetch(site, "/small.html", accept="gzip", headers={"If-None-Match": etag})
    assert again.status_code == 304 and body == b""
    # The 304 has the ETag and Vary the 200 would have had (RFC 9110 §15.4.5),
    # and no representation metadata beyond them.
    assert again.headers["ETag"] == etag and etag.startswith('W/"')
    assert again.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in again.headers and "Content-Type" not in again.headers


def test_a_304_for_a_client_without_the_coding_has_the_plain_tag(site: Server) -> None:
    response, _ = fetch(site, "/small.html", accept="gzip")
    weak = response.headers["ETag"]
    plain, body = fetch(site, "/small.html", accept=None, headers={"If-None-Match": weak})
    # If-None-Match compares weakly: the plain file matches its encoded variant's tag.
    assert plain.status_code == 304 and body == b""
    assert plain.headers["ETag"] == weak[2:]
    assert plain.headers["Vary"] == "Accept-Encoding"  # gzip_vary on


def raw_request(server: Server, request: bytes) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_http10_is_not_encoded_by_default(site: Server) -> None:
    request = b"GET /small.html HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"
    head, body = raw_request(site, request)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-encoding" not in head.lower()
    assert body == SMALL


def test_http10_with_gzip_http_version_is_close_delimited(site: Server) -> None:
    request = b"GET /v10/large.txt HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"
    head, body = raw_request(site, request)
    lower = head.lower()
    assert b"content-encoding: gzip" in lower
    assert b"content-length" not in lower and b"transfer-encoding" not in lower
    assert gzip.decompress(body) == LARGE
    request = b"GET /v10/small.html HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"
    head, body = raw_request(site, request)
    assert b"content-encoding: gzip" in head.lower()
    assert gzip.decompress(body) == SMALL


def test_proxied_requests(site: Server) -> None:
    via = {"Via": "1.1 proxy.example"}
    response, body = fetch(site, "/small.html", accept="gzip", headers=via)
    assert "Content-Encoding" not in response.headers and body == SMALL
    response, body = fetch(site, "/proxied/small.html", accept="gzip", headers=via)
    assert_encoded(response, body, "gzip", SMALL)


def test_gzip_disable_msie6(site: Server) -> None:
    old = {"User-Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.0)"}
    response, body = fetch(site, "/msie/small.html", accept="gzip", headers=old)
    assert "Content-Encoding" not in response.headers and body == SMALL
    sv1 = {"User-Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"}
    response, body = fetch(site, "/msie/small.html", accept="gzip", headers=sv1)
    assert_encoded(response, body, "gzip", SMALL)


# -- precompressed files ---------------------------------------------------------------


@pytest.mark.parametrize(("coding", "ext"), [("gzip", ".gz"), ("br", ".br"), ("zstd", ".zst")])
def test_static_variant_is_sent_as_it_is(site: Server, coding: str, ext: str) -> None:
    on_disk = (Path(site.config.parent) / "www" / "pre" / f"page.html{ext}").read_bytes()
    plain, _ = fetch(site, "/pre/page.html", accept=None)
    response, body = fetch(site, "/pre/page.html", accept=coding)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == coding
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(on_disk))
    assert body == on_disk
    assert decode(coding, body) == SMALL
    # The variant's own validators.
    assert response.headers["ETag"] != plain.headers["ETag"]
    assert "Last-Modified" in response.headers


def test_static_preference_and_fallbacks(site: Server) -> None:
    response, _ = fetch(site, "/pre/page.html", accept="gzip, br, zstd")
    assert response.headers["Content-Encoding"] == "zstd"
    # Only a .gz there: gzip even when br is preferred.
    response, body = fetch(site, "/pre/only-gz.css", accept="br, gzip")
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == SMALL
    # No variant at all: the plain file (this location encodes nothing on the fly).
    response, body = fetch(site, "/pre/none.html", accept="gzip, br, zstd")
    assert "Content-Encoding" not in response.headers and body == SMALL
    # Not accepted: the plain file.
    response, body = fetch(site, "/pre/page.html", accept="identity")
    assert "Content-Encoding" not in response.headers and body == SMALL
    # A .gz without its original is served to a client that takes it (as NGINX).
    response, body = fetch(site, "/pre/orphan.txt", accept="gzip")
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == SMALL
    response, _ = fetch(site, "/pre/orphan.txt", accept=None)
    assert response.status_code == 404


def test_static_falls_back_to_encoding_on_the_fly(site: Server) -> None:
    response, body = fetch(site, "/pre-fly/none.html", accept="gzip")
    assert_encoded(response, body, "gzip", SMALL)
    on_disk = (Path(site.config.parent) / "www" / "pre" / "page.html.gz").read_bytes()
    response, body = fetch(site, "/pre-fly/page.html", accept="gzip")
    assert body == on_disk
    assert response.headers["Vary"] == "Accept-Encoding"


def test_static_variant_conditional(site: Server) -> None:
    response, _ = fetch(site, "/pre/page.html", accept="gzip")
    etag = response.headers["ETag"]
    again, body = fetch(site, "/pre/page.html", accept="gzip", headers={"If-None-Match": etag})
    assert again.status_code == 304 and body == b""


# -- memory ----------------------------------------------------------------------------------


def test_slow_client_reading_a_large_encoded_file_keeps_memory_bounded(site: Server) -> None:
    expected = (Path(site.config.parent) / "www" / "slow.txt").read_bytes()
    pid = site.process.pid
    base = peak = rss_kib(pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", site.port))
    decoder = zlib.decompressobj(31)
    digest = hashlib.sha256()
    received = 0
    with sock:
        sock.sendall(
            b"GET /slow.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
        data = recv_until(sock, b"\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head and b"Transfer-Encoding: chunked" in head
        chunks = [rest]
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            chunks.append(piece)
            received += len(piece)
            if received % (1 << 20) < 65536:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.01)  # a slow reader: the server must wait, not buffer
    body = dechunk(b"".join(chunks))
    digest.update(decoder.decompress(body) + decoder.flush())
    assert digest.digest() == hashlib.sha256(expected).digest()
    # The encoded body is ~18 MiB; the server holds at most a few reads of it.
    assert received > 16 * 1024 * 1024
    assert peak - base < 8 * 1024, f"RSS grew by {peak - base} KiB"


def dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    index = 0
    while True:
        end = data.index(b"\r\n", index)
        size = int(data[index:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        index = end + 2 + size + 2


# -- cached variants follow their files ----------------------------------------------------


def test_a_changed_file_gets_a_new_encoded_variant(site: Server) -> None:
    path = Path(site.config.parent) / "www" / "changing.html"
    path.write_bytes(SMALL)
    for _ in range(3):
        response, body = fetch(site, "/changing.html", accept="br")
        assert_encoded(response, body, "br", SMALL)
    changed = SMALL.replace(b"paragraph", b"PARAGRAPH")
    path.write_bytes(changed)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    response, body = fetch(site, "/changing.html", accept="br")
    assert_encoded(response, body, "br", changed)


def test_a_changed_static_variant_is_served_anew(site: Server) -> None:
    path = Path(site.config.parent) / "www" / "pre" / "changing.txt.gz"
    path.write_bytes(gzip.compress(SMALL))
    for _ in range(3):
        response, body = fetch(site, "/pre/changing.txt", accept="gzip")
        assert gzip.decompress(body) == SMALL
        assert response.headers["Content-Length"] == str(len(body))
    changed = SMALL[:1000]
    path.write_bytes(gzip.compress(changed))
    response, body = fetch(site, "/pre/changing.txt", accept="gzip")
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == changed


def test_http10_streamed_output_is_close_delimited(site: Server) -> None:
    request = b"GET /v10-cgi/page.py HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"
    head, body = raw_request(site, request)
    lower = head.lower()
    assert b"content-encoding: gzip" in lower
    assert b"transfer-encoding" not in lower and b"content-length" not in lower
    assert gzip.decompress(body) == CGI_BODY


def test_a_client_leaving_mid_file_releases_the_file(site: Server) -> None:
    pid = site.process.pid
    fetch(site, "/large.txt", accept="gzip")  # the file's cache entry holds its descriptor now
    assert wait_for(lambda: fetch(site, "/small.html")[0].status_code == 200)
    before = open_fds(pid)
    for _ in range(5):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(("127.0.0.1", site.port))
        sock.sendall(b"GET /slow.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        assert b"Content-Encoding: gzip" in recv_until(sock, b"\r\n\r\n")
        sock.close()  # mid-body: the server is still sending
    assert wait_for(lambda: open_fds(pid) <= before + 1, limit=10), (open_fds(pid), before)
    response, body = fetch(site, "/large.txt", accept="zstd")
    assert_encoded(response, body, "zstd", LARGE)
