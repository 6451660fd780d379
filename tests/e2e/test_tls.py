"""HTTPS end to end: a real server, real TLS clients (ssl, requests, curl, openssl).

Certificates are made at run time with ``trustme``: one CA, a certificate for
``a.test`` (also ``localhost`` and ``127.0.0.1``: the default block) and one
for ``b.test``, both served on one TLS port and chosen by SNI.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from tests.conftest import Server, read_all, recv_until, start_server

HEADER_TIMEOUT = 2  # client_header_timeout of the server below: the handshake deadline

CONFIG = """
error_log stderr debug
access_log off
ssl_certificate a.crt
ssl_certificate_key a.key
server {
    host 127.0.0.1
    port {port0} {port1} ssl
    server_name a.test localhost
    root www
    client_header_timeout %ds
    location /where { return 200 "$scheme|$https" }
    location /cgi-bin { root cgi-bin; cgi .py %s }
}
server {
    listen 127.0.0.1:{port1} ssl
    server_name b.test
    ssl_certificate b.crt
    ssl_certificate_key b.key
    root www-b
}
"""

ENV_SCRIPT = """\
import os
print("Content-Type: text/plain")
print()
for name in ("HTTPS", "REQUEST_SCHEME", "SERVER_PORT"):
    print(f"{name}={os.environ.get(name, '')}")
"""


def write_cert(ca: trustme.CA, folder: Path, stem: str, *names: str) -> None:
    cert = ca.issue_cert(*names)
    cert.private_key_pem.write_to_path(str(folder / f"{stem}.key"))
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    (folder / f"{stem}.crt").write_bytes(chain)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    write_cert(ca, folder, "a", "a.test", "localhost", "127.0.0.1")
    write_cert(ca, folder, "b", "b.test")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    www = folder / "www"
    (www / "dir").mkdir(parents=True)
    (www / "dir" / "index.html").write_text("in dir\n")
    (www / "small.txt").write_text("hello over TLS\n")
    (www / "big.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    (folder / "www-b").mkdir()
    (folder / "www-b" / "small.txt").write_text("this is b\n")
    (folder / "cgi-bin").mkdir()
    (folder / "cgi-bin" / "env.py").write_text(ENV_SCRIPT)
    return folder


@pytest.fixture(scope="module")
def server(tls_dir: Path) -> Iterator[Server]:
    import sys

    text = CONFIG % (HEADER_TIMEOUT, sys.executable)
    started = start_server(text, tls_dir, nports=2)
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def still_serving(server: Server, tls_dir: Path) -> Iterator[None]:
    """After every test, bad clients included, the server answers over TLS."""
    yield
    assert server.process.poll() is None, server.log()[-2000:]
    response = requests.get(https(server, "/small.txt"), verify=tls_dir / "ca.pem", timeout=5)
    assert response.text == "hello over TLS\n"


def https(server: Server, path: str = "/", host: str = "localhost") -> str:
    return f"https://{host}:{server.ports[1]}{path}"


def client_context(tls_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))


def tls_connect(
    server: Server, tls_dir: Path, name: str = "localhost", timeout: float = 5
) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=timeout)
    return client_context(tls_dir).wrap_socket(raw, server_hostname=name)


def get(sock: ssl.SSLSocket, path: str, host: str, close: bool = True) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    return read_all(sock) if close else b""


def subject_names(sock: ssl.SSLSocket) -> set[str]:
    cert = sock.getpeercert()
    assert cert is not None
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


# -- basics ---------------------------------------------------------------------


def test_requests_verifies_against_the_ca(server: Server, tls_dir: Path) -> None:
    response = requests.get(https(server, "/small.txt"), verify=tls_dir / "ca.pem", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello over TLS\n"
    # The same block answers plain HTTP on its other port.
    assert requests.get(server.url("/small.txt"), timeout=5).text == "hello over TLS\n"


def test_the_connection_reports_tls_details(server: Server, tls_dir: Path) -> None:
    with tls_connect(server, tls_dir) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.selected_alpn_protocol() is None  # the client offered none
    context = client_context(tls_dir)
    context.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_scheme_and_https_variables(server: Server, tls_dir: Path) -> None:
    secure = requests.get(https(server, "/where"), verify=tls_dir / "ca.pem", timeout=5)
    assert secure.text == "https|on"
    plain = requests.get(server.url("/where"), timeout=5)
    assert plain.text == "http|"


def test_directory_redirect_keeps_https(server: Server, tls_dir: Path) -> None:
    response = requests.get(
        https(server, "/dir"), verify=tls_dir / "ca.pem", timeout=5, allow_redirects=False
    )
    assert response.status_code == 301
    # A relative Location (RFC 9110 §10.2.2) stays on https; an absolute one must say https.
    location = response.headers["Location"]
    assert location in ("/dir/", f"https://localhost:{server.ports[1]}/dir/")
    followed = requests.get(https(server, "/dir"), verify=tls_dir / "ca.pem", timeout=5)
    assert followed.url == https(server, "/dir/")
    assert followed.text == "in dir\n"


def test_cgi_sees_https(server: Server, tls_dir: Path) -> None:
    response = requests.get(https(server, "/cgi-bin/env.py"), verify=tls_dir / "ca.pem", timeout=10)
    assert response.status_code == 200
    assert "HTTPS=on\n" in response.text
    assert "REQUEST_SCHEME=https\n" in response.text
    plain = requests.get(server.url("/cgi-bin/env.py"), timeout=10)
    assert "HTTPS=\n" in plain.text and "REQUEST_SCHEME=http\n" in plain.text


# -- SNI and 421 ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.test", "b.test"])
def test_sni_chooses_the_certificate(server: Server, tls_dir: Path, name: str) -> None:
    with tls_connect(server, tls_dir, name) as sock:
        assert name in subject_names(sock)
        reply = get(sock, "/small.txt", name)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"this is b\n" if name == "b.test" else b"hello over TLS\n")


def test_unknown_sni_gets_the_default_block(server: Server, tls_dir: Path) -> None:
    context = client_context(tls_dir)
    context.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=5)
    with context.wrap_socket(raw, server_hostname="nobody.test") as sock:
        assert "a.test" in subject_names(sock)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("name", ["a.test", "b.test"])
def test_sni_with_curl_resolve(server: Server, tls_dir: Path, name: str) -> None:
    port = server.ports[1]
    result = subprocess.run(
        ["curl", "-sS", "--cacert", str(tls_dir / "ca.pem"), "--resolve",
         f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/small.txt"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("this is b\n" if name == "b.test" else "hello over TLS\n")


def test_host_of_a_block_with_another_certificate_is_421(server: Server, tls_dir: Path) -> None:
    with tls_connect(server, tls_dir, "a.test") as sock:
        reply = get(sock, "/small.txt", "b.test")
    assert reply.startswith(b"HTTP/1.1 421 Misdirected Request\r\n")
    # A Host of the same certificate is fine on that connection.
    with tls_connect(server, tls_dir, "a.test") as sock:
        assert get(sock, "/small.txt", "localhost").startswith(b"HTTP/1.1 200 ")


# -- protocol versions -------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused(server: Server, tls_dir: Path) -> None:
    context = client_context(tls_dir)
    context.minimum_version = ssl.TLSVersion.TLSv1_1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that the refusal is the server's
    raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=5)
    with pytest.raises(ssl.SSLError) as caught:
        context.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    assert "PROTOCOL_VERSION" in str(caught.value).upper()
    # TLS 1.2 alone works.
    context = client_context(tls_dir)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.version() == "TLSv1.2"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_tls1_1_is_refused(server: Server) -> None:
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{server.ports[1]}"]
    refused = subprocess.run(
        [*command, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
        input="", capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "protocol version" in refused.stderr + refused.stdout
    accepted = subprocess.run(
        [*command, "-tls1_2"], input="", capture_output=True, text=True, timeout=20
    )
    assert "Protocol  : TLSv1.2" in accepted.stdout


# -- bad clients ---------------------------------------------------------------------


def test_plain_http_on_the_tls_port_is_400(server: Server) -> None:
    reply = server.raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", port=server.ports[1])
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in head
    assert b"The plain HTTP request was sent to HTTPS port" in body
    assert body.startswith(b"<html>")


def client_hello() -> bytes:
    """The first flight of a real TLS client (a ClientHello record)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_client_stalling_mid_handshake_is_closed_at_the_deadline(
    server: Server, tls_dir: Path
) -> None:
    hello = client_hello()
    stalled = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=15)
    stalled.sendall(hello[: len(hello) // 2])
    started = time.monotonic()
    # Others are served meanwhile.
    for _ in range(5):
        response = requests.get(https(server, "/small.txt"), verify=tls_dir / "ca.pem", timeout=5)
        assert response.status_code == 200
    assert time.monotonic() - started < HEADER_TIMEOUT
    assert stalled.recv(1024) == b""  # blocks until the server closes it
    elapsed = time.monotonic() - started
    stalled.close()
    assert HEADER_TIMEOUT - 0.5 <= elapsed <= HEADER_TIMEOUT + 3


def test_a_silent_client_is_closed_at_the_deadline(server: Server) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.ports[1]), timeout=15) as silent:
        assert silent.recv(1024) == b""
    assert HEADER_TIMEOUT - 0.5 <= time.monotonic() - started <= HEADER_TIMEOUT + 3


def test_garbage_after_a_tls_record_header_is_dropped(server: Server) -> None:
    reply = server.raw(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100, port=server.ports[1])
    assert not reply.startswith(b"HTTP/")


def test_a_client_that_resets_mid_body(server: Server, tls_dir: Path) -> None:
    sock = tls_connect(server, tls_dir)
    sock.sendall(
        b"POST /cgi-bin/env.py HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
        + b"x" * 20000
    )
    # SO_LINGER 0: the close resets the TCP connection under TLS.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def test_a_client_that_resets_mid_download(server: Server, tls_dir: Path) -> None:
    sock = tls_connect(server, tls_dir)
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
    recv_until(sock, b"\r\n\r\n")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


# -- keep-alive, pipelining, many handshakes ---------------------------------------------


def test_keep_alive_and_pipelining(server: Server, tls_dir: Path) -> None:
    with tls_connect(server, tls_dir) as sock:
        request = b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
        sock.sendall(request * 3)  # three requests in one write: pipelined
        data = b""
        while data.count(b"hello over TLS\n") < 3:
            data += recv_until(sock, b"hello over TLS\n")
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 3
        sock.sendall(request)  # the connection stays open
        assert recv_until(sock, b"hello over TLS\n").startswith(b"HTTP/1.1 200 OK\r\n")
    session = requests.Session()
    for _ in range(5):
        response = session.get(https(server, "/small.txt"), verify=tls_dir / "ca.pem", timeout=5)
        assert response.status_code == 200


def test_session_resumption(server: Server, tls_dir: Path) -> None:
    context = client_context(tls_dir)
    with tls_connect(server, tls_dir) as first:
        context = first.context
        get(first, "/small.txt", "localhost")  # TLS 1.3 tickets come after the handshake
        session = first.session
    raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost", session=session) as again:
        assert again.session_reused


def test_200_concurrent_handshakes(server: Server, tls_dir: Path) -> None:
    context = client_context(tls_dir)
    barrier = threading.Barrier(200, timeout=20)

    def one(_: int) -> bytes:
        raw = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=20)
        barrier.wait()
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return get(sock, "/small.txt", "localhost")

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        replies = list(pool.map(one, range(200), timeout=50))
    assert all(reply.startswith(b"HTTP/1.1 200 ") for reply in replies)
    assert all(reply.endswith(b"hello over TLS\n") for reply in replies)


# -- files over TLS ---------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_10_mib_download_is_identical_with_bounded_memory(server: Server, tls_dir: Path) -> None:
    expected = (tls_dir / "www" / "big.bin").read_bytes()
    pid = server.process.pid
    before = rss_kib(pid)
    peak = before
    with tls_connect(server, tls_dir, timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunks) % 16 == 0:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.001)  # a slow reader: the server must queue, not buffer the file
    reply = b"".join(chunks)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(expected)}".encode() in head
    assert body == expected
    assert peak - before < 4 * 1024, f"RSS grew by {peak - before} KiB"


# -- reload -------------------------------------------------------------------------------


def test_reload_picks_up_a_new_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    write_cert(ca, tmp_path, "a", "localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "x.txt").write_text("x\n")
    text = (
        "server { listen 127.0.0.1:{port0} ssl; ssl_certificate a.crt;"
        " ssl_certificate_key a.key; root www }\n"
    )
    started = start_server(text, tmp_path, nports=1)
    try:

        def serial() -> str:
            raw = socket.create_connection(("127.0.0.1", started.port), timeout=5)
            context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                cert = sock.getpeercert()
                assert cert is not None
                return str(cert["serialNumber"])

        old = serial()
        write_cert(ca, tmp_path, "a", "localhost")  # renewed: same name, new serial
        started.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while serial() == old:
            assert time.monotonic() < deadline, started.log()
            time.sleep(0.05)
    finally:
        started.stop()


def test_clients_that_reset_right_after_their_client_hello(server: Server, tls_dir: Path) -> None:
    """wrap_socket fails for a client already gone (it asks for the peer's
    address): the connection is dropped quietly, not an unexpected error."""
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=5)
        sock.sendall(hello)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    response = requests.get(https(server, "/small.txt"), verify=tls_dir / "ca.pem", timeout=5)
    assert response.status_code == 200
    assert "unexpected error" not in server.log()
