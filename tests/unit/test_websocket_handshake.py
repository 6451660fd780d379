"""The WebSocket opening handshake (RFC 6455 §4.2), sans-IO: ``accept`` and friends."""

from __future__ import annotations

import pytest

from localhost.http.errors import HTTPError
from localhost.http.message import Request
from localhost.http.parser import RequestParser
from localhost.server.websocket import Settings, accept, accept_key, is_websocket

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the RFC's example


def request(*fields: str, method: str = "GET", version: str = "HTTP/1.1") -> Request:
    head = f"{method} /chat HTTP/{version[5:]}\r\nHost: example.com\r\n" + "".join(
        f"{field}\r\n" for field in fields
    )
    parser = RequestParser()
    parser.feed((head + "\r\n").encode("latin-1"))
    event = parser.next_event()
    assert isinstance(event, Request), event
    return event


GOOD = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
)


def status_of(req: Request, **kwargs: object) -> int:
    with pytest.raises(HTTPError) as caught:
        accept(req, **kwargs)  # type: ignore[arg-type]
    return caught.value.status


def test_the_rfc_example_key() -> None:
    # RFC 6455 §1.3: this key gives this accept value.
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_good_handshake_gives_101_with_the_accept_value() -> None:
    accepted = accept(request(*GOOD))
    response = accepted.response
    assert response.status == 101
    fields = {name.lower(): value for name, value in response.headers}
    assert fields["upgrade"] == "websocket"
    assert fields["connection"].lower() == "upgrade"
    assert fields["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert "sec-websocket-protocol" not in fields
    assert accepted.subprotocol is None and accepted.extensions == []


def test_tokens_are_case_insensitive_and_may_be_lists() -> None:
    req = request(
        "Upgrade: WebSocket",
        "Connection: keep-alive, Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    )
    assert is_websocket(req)
    assert accept(req).response.status == 101


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (GOOD[1:], 400),  # no Upgrade
        (("Upgrade: h2c", *GOOD[1:]), 400),
        ((GOOD[0], "Connection: keep-alive", *GOOD[2:]), 400),
        ((*GOOD[:2], GOOD[3]), 400),  # no key
        ((*GOOD[:2], "Sec-WebSocket-Key: short", GOOD[3]), 400),
        ((*GOOD[:2], "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==", GOOD[3]), 400),
        ((*GOOD[:2], f"Sec-WebSocket-Key: {KEY}", f"Sec-WebSocket-Key: {KEY}", GOOD[3]), 400),
        (GOOD[:3], 426),  # no version
        ((*GOOD[:3], "Sec-WebSocket-Version: 8"), 426),
    ],
)
def test_bad_handshakes(fields: tuple[str, ...], status: int) -> None:
    assert status_of(request(*fields)) == status


def test_version_refusal_names_13() -> None:
    with pytest.raises(HTTPError) as caught:
        accept(request(*GOOD[:3], "Sec-WebSocket-Version: 7"))
    assert ("Sec-WebSocket-Version", "13") in caught.value.headers


def test_only_get_and_http11() -> None:
    assert status_of(request(*GOOD, method="POST")) == 405
    assert status_of(request(*GOOD, version="HTTP/1.0")) == 400
    assert status_of(request(*GOOD, "Content-Length: 5")) == 400


def test_origin_same_host_by_default() -> None:
    assert accept(request(*GOOD, "Origin: http://example.com")).response.status == 101
    assert accept(request(*GOOD, "Origin: https://example.com")).response.status == 101
    assert status_of(request(*GOOD, "Origin: http://evil.example")) == 403
    # Without Origin (not a browser) it is allowed.
    assert accept(request(*GOOD)).response.status == 101


def test_origin_allow_list() -> None:
    settings = Settings(origins=("https://app.example",))
    ok = request(*GOOD, "Origin: https://app.example")
    assert accept(ok, settings).response.status == 101
    assert status_of(request(*GOOD, "Origin: http://example.com"), settings=settings) == 403
    anyone = Settings(origins=("*",))
    assert accept(request(*GOOD, "Origin: http://x.test"), anyone).response.status == 101


def test_subprotocol_server_preference_among_offered() -> None:
    req = request(*GOOD, "Sec-WebSocket-Protocol: chat.v2, chat.v1")
    accepted = accept(req, subprotocols=["chat.v1", "chat.v2"])
    assert accepted.subprotocol == "chat.v1"
    assert ("Sec-WebSocket-Protocol", "chat.v1") in accepted.response.headers
    none = accept(req, subprotocols=["other"])
    assert none.subprotocol is None
    assert all(name != "Sec-WebSocket-Protocol" for name, _ in none.response.headers)


def test_permessage_deflate_only_when_on() -> None:
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    off = accept(request(*GOOD, offer))
    assert off.extensions == []
    on = accept(request(*GOOD, offer), Settings(deflate=True))
    assert len(on.extensions) == 1
    values = dict(on.response.headers)
    assert values["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
    # Nothing offered: nothing agreed.
    assert accept(request(*GOOD), Settings(deflate=True)).extensions == []
