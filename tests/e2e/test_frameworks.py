"""Real frameworks under the ``wsgi`` directive: the Flask and Django examples.

The applications are the ones in ``examples/flask`` and ``examples/django``
(so the examples keep working); the configurations are written to a
temporary folder and point at them. Each runs on the event loop
(``wsgi_threads 0``) and in the default thread pool, at the root and below a
prefix, where ``url_for`` and ``reverse`` must put the prefix (SCRIPT_NAME)
in the links they build.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, Server, start_server
from tests.proc import wait_for

FLASK_DIR = REPO / "examples" / "flask"
DJANGO_DIR = REPO / "examples" / "django"

#: ``wsgi_threads`` lines under test: on the loop, and the default pool.
THREADS = {"threads0": "wsgi_threads 0", "threads-default": ""}

FLASK_LOCATION = """
    location PREFIX {
        wsgi webapp:app
        wsgi_path "FLASK_DIR"
        THREADS
        body_limit 10m
    }
"""

FLASK_CONFIG = """
server {
    host 127.0.0.1
    port {port0}
LOCATIONS
}
"""

DJANGO_CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    location ROOT {
        wsgi mysite.wsgi:application
        wsgi_path "DJANGO_DIR"
        THREADS
    }
    location PREFIX/static {
        root "DJANGO_DIR/static"
        methods GET
    }
}
"""

BIG_FILE_SIZE = 3 * 1024 * 1024 + 7
UPLOAD_SIZE = 2 * 1024 * 1024 + 5
BOOM = "RuntimeError: boom: the example view failed on purpose"


@dataclass
class Site:
    """An application mounted at ``prefix`` ("" for the root) on ``server``."""

    server: Server
    prefix: str

    def url(self, path: str) -> str:
        return self.server.url(self.prefix + path)


def flask_config(threads: str) -> str:
    """The Flask example mounted at ``/`` and at ``/flask``, both with ``threads``."""
    locations = "".join(
        FLASK_LOCATION.replace("PREFIX", prefix)
        .replace("FLASK_DIR", str(FLASK_DIR))
        .replace("THREADS", threads)
        for prefix in ("/", "/flask")
    )
    return FLASK_CONFIG.replace("LOCATIONS", locations)


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the Flask example's ``/files/`` serves (``FLASK_EXAMPLE_FILES``)."""
    folder = tmp_path_factory.mktemp("flask-files")
    (folder / "big.bin").write_bytes(os.urandom(BIG_FILE_SIZE))
    return folder


@pytest.fixture(scope="module", params=list(THREADS), ids=list(THREADS))
def flask_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    files_dir: Path,
) -> Iterator[Server]:
    server = start_server(
        flask_config(THREADS[request.param]),
        tmp_path_factory.mktemp("flask"),
        env={"FLASK_EXAMPLE_FILES": str(files_dir)},
    )
    yield server
    server.stop()


@pytest.fixture(params=["", "/flask"], ids=["root", "prefix"])
def flask(request: pytest.FixtureRequest, flask_server: Server) -> Site:
    return Site(flask_server, request.param)


def test_flask_url_for_links_carry_the_prefix(flask: Site) -> None:
    response = requests.get(flask.url("/"), timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = response.text
    assert f'action="{flask.prefix}/greet"' in page
    assert f'action="{flask.prefix}/upload"' in page
    assert f'href="{flask.prefix}/stream?lines=10"' in page
    assert f'href="{flask.prefix}/files/hello.txt"' in page


def test_flask_urlencoded_form(flask: Site) -> None:
    response = requests.post(flask.url("/greet"), data={"name": "Zoë Ada"}, timeout=5)
    assert response.status_code == 200
    assert response.text == "Hello, Zoë Ada!\n"
    missing = requests.post(flask.url("/greet"), data={"other": "x"}, timeout=5)
    assert missing.status_code == 400
    assert "the form needs a name" in missing.text


def test_flask_multipart_form_with_a_file(flask: Site) -> None:
    content = os.urandom(UPLOAD_SIZE)
    response = requests.post(
        flask.url("/upload"),
        files={"file": ("report.bin", content, "application/octet-stream")},
        data={"note": "quarterly"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "report.bin",
        "size": UPLOAD_SIZE,
        "sha256": hashlib.sha256(content).hexdigest(),
        "note": "quarterly",
    }


def test_flask_json_in_and_out(flask: Site) -> None:
    response = requests.post(flask.url("/api/sum"), json={"numbers": [1, 2, 3.5]}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"count": 3, "sum": 6.5}
    wrong = requests.post(flask.url("/api/sum"), json={"numbers": ["1"]}, timeout=5)
    assert wrong.status_code == 400
    broken = requests.post(
        flask.url("/api/sum"),
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert broken.status_code == 400


def test_flask_cookies_and_session(flask: Site) -> None:
    with requests.Session() as client:
        first = client.get(flask.url("/"), timeout=5)
        assert 'id="visits">1<' in first.text
        assert "session" in client.cookies
        # The signed session cookie goes back and Flask reads it.
        second = client.get(flask.url("/"), timeout=5)
        assert 'id="visits">2<' in second.text
        assert 'id="theme">light<' in second.text

        switch = client.get(flask.url("/theme/dark"), allow_redirects=False, timeout=5)
        assert switch.status_code == 302
        assert switch.headers["Location"] == f"{flask.prefix}/"
        assert client.cookies["theme"] == "dark"
        home = client.get(flask.url("/"), timeout=5)
        assert 'id="theme">dark<' in home.text
        assert 'id="visits">3<' in home.text
    # A client without the cookies starts again.
    fresh = requests.get(flask.url("/"), timeout=5)
    assert 'id="visits">1<' in fresh.text


def test_flask_streamed_response(flask: Site) -> None:
    # The generator reads request.args after the view returned: without
    # stream_with_context (and a server that keeps to one thread per
    # response) it would fail mid-body.
    with requests.get(flask.url("/stream?lines=300"), stream=True, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in response.headers
        body = b"".join(response.iter_content(None)).decode()
    assert body == "".join(f"line {n} of 300\n" for n in range(1, 301))


def test_flask_send_file(flask: Site, files_dir: Path) -> None:
    expected = (files_dir / "big.bin").read_bytes()
    with requests.Session() as client:
        response = client.get(flask.url("/files/big.bin"), timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(BIG_FILE_SIZE)
        assert response.content == expected

        # Flask answers ranges and validators itself; the server frames them.
        part = client.get(
            flask.url("/files/big.bin"), headers={"Range": "bytes=1000-1999"}, timeout=5
        )
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes 1000-1999/{BIG_FILE_SIZE}"
        assert part.headers["Content-Length"] == "1000"
        assert part.content == expected[1000:2000]

        cached = client.get(
            flask.url("/files/big.bin"),
            headers={"If-None-Match": response.headers["ETag"]},
            timeout=5,
        )
        assert cached.status_code == 304
        assert cached.content == b""

        head = client.head(flask.url("/files/big.bin"), timeout=5)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(BIG_FILE_SIZE)
        assert head.content == b""

        # The connection is still in step after all of those.
        again = client.get(flask.url("/files/big.bin"), timeout=10)
        assert again.content == expected


def test_flask_404_is_flasks(flask: Site) -> None:
    response = requests.get(flask.url("/no/such/page"), timeout=5)
    assert response.status_code == 404
    assert "The requested URL was not found on the server." in response.text


def test_flask_exception_gives_500_and_a_logged_traceback(flask: Site) -> None:
    before = flask.server.log().count(BOOM)
    response = requests.get(flask.url("/boom"), timeout=5)
    assert response.status_code == 500
    assert "Internal Server Error" in response.text
    assert wait_for(lambda: flask.server.log().count(BOOM) == before + 1)
    log = flask.server.log()
    assert "Traceback (most recent call last):" in log
    assert f'File "{FLASK_DIR / "webapp.py"}"' in log
    # The worker goes on.
    assert requests.get(flask.url("/"), timeout=5).status_code == 200


# --- Django ------------------------------------------------------------------

DJANGO_SETUPS = {
    "root-threads0": ("", THREADS["threads0"]),
    "prefix-threads-default": ("/django", THREADS["threads-default"]),
}


@pytest.fixture(scope="module", params=list(DJANGO_SETUPS), ids=list(DJANGO_SETUPS))
def django(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    # One prefix per process: Django caches STATIC_URL with the first
    # request's SCRIPT_NAME (see examples/django/mysite/settings.py).
    prefix, threads = DJANGO_SETUPS[request.param]
    config = (
        DJANGO_CONFIG.replace("ROOT", prefix or "/")
        .replace("PREFIX", prefix)
        .replace("DJANGO_DIR", str(DJANGO_DIR))
        .replace("THREADS", threads)
    )
    server = start_server(config, tmp_path_factory.mktemp("django"))
    yield Site(server, prefix)
    server.stop()


def test_django_view_and_reverse(django: Site) -> None:
    response = requests.get(django.url("/hello/world/"), timeout=5)
    assert response.status_code == 200
    assert response.json() == {
        "greeting": "Hello, world!",
        "self": f"{django.prefix}/hello/world/",
        "script_name": django.prefix,
    }
    page = requests.get(django.url("/"), timeout=5)
    assert page.status_code == 200
    assert f'href="{django.prefix}/contact/"' in page.text
    assert f'href="{django.prefix}/hello/world/"' in page.text
    # CommonMiddleware's APPEND_SLASH redirect is built with the prefix too.
    bare = requests.get(django.url("/contact"), allow_redirects=False, timeout=5)
    assert bare.status_code == 301
    assert bare.headers["Location"] == f"{django.prefix}/contact/"
    missing = requests.get(django.url("/no/such/page/"), timeout=5)
    assert missing.status_code == 404


def csrf_form(client: requests.Session, site: Site) -> str:
    """GET the contact form; return its hidden CSRF token (the cookie stays in ``client``)."""
    form = client.get(site.url("/contact/"), timeout=5)
    assert form.status_code == 200
    assert "csrftoken" in client.cookies
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert match is not None, form.text
    return match.group(1)


def test_django_form_post_with_csrf(django: Site) -> None:
    fields = {"name": "Ada", "message": "Hello from the tests"}
    with requests.Session() as client:
        token = csrf_form(client, django)
        sent = client.post(
            django.url("/contact/"), data={**fields, "csrfmiddlewaretoken": token}, timeout=5
        )
        assert sent.status_code == 200
        assert "Thanks, Ada!" in sent.text

        # The cookie alone is not enough, and neither is a wrong token.
        no_token = client.post(django.url("/contact/"), data=fields, timeout=5)
        assert no_token.status_code == 403
        assert "CSRF verification failed" in no_token.text
        wrong = client.post(
            django.url("/contact/"), data={**fields, "csrfmiddlewaretoken": "x" * 64}, timeout=5
        )
        assert wrong.status_code == 403

        # An invalid form comes back with its errors (and the token still works).
        incomplete = client.post(
            django.url("/contact/"), data={"name": "Ada", "csrfmiddlewaretoken": token}, timeout=5
        )
        assert incomplete.status_code == 200
        assert "This field is required." in incomplete.text

    # Neither cookie nor token.
    bare = requests.post(django.url("/contact/"), data=fields, timeout=5)
    assert bare.status_code == 403


def test_django_static_files_come_from_the_config(django: Site) -> None:
    page = requests.get(django.url("/"), timeout=5).text
    match = re.search(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert match is not None, page
    href = match.group(1)
    assert href == f"{django.prefix}/static/site.css"
    # DEBUG is off, so Django serves no static files: this is the location's root.
    css = requests.get(django.server.url(href), timeout=5)
    assert css.status_code == 200
    assert css.content == (DJANGO_DIR / "static" / "site.css").read_bytes()
    assert css.headers["Content-Type"].startswith("text/css")
    assert "ETag" in css.headers


# --- The example configurations as shipped -----------------------------------


def shipped_config(path: Path, replacements: dict[str, str]) -> str:
    """``path``'s text with each key, which must occur exactly once, replaced."""
    text = path.read_text()
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} is not once in {path}"
        text = text.replace(old, new)
    return text


def check_flask_example(site: Site) -> None:
    shipped = (FLASK_DIR / "files" / "hello.txt").read_bytes()
    download = requests.get(site.url("/files/hello.txt"), timeout=5)
    assert download.status_code == 200
    assert download.content == shipped
    assert download.headers["Content-Length"] == str(len(shipped))


def check_django_example(site: Site) -> None:
    css = requests.get(site.url("/static/site.css"), timeout=5)
    assert css.status_code == 200
    assert css.content == (DJANGO_DIR / "static" / "site.css").read_bytes()


EXAMPLES: dict[str, tuple[Path, dict[str, str], str, Callable[[Site], None]]] = {
    "flask": (
        FLASK_DIR / "flask.conf",
        {"port 8082": "port {port0}", "wsgi_path .": f'wsgi_path "{FLASK_DIR}"'},
        "/flask",
        check_flask_example,
    ),
    "django": (
        DJANGO_DIR / "django.conf",
        {
            "port 8083": "port {port0}",
            "wsgi_path .": f'wsgi_path "{DJANGO_DIR}"',
            "root ./static": f'root "{DJANGO_DIR / "static"}"',
        },
        "/django",
        check_django_example,
    ),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_configuration_serves(name: str, tmp_path: Path) -> None:
    """The example's own file, with only its port and relative paths changed."""
    path, replacements, prefix, check = EXAMPLES[name]
    server = start_server(shipped_config(path, replacements), tmp_path)
    try:
        home = requests.get(server.url("/"), timeout=5)
        assert home.status_code == 200
        assert home.history[0].status_code == 301
        assert home.url == server.url(f"{prefix}/")
        assert f'href="{prefix}/' in home.text
        check(Site(server, prefix))
    finally:
        server.stop()
