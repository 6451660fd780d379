"""The bundled demo site (config.conf, www/, cgi-bin/) end to end, as a new user meets it.

Each test serves a copy of the demo tree from a temporary folder, with the
bundled config.conf whose ports are replaced by free ones, so that uploads,
the pid file and the counter's data land in the copy, never in the checkout.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import struct
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Server, recv_until, run_cli, start_server
from tests.proc import wait_for

# What Chromium sends when it submits a form (a navigation).
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
# Every page of the demo links these (README: the demo's navigation bar).
NAVIGATION = {
    "/",
    "/about.html",
    "/files/",
    "/upload.html",
    "/uploads/",
    "/session.html",
    "/cgi-bin/env.py",
    "/cgi-bin/form.py",
    "/cgi-bin/counter.py",
    "/chat.html",
    "/clock.html",
}


def copy_demo(root: Path) -> None:
    """The demo tree as a checkout has it: config.conf, www/, www-other/, cgi-bin/, apps/, uploads/."""
    for folder in ("www", "www-other", "cgi-bin", "apps"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "uploads").mkdir()
    for name in (".gitkeep", ".header.html"):
        source = REPO / "uploads" / name
        if source.is_symlink():
            os.symlink(os.readlink(source), root / "uploads" / name)
        else:
            shutil.copy(source, root / "uploads" / name)


def demo_config() -> str:
    """config.conf with its ports replaced by start_server's placeholders."""
    text = (REPO / "config.conf").read_text()
    assert "port 8080 8081" in text
    return text.replace("port 8080 8081", "port {port0} {port1}").replace(
        "port 8080\n", "port {port0}\n"
    )


def start_demo(root: Path) -> Server:
    copy_demo(root)
    return start_server(demo_config(), root, nports=2)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(demo_root: Path) -> Iterator[Server]:
    server = start_demo(demo_root)
    yield server
    server.stop()


def uploaded(root: Path) -> set[str]:
    return {p.name for p in (root / "uploads").iterdir() if not p.name.startswith(".")}


class Page(HTMLParser):
    """Links, stylesheets, the navigation bar's links and table headers of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.nav: set[str] = set()
        self.stylesheets: list[str] = []
        self.column_headers: list[str | None] = []
        self.in_nav = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "nav":
            self.in_nav = True
        elif tag == "a":
            self.links.append(fields.get("href") or "")
            if self.in_nav:
                self.nav.add(fields.get("href") or "")
        elif tag == "link" and fields.get("rel") == "stylesheet":
            self.stylesheets.append(fields.get("href") or "")
        elif tag == "th":
            self.column_headers.append(fields.get("scope"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav":
            self.in_nav = False


# -- the look of every page ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/about.html", 200),
        ("/upload.html", 200),
        ("/session.html", 200),
        ("/files/", 200),
        ("/files/docs/", 200),
        ("/uploads/", 200),
        ("/cgi-bin/env.py", 200),
        ("/cgi-bin/form.py", 200),
        ("/cgi-bin/counter.py", 200),
        ("/nope", 404),
    ],
)
def test_every_page_has_the_stylesheet_and_the_navigation_bar(
    demo: Server, path: str, status: int
) -> None:
    r = requests.get(demo.url(path))
    assert r.status_code == status
    page = Page(r.text)
    assert "/style.css" in page.stylesheets, path
    assert page.nav == NAVIGATION, path


def test_favicon_is_a_real_icon(demo: Server) -> None:
    r = requests.get(demo.url("/favicon.ico"))
    assert r.status_code == 200
    assert r.headers["Content-Type"] in ("image/vnd.microsoft.icon", "image/x-icon")
    reserved, kind, count = struct.unpack("<HHH", r.content[:6])
    assert (reserved, kind) == (0, 1) and count >= 1  # an ICONDIR with icons
    for index in range(count):
        _, _, _, _, _, _, size, offset = struct.unpack(
            "<BBBBHHII", r.content[6 + 16 * index : 22 + 16 * index]
        )
        assert offset + size <= len(r.content)


def test_the_other_site_has_a_favicon_too(demo: Server) -> None:
    r = requests.get(demo.url("/favicon.ico"), headers={"Host": "other.local"})
    assert r.status_code == 200 and r.content[:4] == b"\x00\x00\x01\x00"


def test_listing_is_a_table_with_human_sizes_and_iso_dates(demo: Server, demo_root: Path) -> None:
    r = requests.get(demo.url("/files/"))
    page = Page(r.text)
    assert page.column_headers[:3] == ["col", "col", "col"]
    assert {"../", "docs/", "readme.txt", "red.png"} <= set(page.links)
    readme = demo_root / "www" / "files" / "readme.txt"
    size = readme.stat().st_size
    row = re.search(r'<tr id="f-readme\.txt">.*?</tr>', r.text)
    assert row is not None
    assert f'class="size" title="{size} bytes"' in row.group()
    assert f">{size} B<" in row.group()
    stamp = re.search(r'<time datetime="([^"]+)">', row.group())
    assert stamp is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp.group(1))


def test_listing_is_readable_without_the_site_stylesheet(demo: Server) -> None:
    # Inline style first; the site's stylesheet comes from its header fragment.
    r = requests.get(demo.url("/files/"))
    assert r.text.index("<style>") < r.text.index("</head>")


# -- uploads: Post/Redirect/Get for browsers, 201 for API clients --------------


def test_browser_upload_gets_303_to_the_listing_that_names_it(
    demo: Server, demo_root: Path
) -> None:
    before = uploaded(demo_root)
    r = requests.post(
        demo.url("/uploads/"),
        files={"file": ("prg <&> test.txt", b"posted once")},
        headers={"Accept": BROWSER_ACCEPT},
        allow_redirects=False,
    )
    assert r.status_code == 303
    target = r.headers["Location"]
    assert target == "/uploads/?uploaded=prg%20%3C%26%3E%20test.txt#f-prg%20%3C%26%3E%20test.txt"
    assert uploaded(demo_root) - before == {"prg <&> test.txt"}
    # The result page is the listing, whose row for the file has the
    # fragment's id; reading it again stores nothing.
    for _ in range(2):
        page = requests.get(demo.url(target.split("#")[0]), headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200
        assert 'id="f-prg%20%3C%26%3E%20test.txt"' in page.text
        assert "prg &lt;&amp;&gt; test.txt" in page.text
    assert uploaded(demo_root) - before == {"prg <&> test.txt"}


@pytest.mark.parametrize(
    ("accept", "name"),
    [
        (None, "api-none.txt"),
        ("*/*", "api-curl.txt"),
        ("application/json", "api-json.txt"),
        ("application/json, text/plain, */*", "api-axios.txt"),
    ],
)
def test_api_clients_keep_201_created(
    demo: Server, demo_root: Path, accept: str | None, name: str
) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    session = requests.Session()
    if accept is None:
        del session.headers["Accept"]  # requests sends */* by default
    r = session.post(
        demo.url("/uploads/"),
        files={"file": (name, b"api")},
        headers=headers,
        allow_redirects=False,
    )
    assert r.status_code == 201
    assert r.headers["Location"] == f"/uploads/{name}"
    if accept is not None and "json" in accept:
        assert r.json()["files"] == [{"name": name, "size": 3, "url": f"/uploads/{name}"}]
    else:
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert name in r.text and "/style.css" in r.text  # the site's look
    assert (demo_root / "uploads" / name).read_bytes() == b"api"


def test_the_upload_answer_escapes_every_name(demo: Server, demo_root: Path) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="caf\xe9 <i>&\'q\'.txt"'
        b"\r\n\r\nlatin-1 name\r\n--B--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    r = requests.post(demo.url("/uploads/"), data=body, headers=headers)
    assert r.status_code == 201
    assert r.headers["Location"] == "/uploads/caf%E9%20%3Ci%3E%26%27q%27.txt"
    assert "<i>" not in r.text and "caf\ufffd &lt;i&gt;&amp;&#x27;q&#x27;.txt" in r.text
    assert (demo_root / "uploads" / os.fsdecode(b"caf\xe9 <i>&'q'.txt")).is_file()
    listing = requests.get(demo.url("/uploads/")).text
    assert 'href="caf%E9%20%3Ci%3E%26%27q%27.txt"' in listing
    assert "caf\ufffd &lt;i&gt;&amp;&#x27;q&#x27;.txt" in listing
    r = requests.post(
        demo.url("/uploads/"),
        data=body,
        headers={**headers, "Accept": BROWSER_ACCEPT},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["Location"] == (
        "/uploads/?uploaded=caf%E9%20%3Ci%3E%26%27q%27-1.txt#f-caf%E9%20%3Ci%3E%26%27q%27-1.txt"
    )


MULTIPART = "multipart/form-data; boundary=B"


def bad_name_body(name: bytes) -> bytes:
    return (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="'
        + name
        + b'"\r\n\r\ndata\r\n--B--\r\n'
    )


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (
            b'--B\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--B--\r\n',
            MULTIPART,
            "no file in the upload",
        ),
        (
            bad_name_body(b"bad\x01<b>.txt"),
            MULTIPART,
            'file name "bad\\x01<b>.txt" not allowed: it has control characters',
        ),
        (
            bad_name_body(b"..."),
            MULTIPART,
            'file name "..." not allowed: no name is left without dots and spaces',
        ),
    ],
)
def test_a_refused_upload_says_why(
    demo: Server, demo_root: Path, body: bytes, content_type: str, reason: str
) -> None:
    before = uploaded(demo_root)
    # A browser: the demo's custom 400 page, with the reason in it, escaped.
    r = requests.post(
        demo.url("/uploads/"),
        data=body,
        headers={"Content-Type": content_type, "Accept": BROWSER_ACCEPT},
    )
    assert r.status_code == 400
    assert "400 — Bad Request" in r.text  # www/errors/400.html
    assert f'<p class="reason">{html.escape(reason)}</p>' in r.text
    # An API client asking for JSON.
    r = requests.post(
        demo.url("/uploads/"),
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"error": reason, "status": 400}
    assert uploaded(demo_root) == before
    # And the error log, at info level.
    logged = f"[INFO] {demo.process.pid}: upload to /uploads/ refused (400): {reason}"
    assert wait_for(lambda: logged in demo.log())


def read_response(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """``(head, body, rest)`` of the next response (framed by Content-Length)."""
    data = buffered if b"\r\n\r\n" in buffered else buffered + recv_until(sock, b"\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"\r\nContent-Length: (\d+)", head)
    assert length is not None, head
    while len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    size = int(length.group(1))
    return head, body[:size], body[size:]


def test_a_refusal_inside_the_body_keeps_the_connection(demo: Server, demo_root: Path) -> None:
    # The 101st file is refused; the rest of the body is read, then the
    # answer goes out and the connection stays usable.
    files = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="many-%d.txt"\r\n\r\n'
        b"x\r\n" % index
        for index in range(101)
    )
    body = files + b"--B--\r\n"
    request = (
        b"POST /uploads/ HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
        b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with demo.connect() as sock:
        sock.sendall(request + body + b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n")
        head, answer, rest = read_response(sock)
        assert head.startswith(b"HTTP/1.1 400 ")
        assert b"Connection: close" not in head
        assert answer == b'{"error": "more than 100 files in one upload", "status": 400}\n'
        head, icon, _ = read_response(sock, rest)
        assert head.startswith(b"HTTP/1.1 200 ") and icon[:4] == b"\x00\x00\x01\x00"
    assert not [name for name in uploaded(demo_root) if name.startswith("many-")]


def test_hidden_files_are_never_deleted(demo: Server, demo_root: Path) -> None:
    assert requests.delete(demo.url("/uploads/.header.html")).status_code == 403
    assert requests.delete(demo.url("/uploads/.gitkeep")).status_code == 403
    assert (demo_root / "uploads" / ".header.html").exists()
    (demo_root / "uploads" / "doomed.txt").write_text("bye")
    assert requests.delete(demo.url("/uploads/doomed.txt")).status_code == 204
    assert not (demo_root / "uploads" / "doomed.txt").exists()


# -- CGI -------------------------------------------------------------------------


def test_counter_keeps_its_data_beside_the_config(demo: Server, demo_root: Path) -> None:
    old = Path(tempfile.gettempdir()) / "localhost-demo-counter.db"
    old_stamp = old.stat().st_mtime_ns if old.exists() else None
    session = requests.Session()
    counts = []
    for _ in range(2):
        r = session.get(demo.url("/cgi-bin/counter.py"))
        assert r.status_code == 200
        found = re.search(r"Visits in this session: <strong>(\d+)</strong>", r.text)
        assert found is not None, r.text
        counts.append(int(found.group(1)))
    assert counts == [1, 2]
    assert (demo_root / "counter.db").is_file()
    # Never in /tmp, and never a usable session id in the file.
    assert (old.stat().st_mtime_ns if old.exists() else None) == old_stamp
    cookie = session.cookies.get("LOCALHOST_SESSION")
    assert cookie
    assert cookie.encode() not in (demo_root / "counter.db").read_bytes()


def test_cgi_pages_fit_their_table_and_label_their_inputs(demo: Server) -> None:
    env = requests.get(demo.url("/cgi-bin/env.py/extra/path?x=1")).text
    assert '<table class="env">' in env
    form = requests.get(demo.url("/cgi-bin/form.py")).text
    inputs = re.findall(r"<input [^>]*id=\"([^\"]+)\"", form)
    labels = set(re.findall(r'<label for="([^"]+)"', form))
    assert inputs and set(inputs) <= labels
    upload = requests.get(demo.url("/upload.html")).text
    assert '<label for="file">' in upload and 'id="file"' in upload


SLOW = """import sys, time
open(sys.argv[0] + ".started", "w").close()
time.sleep(30)
print("Content-Type: text/plain")
print()
print("late")
"""


def test_a_script_whose_client_left_is_logged_at_info(tmp_path: Path) -> None:
    server = start_demo(tmp_path)
    try:
        (tmp_path / "cgi-bin" / "slow.py").write_text(SLOW)
        with server.connect() as sock:
            sock.sendall(b"GET /cgi-bin/slow.py HTTP/1.1\r\nHost: x\r\n\r\n")
            assert wait_for(lambda: (tmp_path / "cgi-bin" / "slow.py.started").exists())
        assert wait_for(lambda: "CGI /cgi-bin/slow.py stopped" in server.log())
        line = next(x for x in server.log().splitlines() if "CGI /cgi-bin/slow.py stopped" in x)
        assert "[INFO]" in line, line
        assert "WARNING" not in server.log()
    finally:
        server.stop()


# -- the pid file: -s reload and -s stop on the demo ------------------------------


def test_the_demo_config_has_a_pid_file_for_reload_and_stop(tmp_path: Path) -> None:
    server = start_demo(tmp_path)
    try:
        pid_file = tmp_path / "localhost.pid"
        assert wait_for(lambda: pid_file.exists())
        assert int(pid_file.read_text()) == server.process.pid
        r = requests.get(server.url("/old-path"), allow_redirects=False)
        assert r.headers["Location"] == "/files/"
        text = server.config.read_text().replace("redirect /files/", "redirect /about.html")
        server.config.write_text(text)
        result = run_cli(["-s", "reload", str(server.config)])
        assert result.returncode == 0, result.stderr

        def moved() -> bool:
            r = requests.get(server.url("/old-path"), allow_redirects=False)
            return r.headers.get("Location") == "/about.html"

        assert wait_for(moved)
        result = run_cli(["-s", "stop", str(server.config)])
        assert result.returncode == 0, result.stderr
        assert server.process.wait(10) == 0
        assert not pid_file.exists()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.stop(signal.SIGKILL)
