"""The protocol side of a connection: what a transport calls as bytes come and go.

A protocol is the asyncio.Protocol interface (``connection_made``,
``data_received``, ``eof_received``, ``connection_lost``, ``pause_writing``,
``resume_writing``), so any ``asyncio.Protocol`` subclass runs on this
package's transports unchanged, using ``transport.write``, ``close``,
``get_extra_info`` and the rest. ``Protocol`` below gives every method a
default and adds what a worker process needs beyond asyncio's interface:
``is_idle`` and ``shutdown`` (for a graceful stop) and ``hangup_received``
(the peer went away while the protocol was not reading). A transport looks
these extras up once, when the protocol is attached, so a protocol without
them costs nothing per event.

The order of calls on one protocol: ``connection_made`` once; then any number
of ``data_received``, at most one ``eof_received``, and pairs of
``pause_writing``/``resume_writing``; then ``connection_lost`` exactly once.
``connection_lost`` is never called from inside another callback or a
transport method: it runs from the loop once the current event is handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localhost.io.transport import Transport


class Protocol:
    """Base class of a connection's protocol; subclass and override what you need.

    One object serves one connection. ``transport`` is set by
    ``connection_made`` and cleared by ``connection_lost``.

    ``accepts_memoryview``: when a subclass sets it to True, ``data_received``
    may be given a ``memoryview`` into a buffer that the transport reuses
    (valid only during the call; copy what you keep), which saves a copy for
    protocols that parse or copy their input anyway. Otherwise it gets
    ``bytes``.
    """

    __slots__ = ("transport",)

    accepts_memoryview = False

    def __init__(self) -> None:
        self.transport: Transport | None = None

    def connection_made(self, transport: Transport) -> None:
        """The connection is up; ``transport`` is how to write to it and close it."""
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer (never empty)."""

    def eof_received(self) -> bool | None:
        """The peer will send no more (it half-closed, or closed).

        Return a true value to keep the connection open for writing (then
        close it yourself); None or False closes it, after what was written
        has been sent.
        """
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is closed; ``exc`` is the error that closed it, or None.

        Called exactly once, after every other callback. After a failed
        ``connect()`` it is called without ``connection_made`` before it.
        """
        self.transport = None

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark: stop producing."""

    def resume_writing(self) -> None:
        """The transport's buffer fell to its low-water mark: produce again."""

    # -- worker extras (not in asyncio; transports use these defaults for protocols without them)

    def is_idle(self) -> bool:
        """Whether closing now loses nothing (no request or message in progress).

        A stopping worker closes idle connections at once and gives the others
        time to finish.
        """
        return True

    def shutdown(self) -> None:
        """The worker is stopping: finish what is in progress, take nothing new, then close.

        The default closes the transport (after what was written has been sent).
        """
        # getattr: a subclass's __init__ need not call ours.
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()

    def hangup_received(self) -> None:
        """The peer went away while this protocol was not reading (see
        ``Transport.watch_hangup``). The default drops the connection at once.
        """
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.abort()
