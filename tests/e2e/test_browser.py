"""The demo site in a real browser: headless Chromium driven by Playwright.

Uses the system's Chromium (``/usr/bin/chromium``, never a downloaded one).
Without it (or without the ``playwright`` package) the tests are skipped,
except under CI (the ``CI`` environment variable set), where they fail: CI
installs Chromium. Screenshots of the listing, the upload result and the
CGI environment go to the folder named by ``LOCALHOST_SCREENSHOTS`` (the
committed ones are in docs/screenshots/), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import Server, start_server
from tests.e2e.test_demo import start_demo, uploaded

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, LocatorAssertions, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH = 1280  # px: the window the issue names


def _unavailable() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-demo")


@pytest.fixture(scope="module")
def demo(demo_root: Path) -> Iterator[Server]:
    server = start_demo(demo_root)
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": WIDTH, "height": 800})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("dialog", lambda dialog: dialog.accept())  # "Delete NAME?"
    yield opened
    context.close()
    assert errors == [], errors  # no script failed


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("LOCALHOST_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def delete_buttons(page: Page) -> Locator:
    return page.locator("table.listing tbody button")


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's retrying assertions (imported here: the package may be missing)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_upload_redirects_to_the_result_and_reload_does_not_upload_again(
    page: Page, demo: Server, demo_root: Path, screenshots: Path
) -> None:
    page.goto(demo.url("/upload.html"))
    page.get_by_label("Files to upload").set_input_files(
        [
            {"name": "report <2026> & co.txt", "mimeType": "text/plain", "buffer": b"r" * 1300},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"n"},
        ]
    )
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Upload", exact=True).click()
    response = navigation.value
    assert response is not None and response.status == 200
    posted = response.request.redirected_from
    assert posted is not None and posted.method == "POST"
    redirect = posted.response()
    assert redirect is not None and redirect.status == 303
    assert re.fullmatch(
        re.escape(demo.url("/uploads/"))
        + r"\?uploaded=report%20%3C2026%3E%20%26%20co\.txt&uploaded=notes\.txt"
        + r"#f-report%20%3C2026%3E%20%26%20co\.txt",
        page.url,
    )
    assert uploaded(demo_root) == {"report <2026> & co.txt", "notes.txt"}
    expect(page.locator("#notice")).to_have_text("Uploaded: report <2026> & co.txt, notes.txt.")
    expect(page.locator("tr.new")).to_have_count(2)
    expect(delete_buttons(page)).to_have_count(2)  # DELETE is allowed in /uploads
    page.screenshot(path=str(screenshots / "upload-result.png"))
    # Reloading the result page is a GET: nothing is stored again.
    page.reload()
    expect(page.locator("#notice")).to_contain_text("Uploaded:")
    assert uploaded(demo_root) == {"report <2026> & co.txt", "notes.txt"}


def test_delete_from_the_listing_and_from_the_upload_page(
    page: Page, demo: Server, demo_root: Path
) -> None:
    for name in ("one.txt", "two.txt"):
        (demo_root / "uploads" / name).write_text(name)
    page.goto(demo.url("/uploads/"))
    page.get_by_role("button", name="Delete one.txt").click()
    page.wait_for_url(re.compile(r".*/uploads/\?deleted=one\.txt$"))
    expect(page.locator("#notice")).to_have_text("Deleted: one.txt.")
    assert not (demo_root / "uploads" / "one.txt").exists()
    assert page.get_by_role("link", name="one.txt", exact=True).count() == 0
    expect(delete_buttons(page)).not_to_have_count(0)
    page.goto(demo.url("/upload.html"))
    button = page.get_by_role("button", name="Delete two.txt")
    with page.expect_navigation():
        button.click()
    assert not (demo_root / "uploads" / "two.txt").exists()
    assert page.get_by_role("button", name="Delete two.txt").count() == 0


def test_read_only_listings_have_no_delete_buttons_and_use_the_site_style(
    page: Page, demo: Server, screenshots: Path
) -> None:
    page.goto(demo.url("/files/"))
    page.wait_for_load_state("networkidle")  # the OPTIONS probe has answered
    assert delete_buttons(page).count() == 0
    assert page.locator("body > header nav a").count() >= 9
    # /style.css, not only the inline style: the site's paper colour.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(247, 245, 240)"
    assert page.evaluate("getComputedStyle(document.querySelector('.size')).textAlign") == "right"
    page.screenshot(path=str(screenshots / "listing.png"))


def test_end_the_session_from_the_session_page(page: Page, demo: Server) -> None:
    page.goto(demo.url("/session.html"))
    expect(page.locator("#visits")).to_have_text("1")
    cookies = [c for c in page.context.cookies() if c.get("name") == "LOCALHOST_SESSION"]
    assert len(cookies) == 1
    page.get_by_role("button", name="End session").click()
    page.get_by_text("Session ended").wait_for()
    assert [c for c in page.context.cookies() if c.get("name") == "LOCALHOST_SESSION"] == []
    page.reload()  # a new session starts: its first visit
    expect(page.locator("#visits")).to_have_text("1")


def test_cgi_environment_fits_the_window(page: Page, demo: Server, screenshots: Path) -> None:
    # Long values (a path, a query, PATH) wrap instead of widening the page.
    page.goto(demo.url("/cgi-bin/env.py/" + "long-path-segment-" * 30 + "?x=" + "y" * 600))
    assert page.locator("body > header nav").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.goto(demo.url("/cgi-bin/env.py/extra/path?x=1"))  # the link on the home page
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.screenshot(path=str(screenshots / "env.png"))


def test_chat_between_two_pages(browser: Browser, demo: Server, screenshots: Path) -> None:
    # Two browser windows in one room of the demo's chat (WebSocket, App API).
    contexts = [browser.new_context(viewport={"width": WIDTH, "height": 800}) for _ in range(2)]
    try:
        alice, bob = (context.new_page() for context in contexts)
        errors: list[str] = []
        for page, name in ((alice, "alice"), (bob, "bob")):
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(demo.url(f"/chat.html?room=test-room&name={name}"))
            page.get_by_role("button", name="Join").click()
            expect(page.locator("#status")).to_contain_text("Connected to #test-room")
        expect(alice.locator("#messages")).to_contain_text("bob joined")
        alice.get_by_label("Message").fill("hello <b>bob</b>")
        alice.get_by_role("button", name="Send").click()
        expect(bob.locator("#messages li").last).to_have_text("alice: hello <b>bob</b>")
        bob.get_by_label("Message").fill("hi alice")
        bob.keyboard.press("Enter")
        expect(alice.locator("#messages li").last).to_have_text("bob: hi alice")
        assert bob.locator("#messages b").count() == 0  # text, never markup
        alice.screenshot(path=str(screenshots / "chat.png"))
        bob.close()
        expect(alice.locator("#messages li").last).to_have_text("server: bob left")
        assert errors == []
    finally:
        for context in contexts:
            context.close()


def test_clock_page_over_websocket_exec(page: Page, demo: Server) -> None:
    page.goto(demo.url("/clock.html"))
    expect(page.locator("#status")).to_have_text("Connected.")
    expect(page.locator("#time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    first = page.locator("#time").text_content()
    expect(page.locator("#time")).not_to_have_text(first or "", timeout=5000)  # it ticks
    page.get_by_label("Send a line").fill("ping")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#replies li")).to_have_text(["echo ping"])


PROXY = """
server {
    host 127.0.0.1
    port {port0}
    location / {
        proxy_pass http://127.0.0.1:BACKEND
        proxy_set_header Host $http_host
    }
}
"""


def test_chat_through_the_reverse_proxy(browser: Browser, demo: Server, tmp_path: Path) -> None:
    # localhost in front of the demo: the page, then its WebSocket (an
    # Upgrade the proxy tunnels), come through the proxy.
    proxy = start_server(PROXY.replace("BACKEND", str(demo.port)), tmp_path)
    contexts = [browser.new_context() for _ in range(2)]
    try:
        pages = [context.new_page() for context in contexts]
        for page, name in zip(pages, ("ann", "ben"), strict=True):
            page.goto(proxy.url(f"/chat.html?room=proxied&name={name}"))
            page.get_by_role("button", name="Join").click()
            expect(page.locator("#status")).to_contain_text("Connected to #proxied")
        expect(pages[0].locator("#messages")).to_contain_text("ben joined")
        pages[1].get_by_label("Message").fill("through the proxy")
        pages[1].get_by_role("button", name="Send").click()
        expect(pages[0].locator("#messages li").last).to_have_text("ben: through the proxy")
    finally:
        for context in contexts:
            context.close()
        proxy.stop()


HTTPS_DEMO = """
ssl_certificate ./certs/localhost.crt
ssl_certificate_key ./certs/localhost.key
server {
    listen 127.0.0.1:{port0} ssl http2
    root ./www
    location / { default_file index.html }
    location /files { root ./www/files; directory_listing on }
    location /session { session on }
}
"""


def test_demo_over_https_and_http2(browser: Browser, tmp_path: Path) -> None:
    import trustme

    from tests.e2e.test_demo import copy_demo

    copy_demo(tmp_path)
    (tmp_path / "certs").mkdir()
    cert = trustme.CA().issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "certs" / "localhost.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "certs" / "localhost.crt"))
    server = start_server(HTTPS_DEMO, tmp_path)
    context = browser.new_context(ignore_https_errors=True)  # the test's own CA
    try:
        page = context.new_page()
        page.goto(f"https://127.0.0.1:{server.port}/")
        protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        assert protocol == "h2"
        assert page.locator("body > header nav a").count() >= 9
        # Subresources share the connection: the stylesheet applied.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(247, 245, 240)"
        page.goto(f"https://127.0.0.1:{server.port}/files/")
        expect(page.locator("table.listing")).to_be_visible()
        page.goto(f"https://127.0.0.1:{server.port}/session.html")
        expect(page.locator("#visits")).to_have_text("1")
    finally:
        context.close()
        server.stop()
