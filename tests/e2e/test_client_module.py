"""``localhost.client.request`` against a real backend process (``test_proxy_backend.py``)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localhost import client
from tests.conftest import free_port

BACKEND = Path(__file__).with_name("test_proxy_backend.py")


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(BACKEND), str(port), "solo"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    process.kill()
    process.wait()


def test_get_with_fields_and_query(base: str) -> None:
    response = client.request("GET", base + "/echo?a=1", headers={"X-Test": "yes"})
    assert response.status == 200 and response.version == "HTTP/1.1"
    assert response.headers.get("x-backend") == "solo"
    data = json.loads(response.read())
    assert data["target"] == "/echo?a=1"
    sent = {k.lower(): v for k, v in data["headers"]}
    assert sent["x-test"] == "yes" and sent["host"] == base.split("//")[1]
    assert sent["connection"] == "close"


def test_body_as_bytes_file_and_iterable(base: str, tmp_path: Path) -> None:
    data = json.loads(client.request("POST", base + "/echo", body=b"abc").read())
    assert data["body"] == "abc"
    assert {k.lower(): v for k, v in data["headers"]}["content-length"] == "3"

    pieces = (b"one ", b"two ", b"three")
    data = json.loads(client.request("PUT", base + "/echo", body=iter(pieces)).read())
    assert data["body"] == "one two three"
    assert {k.lower(): v for k, v in data["headers"]}["transfer-encoding"] == "chunked"

    file = tmp_path / "up.bin"
    file.write_bytes(b"z" * 200_000)
    with file.open("rb") as handle:
        data = json.loads(client.request("POST", base + "/echo", body=handle).read())
    assert len(data["body"]) == 200_000


def test_body_is_streamed_in_pieces(base: str) -> None:
    size = 5 * 1024 * 1024
    with client.request("GET", f"{base}/big?size={size}") as response:
        assert response.headers.get("content-length") == str(size)
        sizes = [len(piece) for piece in response.iter_bytes()]
    assert sum(sizes) == size
    assert max(sizes) <= client.READ_SIZE and len(sizes) > 1


def test_framings_head_and_no_body(base: str) -> None:
    assert client.request("GET", base + "/chunked").read() == b"hello world"
    assert client.request("GET", base + "/close").read() == b"until the end"
    head = client.request("HEAD", base + "/echo")
    assert head.status == 200 and head.read() == b""
    assert client.request("GET", base + "/status/204").read() == b""


def test_errors(base: str) -> None:
    with pytest.raises(client.ResponseError):
        client.request("GET", base + "/bad")
    with pytest.raises(ValueError):
        client.request("GET", "ftp://example.com/")
    with pytest.raises(ValueError):
        client.request("GET", base + "/", headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(OSError):
        client.request("GET", f"http://127.0.0.1:{free_port()}/")
