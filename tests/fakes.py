"""An in-memory transport for testing protocols without sockets (bytes in, bytes out).

``FakeTransport`` keeps the contract of ``localhost.io.Transport`` that a
protocol can observe: ``connection_made`` on attach, ``data_received`` only
while reading (bytes fed while paused wait, as in a kernel buffer),
``pause_writing``/``resume_writing`` at the watermarks while the peer is
``block``-ed, and ``connection_lost`` exactly once, after the callback in
which the transport was closed returns (as the loop's ``call_soon`` does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from localhost.io import FileBody, Protocol, Transport


class FakeTransport(Transport):
    """A transport whose peer is the test.

    Drive it with ``feed``/``feed_eof``/``fire_timeout``/``block``/``unblock``;
    read what the protocol wrote with ``take()``.
    """

    def __init__(
        self,
        protocol: Protocol | None = None,
        *,
        peername: Any = ("127.0.0.1", 40000),
        sockname: Any = ("127.0.0.1", 8080),
        high: int = 256 * 1024,
        low: int = 64 * 1024,
    ) -> None:
        self.protocol: Any = None
        self.written = bytearray()  # what the peer has read
        self.queued = bytearray()  # written while the peer is blocked
        self.inbox = bytearray()  # fed while reading is paused
        self.inbox_eof = False
        self.blocked = False
        self.reading = True
        self.closing = False
        self.aborted = False
        self.eof_written = False
        self.write_paused = False
        self.hangup_watched = False
        self.lost: list[Exception | None] = []
        self.timeout: tuple[float, Callable[[], None]] | None = None
        self.extra = {"peername": peername, "sockname": sockname, "socket": None}
        self.high = high
        self.low = low
        self._lost_pending: list[Exception | None] = []
        if protocol is not None:
            self.attach(protocol)

    # -- the test's side ------------------------------------------------------

    def attach(self, protocol: Any) -> None:
        """Make ``protocol`` this transport's and call its ``connection_made``."""
        self.protocol = protocol
        protocol.connection_made(self)
        self._settle()

    def feed(self, data: bytes) -> None:
        """The peer sends ``data``."""
        self.inbox += data
        self._deliver()
        self._settle()

    def feed_eof(self) -> None:
        """The peer half-closes."""
        self.inbox_eof = True
        self._deliver()
        self._settle()

    def block(self) -> None:
        """The peer stops reading: writes queue up and count against the watermarks."""
        self.blocked = True

    def unblock(self) -> None:
        """The peer reads everything queued."""
        self.blocked = False
        self.written += self.queued
        self.queued.clear()
        if self.write_paused:
            self.write_paused = False
            self.protocol.resume_writing()
        self._finish_close()
        self._settle()

    def fire_timeout(self) -> None:
        """The deadline set with ``set_timeout`` comes."""
        assert self.timeout is not None, "no timeout set"
        _, callback = self.timeout
        self.timeout = None
        callback()
        self._settle()

    def take(self) -> bytes:
        """What the protocol wrote (and the peer read) since the last ``take``."""
        data = bytes(self.written)
        self.written.clear()
        return data

    # -- the protocol's side --------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview | FileBody) -> None:
        if self.eof_written and not self.closing:
            raise RuntimeError("write() after write_eof()")
        if type(data) is FileBody:
            chunk = os.pread(data.fd, data.count, data.offset) if data.count else b""
            data.close()
            data = chunk
        if self.closing:
            return
        if not self.blocked:
            self.written += data
            return
        self.queued += data
        if len(self.queued) > self.high and not self.write_paused:
            self.write_paused = True
            self.protocol.pause_writing()

    def writelines(self, items: Iterable[bytes | bytearray | memoryview | FileBody]) -> None:
        for item in items:
            self.write(item)

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.reading = False
        self._finish_close()

    def abort(self) -> None:
        if self.closing and not self.queued:
            return
        self.closing = True
        self.aborted = True
        self.queued.clear()
        self._finish_close()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if not self.closing:
            self.reading = True
            self._deliver()

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 256 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        self.high, self.low = high, low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.low, self.high

    def get_write_buffer_size(self) -> int:
        return len(self.queued)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def watch_hangup(self, on: bool) -> None:
        self.hangup_watched = on

    def set_timeout(
        self, seconds: float | None, callback: Callable[[], None] | None = None
    ) -> None:
        if seconds is None or callback is None:
            self.timeout = None
        elif not self.closing:
            self.timeout = (seconds, callback)

    def is_idle(self) -> bool:
        return bool(getattr(self.protocol, "is_idle", lambda: True)())

    def shutdown(self) -> None:
        stop = getattr(self.protocol, "shutdown", None)
        if stop is not None:
            stop()
        else:
            self.close()

    # -- internals --------------------------------------------------------------

    def _deliver(self) -> None:
        while self.reading and self.inbox:
            data = bytes(self.inbox)
            self.inbox.clear()
            self.protocol.data_received(data)
        if self.reading and self.inbox_eof and not self.inbox:
            self.inbox_eof = False
            self.reading = False
            if not self.protocol.eof_received():
                self.close()

    def _finish_close(self) -> None:
        if self.closing and not self.queued and not self.lost and not self._lost_pending:
            self._lost_pending.append(None)

    def _settle(self) -> None:
        # The end of the loop iteration: connection_lost, once.
        while self._lost_pending:
            exc = self._lost_pending.pop()
            self.lost.append(exc)
            self.protocol.connection_lost(exc)
