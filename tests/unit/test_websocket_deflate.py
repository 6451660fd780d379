"""BoundedDeflate: permessage-deflate that stops inflating at the message limit."""

from __future__ import annotations

from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Message, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

from localhost.server.websocket import BoundedDeflate

LIMIT = 64 * 1024


def pair(limit: int = LIMIT) -> tuple[Connection, Connection]:
    """A client and a server connection that agreed on permessage-deflate."""
    offer = PerMessageDeflate()
    server_side = BoundedDeflate(limit)
    agreed = server_side.accept(offer.offer())
    assert agreed
    offer.finalize(agreed)
    client = Connection(ConnectionType.CLIENT, extensions=[offer])
    server = Connection(ConnectionType.SERVER, extensions=[server_side])
    return client, server


def deliver(server: Connection, wire: bytes, step: int) -> list[object]:
    events: list[object] = []
    for start in range(0, len(wire), step):
        server.receive_data(wire[start : start + step])
        events.extend(server.events())
    return events


def messages(events: list[object]) -> list[bytes | str]:
    """Whole messages out of the (possibly partial) message events."""
    found: list[bytes | str] = []
    parts: list[bytes | str] = []
    for event in events:
        if isinstance(event, Message):
            parts.append(event.data)
            if event.message_finished:
                joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)  # type: ignore[arg-type]
                found.append(joined)
                parts = []
    return found


def test_messages_within_the_limit_inflate_whole_byte_by_byte_and_at_once() -> None:
    sent: list[bytes | str] = [b"x" * LIMIT, "héllo " * 100, b"", b"\x00\x01" * 1000]
    for step in (1, 7, 1 << 20):
        client, server = pair()
        wire = b"".join(
            client.send(BytesMessage(data=m) if isinstance(m, bytes) else TextMessage(data=m))
            for m in sent
        )
        assert messages(deliver(server, wire, step)) == sent


def test_fragmented_messages_count_every_fragment() -> None:
    client, server = pair()
    wire = client.send(BytesMessage(data=b"a" * (LIMIT // 2), message_finished=False))
    wire += client.send(BytesMessage(data=b"b" * (LIMIT // 2), message_finished=True))
    assert messages(deliver(server, wire, 4096)) == [b"a" * (LIMIT // 2) + b"b" * (LIMIT // 2)]
    # The count starts again with the next message.
    wire = client.send(BytesMessage(data=b"c" * LIMIT))
    assert messages(deliver(server, wire, 4096)) == [b"c" * LIMIT]


def test_one_byte_over_the_limit_closes_with_1009() -> None:
    for data, finished in ((b"z" * (LIMIT + 1), True), (b"z" * LIMIT, False)):
        client, server = pair()
        wire = client.send(BytesMessage(data=data, message_finished=finished))
        if not finished:
            wire += client.send(BytesMessage(data=b"z", message_finished=True))
        events = deliver(server, wire, 1 << 20)
        closes = [e for e in events if isinstance(e, CloseConnection)]
        assert closes and closes[0].code == CloseReason.MESSAGE_TOO_BIG


def test_a_bomb_is_not_inflated() -> None:
    client, server = pair()
    wire = client.send(BytesMessage(data=bytes(64 * 1024 * 1024)))
    assert len(wire) < 128 * 1024
    server.receive_data(wire)
    events = list(server.events())
    assert sum(len(e.data) for e in events if isinstance(e, Message)) <= LIMIT
    assert isinstance(events[-1], CloseConnection) and events[-1].code == 1009
