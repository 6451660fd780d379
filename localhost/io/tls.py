"""TLS: server contexts, and a socket transport that speaks TLS (Python's ``ssl``).

Contexts. ``make_context`` builds one ``ssl.SSLContext`` per distinct
(certificate, key, protocols, ciphers), when the configuration is loaded:
in the master, before it forks, so that every worker shares it
copy-on-write. OpenSSL's session cache and session tickets stay at their
defaults. The ticket keys are made with the context, so a ticket issued by
one worker resumes on any worker of the same generation; the session-ID
cache lives in each worker's memory and resumes only on the worker that
made it. A reload (SIGHUP) loads the configuration again, builds new
contexts (renewed certificates are then used by new connections), and new
ticket keys: older tickets fall back to a full handshake. ALPN offers
``ALPN_PROTOCOLS``.

SNI. Every context calls back into the connection's transport during the
handshake (``_on_sni``): the transport asks its ``select_context(local,
name)`` (the worker: the router's block for that name, with the same
precedence as a Host field, else the address's default) and switches the
connection to that block's context. As in NGINX, the protocol versions and
ciphers are those of the context the connection started with (the
address's default block); the certificate is the chosen block's.

The transport. ``TLSTransport`` is a ``SocketTransport`` over a non-blocking
``ssl.SSLSocket`` rather than an ``SSLObject`` with memory BIOs: OpenSSL
then reads and writes the socket itself (no Python copy of each record
through a BIO), and it is the only form that kernel TLS can work with. The
handshake runs from the loop: ``SSLWantReadError``/``SSLWantWriteError``
become EPOLLIN/EPOLLOUT interest, until ``handshake_timeout`` (the
server's ``client_header_timeout``), when the connection is dropped. Only
then does the protocol get ``connection_made``: the HTTP protocol runs over
it unchanged. Before any TLS, the first byte is peeked: a connection that
does not start with a handshake record (0x16) is answered ``plain_reply``
(NGINX's 400 "The plain HTTP request was sent to HTTPS port") and closed.

After every readable event, the transport reads until OpenSSL holds no
decrypted bytes (``pending()``): epoll only knows about the socket, not
about what OpenSSL has buffered. Sending a file: Python's ``ssl`` cannot
``sendfile``, so the transport reads a ``FileBody`` 64 KiB at a time
(``FILE_CHUNK``), a chunk only once the one before has been sent (see
``transport.py``). Kernel TLS (``SSL_OP_ENABLE_KTLS``) lets ``os.sendfile``
work on a TLS socket; ``probe_ktls`` finds out at start whether the kernel
offers it, and a connection uses ``sendfile`` only when OpenSSL did switch
its socket to kernel TLS. Closing sends close_notify (RFC 8446 §6.1),
without waiting for the peer's.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localhost.io.transport import (
    _CLOSED,
    _HUPERR,
    _LINGER,
    _OPEN,
    _READABLE,
    EPOLLIN,
    EPOLLOUT,
    EPOLLRDHUP,
    RECV_SIZE,
    SocketTransport,
    Transport,
)

if TYPE_CHECKING:
    from localhost.io.loop import EventLoop
    from localhost.io.transport import AnyProtocol

log = logging.getLogger("localhost")

#: ALPN protocol names offered, most preferred first (RFC 7301); a block with
#: ``http2 on`` offers ``h2`` before them, and the worker picks the protocol
#: by ``get_extra_info("alpn_protocol")``.
ALPN_PROTOCOLS: tuple[str, ...] = ("http/1.1",)

#: ``ssl_protocols`` values and their versions; anything older is refused.
PROTOCOLS: dict[str, ssl.TLSVersion] = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
#: Names NGINX knows that localhost never allows (insecure: RFC 8996).
OBSOLETE_PROTOCOLS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})

#: SSL_OP_ENABLE_KTLS (OpenSSL 3.0): Python 3.12 names it, 3.11 does not.
OP_ENABLE_KTLS = getattr(ssl, "OP_ENABLE_KTLS", 0x8)
_TCP_ULP = getattr(socket, "TCP_ULP", 31)  # linux/tcp.h
_SOL_TLS = getattr(socket, "SOL_TLS", 282)  # linux/socket.h
_TLS_TX = 1  # linux/tls.h: the send direction's crypto state
_HANDSHAKE_RECORD = 0x16  # TLS ContentType handshake (RFC 8446 §5.1)


class TLSConfigError(Exception):
    """A TLS setting cannot be used. ``setting`` names the directive at fault:
    ``"ssl_certificate"``, ``"ssl_certificate_key"`` or ``"ssl_ciphers"``."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def _no_password() -> str:
    raise TLSConfigError(
        "ssl_certificate_key", "the key is encrypted (a passphrase is not supported)"
    )


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's words for ``exc``, without the file and line of its source."""
    if exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    text = str(exc.strerror or exc)
    return text.split(" (_ssl.c:", 1)[0]


def _readable(path: Path, setting: str) -> None:
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as exc:
        raise TLSConfigError(setting, f"cannot read {path}: {exc.strerror or exc}") from None


def make_context(
    certificate: Path,
    key: Path,
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3"),
    ciphers: str | None = None,
    *,
    ktls: bool = False,
    http2: bool = False,
) -> ssl.SSLContext:
    """A server ``SSLContext`` for a PEM certificate chain and its private key.

    ``protocols`` are ``PROTOCOLS`` names (the context allows the range from
    the oldest to the newest); ``ciphers`` an OpenSSL cipher string (TLS
    1.2; TLS 1.3 suites stay OpenSSL's); ``ktls`` asks OpenSSL for kernel
    TLS (``OP_ENABLE_KTLS``). The context offers ``ALPN_PROTOCOLS`` (with
    ``h2`` first when ``http2``: the block has ``http2 on``) and
    calls ``_on_sni`` for the name a client asks for.

    Raises ``TLSConfigError`` naming the setting at fault: a file that
    cannot be read, a certificate or key that is not PEM, a key that does
    not match the certificate, an encrypted key, a cipher string OpenSSL
    rejects. Raises ``ValueError`` for an unknown protocol name.
    """
    versions = sorted(PROTOCOLS[name] for name in protocols)
    _readable(certificate, "ssl_certificate")
    _readable(key, "ssl_certificate_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = versions[0]
    context.maximum_version = versions[-1]
    try:
        # The certificate alone first, so that its faults are told apart from the key's.
        ssl.create_default_context().load_verify_locations(cafile=str(certificate))
    except ssl.SSLError as exc:
        raise TLSConfigError(
            "ssl_certificate", f"{certificate}: not a PEM certificate ({_reason(exc)})"
        ) from None
    try:
        context.load_cert_chain(str(certificate), str(key), password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = f"{key} does not match the certificate {certificate}"
        else:
            message = f"{key}: not a PEM private key ({_reason(exc)})"
        raise TLSConfigError("ssl_certificate_key", message) from None
    if ciphers is not None:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise TLSConfigError(
                "ssl_ciphers", f"OpenSSL selects no cipher from {ciphers!r}"
            ) from None
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME
    if ktls:
        context.options |= OP_ENABLE_KTLS
    context.set_alpn_protocols(["h2", *ALPN_PROTOCOLS] if http2 else list(ALPN_PROTOCOLS))
    # typeshed types the callback for SSLObject; wrap_socket passes the SSLSocket.
    context.sni_callback = _on_sni  # type: ignore[assignment]
    context.sslsocket_class = _ServerSocket
    return context


def certificate_expiry(certificate: Path) -> float | None:
    """When the first certificate of a PEM file expires (seconds since the
    epoch), or None when that cannot be read here."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is None:
        return None
    try:
        not_after = decode(str(certificate))["notAfter"]
        return float(ssl.cert_time_to_seconds(not_after))
    except (ssl.SSLError, OSError, KeyError, ValueError):
        return None


@functools.cache
def probe_ktls() -> tuple[bool, str]:
    """Whether kernel TLS can be asked for here: ``(True, "")`` or
    ``(False, why not)``. Probed once per process (a loopback connection
    asked for the kernel's "tls" upper-layer protocol)."""
    if ssl.OPENSSL_VERSION_INFO < (3, 0):
        return False, f"{ssl.OPENSSL_VERSION} has no kernel TLS (OpenSSL 3.0 or later)"
    if not hasattr(socket, "AF_INET"):
        return False, "no TCP"
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            with socket.create_connection(listener.getsockname(), timeout=1) as client:
                client.setsockopt(socket.IPPROTO_TCP, _TCP_ULP, b"tls")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return False, f'the kernel has no TLS module (TCP_ULP "tls": {reason})'
    return True, ""


def _ktls_sending(sock: socket.socket) -> bool:
    """Whether the kernel encrypts what ``sock`` sends (OpenSSL set TLS_TX)."""
    try:
        sock.getsockopt(_SOL_TLS, _TLS_TX, 64)
    except OSError:
        return False
    return True


class _ServerSocket(ssl.SSLSocket):
    """The SSLSocket of a ``TLSTransport``: the SNI callback finds it here."""

    owner: TLSTransport | None = None


def _on_sni(sock: ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> int | None:
    owner = getattr(sock, "owner", None)
    if owner is None:
        return None
    try:
        chosen = owner._choose_context(name)
    except Exception:
        log.exception("choosing the certificate for %r failed", name)
        return ssl.ALERTDESCRIPTION_INTERNAL_ERROR  # type: ignore[attr-defined, no-any-return]
    if chosen is not None and chosen is not context:
        sock.context = chosen
    return None


def _tls_sender(sock: ssl.SSLSocket) -> Callable[[bytes | bytearray | memoryview], int]:
    send = _native(sock, "write") or sock.send

    def send_tls(data: bytes | bytearray | memoryview) -> int:
        # Without partial writes, OpenSSL wants the same bytes again after a
        # WANT_WRITE: the queue keeps them, as after EAGAIN.
        try:
            return send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            raise BlockingIOError(errno.EAGAIN, "TLS wants the socket") from None

    return send_tls


def _native(sock: ssl.SSLSocket, name: str) -> Any:
    """The method ``name`` of the ``_ssl`` object under ``sock``, or None.

    ``ssl.SSLSocket.recv_into`` and ``send`` are Python wrappers (argument
    checks, then ``_sslobj.read``/``write``): calling the object below saves
    two Python calls per read and per write on every TLS request. Without
    it (another Python), the public methods serve.
    """
    native = getattr(sock, "_sslobj", None)
    return getattr(native, name, None)


def _tls_reader(sock: ssl.SSLSocket) -> Callable[[int, bytearray], int]:
    """``read(size, buffer) -> count``: decrypted bytes into ``buffer``.

    Raises ``ssl.SSLWantReadError`` when OpenSSL needs more of a record,
    ``ssl.SSLEOFError`` when the peer closed without close_notify; 0 is a
    clean close (close_notify received).
    """
    native = _native(sock, "read")
    if native is not None:
        return native  # type: ignore[no-any-return]
    recv_into = sock.recv_into
    return lambda size, buffer: recv_into(buffer, size)


class _Handshaking:
    """The protocol of a transport until its handshake is over: ignores everything."""

    def connection_made(self, transport: Any) -> None:
        pass

    def data_received(self, data: Any) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


_HANDSHAKING = _Handshaking()


class TLSTransport(SocketTransport):
    """A server-side TLS connection on an accepted socket.

    ``TLSTransport(loop, sock, protocol, context=..., handshake_timeout=...)``
    registers ``sock`` and returns at once; the handshake runs from the
    loop, and ``protocol.connection_made`` is called when it is done (never,
    when it fails or times out). ``select_context(local, name)`` returns
    the context for the SNI ``name`` (None: keep ``context``);
    ``plain_reply()`` is sent, and the connection closed, when the client
    speaks without TLS (None: just closed). Other arguments as
    ``SocketTransport``; ``ktls``: kernel TLS was asked for (``probe_ktls``).

    ``get_extra_info`` also knows ``ssl_object`` (the ``ssl.SSLSocket``),
    ``sslcontext``, ``peercert``, ``cipher``, ``ssl_version``,
    ``alpn_protocol`` and ``server_hostname`` (the SNI name), as asyncio does.
    """

    __slots__ = (
        "_tls",
        "_initial",
        "_select",
        "_plain_reply",
        "_waiting",
        "_handshaking",
        "_ktls",
        "_sni",
        "_tls_read",
        "_tls_recv",
        "_tls_pending",
        "handshake_time",
    )

    scheme = "https"
    can_sendfile = False

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        protocol: AnyProtocol,
        *,
        context: ssl.SSLContext,
        handshake_timeout: float,
        select_context: Callable[[Any, str | None], ssl.SSLContext | None] | None = None,
        plain_reply: Callable[[], bytes] | None = None,
        recv_buffer: bytearray | None = None,
        peername: Any = None,
        sockname: Any = None,
        on_lost: Callable[[Transport], None] | None = None,
        ktls: bool = False,
    ) -> None:
        sock.setblocking(False)
        self._tls: _ServerSocket | None = None
        self._initial = context
        self._select = select_context
        self._plain_reply = plain_reply
        self._waiting: AnyProtocol | None = protocol
        self._handshaking = True
        self._ktls = ktls
        self._sni: str | None = None
        self.handshake_time = 0.0
        self._use_socket(sock, False)
        self._setup(loop, sock.fileno(), _HANDSHAKING, recv_buffer, on_lost)  # type: ignore[arg-type]
        self._peername = peername
        self._sockname = sockname
        self._addresses = []
        self._mask = EPOLLIN
        loop.register(self._fd, EPOLLIN, self._on_event)
        self._arm(loop.now + handshake_timeout, self.abort)

    # -- the handshake ------------------------------------------------------

    def _choose_context(self, name: str | None) -> ssl.SSLContext | None:
        self._sni = name
        if self._select is None:
            return None
        return self._select(self._sockname, name)

    def _handshake(self) -> None:
        tls = self._tls
        if tls is None:
            try:
                first = self._sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail(exc)
                return
            if not first:
                self.abort()
                return
            if first[0] != _HANDSHAKE_RECORD:
                self._refuse_plain()
                return
            try:
                # The client may have reset the connection after its ClientHello:
                # asked here, while the plain socket still owns the descriptor
                # (wrap_socket detaches it before asking the same).
                self._sock.getpeername()
                tls = self._initial.wrap_socket(  # type: ignore[assignment]
                    self._sock, server_side=True, do_handshake_on_connect=False
                )
            except OSError as exc:
                exc.__traceback__ = None  # it would keep a detached socket alive
                self._fail(exc)
                return
            self._tls = tls
            assert tls is not None
            tls.owner = self
            self._sock = tls
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._want(EPOLLIN)
            return
        except ssl.SSLWantWriteError:
            self._want(EPOLLOUT)
            return
        except OSError as exc:  # ssl.SSLError included: a client we cannot talk to
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: TLS handshake failed: %s", self._describe(), exc)
            self._finish(exc)
            return
        self._established(tls)

    def _want(self, mask: int) -> None:
        if mask != self._mask:
            self._loop.modify(self._fd, mask)
            self._mask = mask

    def _established(self, tls: _ServerSocket) -> None:
        tls.owner = None  # no SNI after the handshake; no cycle to wait for
        self._handshaking = False
        self.handshake_time = time.monotonic()
        self._send = _tls_sender(tls)
        self._recv = self._tls_recv = tls.recv
        self._recv_into = tls.recv_into
        self._tls_read = _tls_reader(tls)
        self._tls_pending = tls.pending
        if self._ktls and _ktls_sending(tls):
            self._sendfile = True  # the kernel encrypts what sendfile sends
        self.set_timeout(None)
        protocol = self._waiting
        self._waiting = None
        assert protocol is not None
        self._attach(protocol)
        self._update_interest()
        self._made()

    def _refuse_plain(self) -> None:
        """Not TLS: answer ``plain_reply`` and close, as a plain socket."""
        self._handshaking = False
        self._waiting = None
        self.set_timeout(None)
        if self._plain_reply is None:
            self.abort()
            return
        self.write(self._plain_reply())
        self.close()

    # -- events ---------------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        if self._handshaking:
            self._handshake()
            return
        if mask & EPOLLOUT or (mask & _HUPERR and self._out):
            self._flush()
            if self._state == _CLOSED:
                return
        if self._reading and mask & _READABLE:
            self._read()
        elif self._state == _LINGER:
            if mask & _READABLE:
                self._drain()
        elif mask & _HUPERR:
            self._on_hup(mask)
        elif mask & EPOLLRDHUP:
            self._check_hangup()

    def _read(self) -> None:
        """Read, and go on while OpenSSL holds decrypted bytes (epoll cannot see them)."""
        pending = self._tls_pending
        while True:
            try:
                if self._mv:
                    buffer = self._buffer
                    received = self._tls_read(len(buffer), buffer)
                    data: bytes | memoryview = self._view[:received]
                else:
                    data = self._tls_recv(RECV_SIZE)
                    received = len(data)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                # The peer closed without close_notify (or sent it after our
                # own): an end of input, as ssl.SSLSocket's suppress_ragged_eofs
                # makes it.
                received = 0
                data = b""
            except InterruptedError:
                return
            except OSError as exc:
                self._fail(exc)
                return
            if not received:
                self._on_eof()
                return
            try:
                self._data_received(data)
            except Exception as exc:
                self._protocol_failed(exc, "data_received")
                return
            if not (self._reading and self._state == _OPEN and pending()):
                return

    def resume_reading(self) -> None:
        super().resume_reading()
        tls = self._tls
        if self._reading and tls is not None and not self._handshaking and tls.pending():
            # Decrypted bytes wait in OpenSSL: no epoll event will announce them.
            self._loop.call_soon(self._read_pending)

    def _read_pending(self) -> None:
        if self._reading and self._state == _OPEN:
            self._read()

    def _check_hangup(self) -> None:
        """RDHUP while the protocol works: gone, unless bytes (a record) came first."""
        try:
            peek = socket.socket.recv(self._sock, 1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            peek = b""
        self._hangup_seen = True
        self._update_interest()
        if not peek:
            try:
                self._hangup_received()
            except Exception as exc:
                self._protocol_failed(exc, "hangup_received")

    # -- the end ----------------------------------------------------------------

    def _close_notify(self) -> None:
        """Send close_notify once; the peer's is not waited for (RFC 8446 §6.1)."""
        tls = self._tls
        if tls is None or self._handshaking:
            return
        # WANT_READ: the peer's close_notify has not come (it need not).
        with contextlib.suppress(OSError, ValueError):
            tls.unwrap()

    def _shut_write(self) -> None:
        self._close_notify()
        super()._shut_write()

    def _closed_queue(self) -> None:
        if not self._eof:
            self._close_notify()
        super()._closed_queue()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        tls = self._tls
        if tls is None or self._handshaking or name in ("peername", "sockname", "socket"):
            if name == "sslcontext":
                return self._initial
            return super().get_extra_info(name, default)
        if name == "ssl_object":
            return tls
        if name == "sslcontext":
            return tls.context
        if name == "server_hostname":
            return self._sni
        try:
            if name == "peercert":
                return tls.getpeercert()
            if name == "cipher":
                return tls.cipher()
            if name == "ssl_version":
                return tls.version()
            if name == "alpn_protocol":
                return tls.selected_alpn_protocol()
        except (OSError, ValueError):
            return default
        return default

    @property
    def context(self) -> ssl.SSLContext | None:
        """The context of the handshake (after SNI); None before it is done."""
        tls = self._tls
        return None if tls is None or self._handshaking else tls.context


__all__ = [
    "ALPN_PROTOCOLS",
    "OBSOLETE_PROTOCOLS",
    "OP_ENABLE_KTLS",
    "PROTOCOLS",
    "TLSConfigError",
    "TLSTransport",
    "certificate_expiry",
    "make_context",
    "probe_ktls",
]
