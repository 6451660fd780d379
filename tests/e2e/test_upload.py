"""Uploads and DELETE end to end: streaming to disk, names, limits, cleanup."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, read_all, start_server
from tests.proc import wait_for

CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /uploads {
        root ./uploads
        methods GET POST DELETE
        directory_listing on
        body_limit 8M
    }
    location /readonly {
        root ./readonly
        methods GET
    }
    location /nodelete {
        root ./uploads
        methods GET POST
    }
    location /run {
        root ./uploads/scripts
        methods GET POST
        cgi .py python3
    }
}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upload")


@pytest.fixture(scope="module")
def site(root: Path) -> Iterator[Server]:
    (root / "www").mkdir()
    (root / "uploads" / "sub").mkdir(parents=True)
    (root / "uploads" / "scripts").mkdir()
    (root / "readonly").mkdir()
    (root / "readonly" / "keep.txt").write_text("keep")
    (root / "outside.txt").write_text("outside")
    server = start_server(CONFIG, root)
    yield server
    server.stop()


def uploads(root: Path) -> set[str]:
    return {p.name for p in (root / "uploads").iterdir()}


def test_multipart_upload_round_trip_is_byte_identical(site: Server, root: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    r = requests.post(site.url("/uploads/"), files={"file": ("random.bin", data)})
    assert r.status_code == 201
    location = r.headers["Location"]
    assert location == "/uploads/random.bin"
    assert "random.bin" in r.text and str(len(data)) in r.text
    back = requests.get(site.url(location))
    assert hashlib.sha256(back.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not [n for n in uploads(root) if n.startswith(".upload-")]


def test_several_files_and_fields_in_one_form(site: Server, root: Path) -> None:
    r = requests.post(
        site.url("/uploads"),
        data={"comment": "ignored"},
        files=[("a", ("one.txt", b"1")), ("b", ("two.txt", b"22"))],
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 201
    files = r.json()["files"]
    assert [(f["name"], f["size"]) for f in files] == [("one.txt", 1), ("two.txt", 2)]
    assert (root / "uploads" / "two.txt").read_bytes() == b"22"
    assert "comment" not in uploads(root)


def test_existing_names_are_never_overwritten(site: Server, root: Path) -> None:
    for expected in ("same.txt", "same-1.txt", "same-2.txt"):
        r = requests.post(site.url("/uploads/"), files={"f": ("same.txt", expected.encode())})
        assert r.status_code == 201
        assert r.headers["Location"] == f"/uploads/{expected}"
    assert (root / "uploads" / "same.txt").read_bytes() == b"same.txt"
    assert (root / "uploads" / "same-2.txt").read_bytes() == b"same-2.txt"


@pytest.mark.parametrize(
    ("raw_name", "stored"),
    [
        ("../../escape.txt", "escape.txt"),
        ("..\\..\\win.txt", "win.txt"),
        ("/etc/passwd", "passwd"),
        (".bashrc", "bashrc"),
        ("ünïcode name.txt", "ünïcode name.txt"),
    ],
)
def test_file_names_stay_inside_the_root(
    site: Server, root: Path, raw_name: str, stored: str
) -> None:
    r = requests.post(site.url("/uploads/"), files={"f": (raw_name, b"x")})
    assert r.status_code == 201
    assert (root / "uploads" / stored).exists()
    assert not (root / "escape.txt").exists() and not (root.parent / "escape.txt").exists()
    assert (root / "outside.txt").read_text() == "outside"


@pytest.mark.parametrize("raw_name", ["..", "...", "bad\x01name.txt", " "])
def test_unusable_names_are_rejected(site: Server, root: Path, raw_name: str) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="'
        + raw_name.encode()
        + b'"\r\n\r\ndata\r\n--B--\r\n'
    )
    before = uploads(root)
    r = requests.post(
        site.url("/uploads/"),
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert r.status_code == 400
    assert uploads(root) == before


def test_long_names_are_capped_keeping_the_extension(site: Server, root: Path) -> None:
    r = requests.post(site.url("/uploads/"), files={"f": ("n" * 400 + ".txt", b"x")})
    assert r.status_code == 201
    name = r.headers["Location"].rsplit("/", 1)[1]
    assert len(name.encode()) <= 255 and name.endswith(".txt")


def test_form_without_a_file_is_400(site: Server) -> None:
    r = requests.post(site.url("/uploads/"), files={"f": ("", b"")}, data={"x": "1"})
    assert r.status_code == 400


def test_raw_body_is_stored_under_the_path_name(site: Server, root: Path) -> None:
    r = requests.post(
        site.url("/uploads/raw%20body.bin"),
        data=b"\x00\x01raw",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201
    assert r.headers["Location"] == "/uploads/raw%20body.bin"
    assert (root / "uploads" / "raw body.bin").read_bytes() == b"\x00\x01raw"
    r = requests.post(site.url("/uploads/sub/deeper.txt"), data=b"in sub")
    assert r.status_code == 201
    assert (root / "uploads" / "sub" / "deeper.txt").read_bytes() == b"in sub"


def test_raw_body_without_a_name_or_folder(site: Server) -> None:
    assert requests.post(site.url("/uploads/"), data=b"x").status_code == 400
    assert requests.post(site.url("/uploads/missing-folder/x.txt"), data=b"x").status_code == 404


def send_all_then_read(server: Server, data: bytes, limit: float = 10.0) -> bytes:
    """Send all of ``data``, then half-close and read until the server closes.

    What most clients do: read the answer only once the request is sent, even
    when the server answered early. Only a lingering close lets it read
    that answer; a reset instead raises ConnectionResetError or BrokenPipeError.
    """
    received = b""
    deadline = time.monotonic() + limit
    with server.connect(timeout=limit) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk


def assert_whole_response(data: bytes, status: int) -> bytes:
    """``data`` is one complete response with ``status``; return its body."""
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head[:80]
    length = re.search(rb"\r\nContent-Length: (\d+)", head)
    assert length is not None and len(body) == int(length.group(1))
    return body


MULTIPART_HEAD = (
    b'--B\r\nContent-Disposition: form-data; name="f"; filename="huge.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


def test_chunked_upload_over_the_limit_is_413_read_by_a_client_that_keeps_sending(
    site: Server, root: Path
) -> None:
    before = uploads(root)
    chunk = b"x" * (1024 * 1024)
    body = MULTIPART_HEAD + chunk
    framed = b"%x\r\n%s\r\n" % (len(body), body) + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 11
    request = (
        b"POST /uploads/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=B\r\n\r\n" + framed + b"0\r\n\r\n"
    )
    data = send_all_then_read(site, request)
    assert_whole_response(data, 413)  # past body_limit 8M
    assert b"\r\nConnection: close\r\n" in data
    assert wait_for(lambda: uploads(root) == before), uploads(root) - before


def test_content_length_over_the_limit_is_413_before_the_body(site: Server) -> None:
    with site.connect() as sock:
        sock.sendall(b"POST /uploads/x.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n")
        data = read_all(sock)
    assert_whole_response(data, 413)
    # A client that sends its body anyway still reads the 413, not a reset.
    request = (
        b"POST /uploads/x.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n"
        + b"y" * 9000000
    )
    data = send_all_then_read(site, request)
    assert_whole_response(data, 413)
    assert b"\r\nConnection: close\r\n" in data


def test_default_body_limit_is_1_mib(site: Server, root: Path) -> None:
    # /nodelete sets no body_limit: the README's default, 1 MiB, applies.
    r = requests.post(site.url("/nodelete/one-mib.bin"), data=b"m" * (1024 * 1024))
    assert r.status_code == 201
    assert (root / "uploads" / "one-mib.bin").stat().st_size == 1024 * 1024
    request = (
        b"POST /nodelete/over.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"
        + b"m" * 1048577
    )
    assert_whole_response(send_all_then_read(site, request), 413)
    assert not (root / "uploads" / "over.bin").exists()


def many_files(count: int) -> list[tuple[str, tuple[str, bytes]]]:
    return [("f", (f"many-{count}-{index}.txt", b"%d" % index)) for index in range(count)]


def test_one_upload_stores_at_most_100_files(site: Server, root: Path) -> None:
    (root / "uploads" / "many").mkdir()
    r = requests.post(
        site.url("/uploads/many/"), files=many_files(100), headers={"Accept": "application/json"}
    )
    assert r.status_code == 201
    assert len(r.json()["files"]) == 100
    assert len(list((root / "uploads" / "many").iterdir())) == 100
    r = requests.post(site.url("/uploads/many/"), files=many_files(101))
    assert r.status_code == 400  # the README's limit: 100 files, then 400
    # Nothing of the refused upload is kept, not even its first 100 files.
    assert wait_for(lambda: len(list((root / "uploads" / "many").iterdir())) == 100)
    assert not (root / "uploads" / "many" / "many-101-0.txt").exists()


def test_cut_upload_leaves_no_file(site: Server, root: Path) -> None:
    before = uploads(root)
    head = (
        b"POST /uploads/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        b"Content-Length: 1000000\r\n\r\n"
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="cut.bin"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", site.port)) as sock:
        sock.sendall(head + b"y" * 300000)
        deadline = time.monotonic() + 5
        while (
            not [n for n in uploads(root) if n.startswith(".upload-")]
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        assert [n for n in uploads(root) if n.startswith(".upload-")], (
            "the part streams to a temporary file"
        )
    deadline = time.monotonic() + 5
    while uploads(root) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uploads(root) == before
    assert "cut.bin" not in uploads(root)


def test_malformed_multipart_is_400(site: Server, root: Path) -> None:
    before = uploads(root)
    r = requests.post(
        site.url("/uploads/"),
        data=b"garbage without boundary",
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert r.status_code == 400
    r = requests.post(
        site.url("/uploads/"), data=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert r.status_code == 400
    assert uploads(root) == before


def test_upload_where_post_is_not_allowed_is_405(site: Server) -> None:
    r = requests.post(site.url("/readonly/"), files={"f": ("a.txt", b"x")})
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_delete(site: Server, root: Path) -> None:
    (root / "uploads" / "doomed.txt").write_text("bye")
    r = requests.delete(site.url("/uploads/doomed.txt"))
    assert r.status_code == 204
    assert r.content == b""
    assert not (root / "uploads" / "doomed.txt").exists()
    assert requests.delete(site.url("/uploads/doomed.txt")).status_code == 404


def test_delete_refuses_folders_and_the_outside(site: Server, root: Path) -> None:
    assert requests.delete(site.url("/uploads/sub")).status_code == 403
    assert requests.delete(site.url("/uploads/")).status_code == 403
    # Dot segments resolve first: /outside.txt is in the read-only "/" location (405).
    raw = site.raw(
        b"DELETE /uploads/../outside.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET, HEAD, OPTIONS\r\n" in raw
    # Decoded once, /uploads/../../outside.txt climbs above the root: 400, as in NGINX.
    raw = site.raw(
        b"DELETE /uploads/..%2f..%2foutside.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 400 ")
    os.symlink(root / "outside.txt", root / "uploads" / "link-out")
    assert requests.delete(site.url("/uploads/link-out")).status_code == 403
    assert (root / "outside.txt").read_text() == "outside"


def test_delete_needs_delete_in_methods(site: Server, root: Path) -> None:
    (root / "uploads" / "kept.txt").write_text("kept")
    r = requests.delete(site.url("/nodelete/kept.txt"))
    assert r.status_code == 405
    assert "DELETE" not in r.headers["Allow"]
    assert requests.delete(site.url("/readonly/keep.txt")).status_code == 405
    assert (root / "uploads" / "kept.txt").exists()


SCRIPT = b'print("Content-Type: text/plain")\nprint()\nprint("ran")\n'


def test_nothing_is_uploaded_where_cgi_runs_scripts(site: Server, root: Path) -> None:
    # An upload that became a script would let any client run code.
    scripts = root / "uploads" / "scripts"
    for target in ("/run/", "/run/evil.py", "/run/nested/"):
        r = requests.post(site.url(target), files={"file": ("evil.py", SCRIPT)})
        assert r.status_code == 404, target
    r = requests.post(site.url("/run/evil.py"), data=SCRIPT)
    assert r.status_code == 404
    # Another location whose root holds the CGI root: no file CGI would run.
    for name in ("evil.py", "EVIL.PY"):
        r = requests.post(site.url("/uploads/scripts/"), files={"file": (name, SCRIPT)})
        assert r.status_code == 403, name
    r = requests.post(site.url("/uploads/scripts/evil.py"), data=SCRIPT)
    assert r.status_code == 403
    assert sorted(p.name for p in scripts.iterdir()) == []  # no temporary file left either
    assert requests.get(site.url("/run/evil.py")).status_code == 404
    # Other names there, and scripts outside the CGI root, are ordinary files.
    r = requests.post(site.url("/uploads/scripts/"), files={"file": ("notes.txt", b"n")})
    assert r.status_code == 201
    r = requests.post(site.url("/uploads/sub/"), files={"file": ("tool.py", SCRIPT)})
    assert r.status_code == 201
    assert (root / "uploads" / "sub" / "tool.py").read_bytes() == SCRIPT


def test_a_refusal_before_the_body_says_why(site: Server) -> None:
    r = requests.post(
        site.url("/uploads/"),
        data=b"--x\r\n",
        headers={"Content-Type": "multipart/form-data", "Accept": "application/json"},
    )
    assert r.status_code == 400
    assert r.json() == {"error": "multipart/form-data without a boundary", "status": 400}
    r = requests.post(
        site.url("/uploads/"), data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert r.status_code == 400
    assert "multipart/form-data without a boundary" in r.text


def test_a_body_over_the_limit_names_the_limit(site: Server) -> None:
    # /uploads has body_limit 8M: the 413 says so, before any body byte is read.
    with site.connect() as sock:
        sock.sendall(
            b"POST /uploads/big.bin HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            b"Content-Length: 9000000\r\n\r\n"
        )
        answer = read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert json.loads(body) == {
        "error": "the request body is larger than the limit here, 8388608 bytes",
        "status": 413,
    }
