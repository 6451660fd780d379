"""Non-HTTP protocols: EchoProtocol and the idle limit over FakeTransport, and the
``protocol`` directive's validation."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import localhost
from localhost.config import ConfigError, loads
from localhost.server.protocols import (
    EchoProtocol,
    IdleTimeout,
    protocol_factory,
    wrap_idle_timeout,
)
from tests.fakes import FakeTransport
from tests.proc import wait_for


def settle(transport: FakeTransport) -> None:
    """The end of the loop iteration: a pending connection_lost runs."""
    transport._settle()


HIGH = 256 * 1024  # README: the write buffer's high-water mark
LOW = 64 * 1024  # and its low-water mark


# -- EchoProtocol ----------------------------------------------------------------


def test_echo_sends_every_byte_back_in_order() -> None:
    transport = FakeTransport(EchoProtocol())
    transport.feed(b"hello\n")
    transport.feed(bytes(range(256)))
    assert transport.take() == b"hello\n" + bytes(range(256))


def test_echo_closes_after_the_peer_half_closes_and_everything_is_sent() -> None:
    transport = FakeTransport(EchoProtocol())
    transport.feed(b"last words")
    transport.feed_eof()
    assert transport.take() == b"last words"
    assert transport.closing and not transport.aborted
    assert transport.lost == [None]


def test_echo_stops_reading_while_the_peer_does_not_read_and_resumes_after() -> None:
    transport = FakeTransport(EchoProtocol(), high=HIGH, low=LOW)
    protocol = transport.protocol
    transport.block()
    chunk = bytes(range(256)) * 256  # 64 KiB
    fed = 0
    while transport.reading:
        transport.feed(chunk)
        fed += len(chunk)
        assert fed < 100 * HIGH, "reading never paused"
    # What the worker holds is bounded by the high-water mark plus one read.
    assert len(transport.queued) <= HIGH + len(chunk)
    assert not protocol.is_idle()
    # The peer keeps sending: it stays in the (kernel's) inbox, not in the worker.
    for _ in range(50):
        transport.feed(chunk)
    assert len(transport.queued) <= HIGH + len(chunk)
    assert len(transport.inbox) == 50 * len(chunk)
    # The peer reads: writing resumes, so does reading, and every byte comes back in order.
    transport.unblock()
    assert transport.reading
    assert transport.take() == chunk * (fed // len(chunk) + 50)
    assert protocol.is_idle()


def test_echo_after_the_connection_is_lost_drops_late_data() -> None:
    protocol = EchoProtocol()
    transport = FakeTransport(protocol)
    transport.abort()
    settle(transport)
    assert transport.lost == [None]
    protocol.data_received(b"late")  # must not raise
    assert transport.take() == b""


def test_echo_accepts_a_view_of_the_receive_buffer() -> None:
    # The transport then skips a copy per read: write() copies what it keeps.
    assert EchoProtocol.accepts_memoryview is True
    transport = FakeTransport(EchoProtocol())
    buffer = bytearray(b"abc")
    transport.protocol.data_received(memoryview(buffer))
    buffer[:] = b"xyz"
    assert transport.take() == b"abc"


# -- the idle limit ----------------------------------------------------------------


class Recorder(localhost.Protocol):
    """Records every callback it gets."""

    accepts_memoryview = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.calls.append("made")

    def data_received(self, data: bytes) -> None:
        self.calls.append(bytes(data))

    def eof_received(self) -> bool | None:
        self.calls.append("eof")
        return True

    def pause_writing(self) -> None:
        self.calls.append("pause")

    def resume_writing(self) -> None:
        self.calls.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("lost", exc))

    def is_idle(self) -> bool:
        return False

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def idle(transport: FakeTransport, protocol: Any, seconds: float) -> IdleTimeout:
    wrapper = wrap_idle_timeout(transport, protocol, seconds)
    assert isinstance(wrapper, IdleTimeout)
    return wrapper


def test_idle_timeout_arms_the_deadline_and_passes_every_callback_through() -> None:
    inner = Recorder()
    transport = FakeTransport(inner, high=10)
    wrapper = idle(transport, inner, 30.0)
    assert transport.protocol is wrapper
    assert transport.timeout is not None and transport.timeout[0] == 30.0
    assert wrapper.accepts_memoryview is True
    transport.feed(b"x")
    transport.block()
    transport.protocol.pause_writing()
    transport.protocol.resume_writing()
    assert not transport.is_idle()  # the inner protocol's answer
    transport.shutdown()
    transport.feed_eof()  # the inner protocol keeps the connection open
    assert not transport.closing
    transport.abort()
    settle(transport)
    assert inner.calls == ["made", b"x", "pause", "resume", "shutdown", "eof", ("lost", None)]


def test_idle_timeout_closes_a_connection_silent_for_the_limit() -> None:
    inner = EchoProtocol()
    transport = FakeTransport(inner)
    wrapper = idle(transport, inner, 5.0)
    wrapper.last -= 5.0  # as if the limit had passed without a byte
    transport.fire_timeout()
    assert transport.closing and not transport.aborted
    assert transport.lost == [None]


def test_idle_timeout_waits_for_the_rest_when_bytes_came_meanwhile() -> None:
    inner = EchoProtocol()
    transport = FakeTransport(inner)
    wrapper = idle(transport, inner, 5.0)
    wrapper.last -= 3.0
    transport.feed(b"ping")  # restarts the clock without touching the timer
    transport.fire_timeout()
    assert not transport.closing
    assert transport.timeout is not None
    assert 4.5 < transport.timeout[0] <= 5.0  # re-armed for what is left of the limit


def test_idle_timeout_drops_what_a_peer_that_stopped_reading_left_queued() -> None:
    inner = EchoProtocol()
    transport = FakeTransport(inner)
    wrapper = idle(transport, inner, 5.0)
    transport.block()
    transport.feed(b"x" * 1000)
    wrapper.last -= 5.0
    transport.fire_timeout()
    assert transport.aborted  # close() would wait for a reader that is not there
    assert transport.lost == [None]


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair (server side, client side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with server, client:
        yield server, client


def test_bytes_sent_count_as_activity(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    # A protocol that only writes (the peer silent) is not idle: TCP_INFO says when
    # data last left, at no cost per write.
    sock, _peer = tcp_pair
    inner = EchoProtocol()
    transport = FakeTransport()
    transport.extra["socket"] = sock
    transport.attach(inner)
    wrapper = idle(transport, inner, 5.0)
    wrapper.last -= 60.0  # nothing received for a minute
    assert wait_for(lambda: wrapper.idle_for() >= 0.2, 5)  # nothing sent either, lately
    sock.sendall(b"news")
    assert wrapper.idle_for() < 0.2
    transport.fire_timeout()
    assert not transport.closing
    assert transport.timeout is not None and transport.timeout[0] > 4.5


def test_idle_timeout_defaults_for_an_asyncio_protocol() -> None:
    inner = asyncio.Protocol()
    transport = FakeTransport()
    transport.attach(inner)
    wrapper = idle(transport, inner, 1.0)
    assert wrapper.accepts_memoryview is False
    assert transport.is_idle()
    transport.shutdown()  # asyncio's protocol has none: the connection closes
    settle(transport)
    assert transport.closing and transport.lost == [None]


# -- protocol_factory ---------------------------------------------------------------


def test_protocol_factory_is_none_for_http_and_echo_for_echo() -> None:
    config = loads(
        "server { port 8080; root . }\n"
        "server { port 8081; protocol http; root . }\n"
        "server { port 7007; protocol echo }\n",
        Path(__file__),
    )
    http, explicit, echo = config.servers
    assert protocol_factory(http) is None
    assert protocol_factory(explicit) is None
    assert protocol_factory(echo) is EchoProtocol
    assert echo.locations == ()


class Modules:
    """A config folder where each ``load`` writes a module under a fresh name
    (a name once imported stays in ``sys.modules``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []

    @property
    def name(self) -> str:
        """The latest module's name."""
        return self.names[-1]

    def load(self, source: str, config: str) -> Any:
        """Write ``source`` as a new module and load ``config`` with MOD standing for its name."""
        self.names.append(f"proto_{uuid.uuid4().hex}")
        (self.folder / f"{self.name}.py").write_text(source)
        return loads(config.replace("MOD", self.name), self.folder / "test.conf")


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Modules]:
    """A config folder for modules; sys.path and sys.modules restored after."""
    path = list(sys.path)
    modules = Modules(tmp_path)
    yield modules
    sys.path[:] = path
    for name in modules.names:
        sys.modules.pop(name, None)


def load_with(module_dir: Modules, source: str, config: str) -> Any:
    return module_dir.load(source, config)


def test_a_user_class_is_imported_from_the_config_folder(
    module_dir: Modules,
) -> None:
    config = load_with(
        module_dir,
        "import localhost\nclass Upper(localhost.Protocol):\n    pass\n",
        "keepalive_timeout 12\nserver {\n port 7008\n protocol MOD:Upper\n}\n",
    )
    (server,) = config.servers
    assert server.protocol == f"{module_dir.name}:Upper"
    assert server.protocol_class.__name__ == "Upper"
    assert server.timeouts.keepalive == 12.0  # the idle limit, inherited
    factory = protocol_factory(server)
    assert factory is not None
    assert type(factory()).__name__ == "Upper"


def test_a_user_class_whose_constructor_fails_closes_only_its_connection(
    module_dir: Modules, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_with(
        module_dir,
        "import asyncio\n"
        "class Fails(asyncio.Protocol):\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('no more')\n",
        "server { port 7008; protocol MOD:Fails }\n",
    )
    factory = protocol_factory(config.servers[0])
    assert factory is not None
    transport = FakeTransport()
    transport.attach(factory())
    assert transport.aborted and transport.lost == [None]
    assert "the constructor failed" in caplog.text and "no more" in caplog.text


# -- the directive's messages ----------------------------------------------------------


def error(module_dir: Modules, source: str, config: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_with(module_dir, source, config)
    return str(info.value)


ASYNCIO_CLASS = "import asyncio\nclass P(asyncio.Protocol):\n    pass\n"


def test_a_missing_module_names_it_and_the_directive_position(
    module_dir: Modules,
) -> None:
    message = error(module_dir, "", "server {\n    port 7008\n    protocol nosuchmodule_x:P\n}\n")
    first = message.splitlines()[0]
    assert first.startswith(f"{module_dir.folder / 'test.conf'}:3:14: ")
    assert 'no module named "nosuchmodule_x"' in first
    assert str(module_dir.folder) in first  # where it looked


def test_a_missing_class_is_an_error_with_a_suggestion(module_dir: Modules) -> None:
    message = error(
        module_dir,
        ASYNCIO_CLASS + "class Upper(P):\n    pass\n",
        "server { port 1; protocol MOD:Uper }",
    )
    assert ":1:27: " in message
    assert '"Uper" not found in' in message and 'did you mean "Upper"?' in message


def test_a_module_that_fails_to_import_says_why(module_dir: Modules) -> None:
    message = error(module_dir, "raise RuntimeError('boom')\n", "server { port 1; protocol MOD:P }")
    assert "failed: RuntimeError: boom" in message
    message = error(module_dir, "import nosuchdep_y\n", "server { port 1; protocol MOD:P }")
    assert "failed: No module named 'nosuchdep_y'" in message


def test_a_class_that_needs_arguments_is_an_error(module_dir: Modules) -> None:
    source = ASYNCIO_CLASS + "class Q(P):\n    def __init__(self, x):\n        pass\n"
    message = error(module_dir, source, "server { port 1; protocol MOD:Q }")
    assert "callable with no arguments" in message and "'x'" in message


def test_a_function_or_a_class_without_protocol_methods_is_an_error(
    module_dir: Modules,
) -> None:
    message = error(module_dir, "def f():\n    pass\n", "server { port 1; protocol MOD:f }")
    assert '"f" is a function, not a class' in message
    message = error(module_dir, "class C:\n    pass\n", "server { port 1; protocol MOD:C }")
    assert "has no connection_made, data_received" in message
    assert "subclass localhost.Protocol or asyncio.Protocol" in message


def test_an_unknown_protocol_name_is_an_error(module_dir: Modules) -> None:
    for value in ("smtp", "a:", ":B", "a b:C", "./x:C"):
        message = error(module_dir, "", f'server {{ port 1; protocol "{value}" }}')
        assert "unknown protocol" in message and "http, echo or MODULE:CLASS" in message


def test_http_directives_in_a_non_http_block_are_errors(module_dir: Modules) -> None:
    message = error(
        module_dir,
        "",
        "server {\n port 7007\n protocol echo\n server_name x\n root .\n}\n",
    )
    first = message.splitlines()[0]
    assert ":4:2: " in first  # the first offender, in file order
    assert '"server_name" directive is not allowed' in first
    assert '"protocol echo" (line 3)' in first and "HTTP only" in first
    message = error(module_dir, "", "server {\n location / {\n }\n port 1\n protocol echo\n}\n")
    assert ':2:2: "location" block is not allowed' in message


def test_a_listen_address_speaks_one_protocol(module_dir: Modules) -> None:
    message = error(
        module_dir,
        "",
        "server {\n port 7007\n root .\n}\nserver {\n port 7008 7007\n protocol echo\n}\n",
    )
    lines = message.splitlines()
    assert ":7:2: server blocks on 0.0.0.0:7007 disagree on the protocol" in lines[0]
    assert '"echo" here, HTTP at line 2' in lines[0]
    assert any(":2:7: note:" in line for line in lines)  # the other block's port
    message = error(
        module_dir,
        "",
        "server { port 7007; protocol echo }\nserver { port 7007; protocol echo }\n",
    )
    assert ":2:21: a second server block" in message and "(first at line 1)" in message


def test_http_and_echo_on_two_ports_of_one_config(module_dir: Modules) -> None:
    config = load_with(
        module_dir,
        ASYNCIO_CLASS,
        "server { host 127.0.0.1; port 8080; root . }\n"
        "server { host 127.0.0.1; port 7007; protocol echo }\n"
        "server { host 0.0.0.0; port 7007; protocol MOD:P }\n",
    )
    assert [s.protocol for s in config.servers] == [None, "echo", f"{module_dir.name}:P"]


def test_protocol_is_a_server_directive(module_dir: Modules) -> None:
    message = error(module_dir, "", "protocol echo\nserver { port 1 }\n")
    assert '"protocol" directive is not allowed in the top level' in message


def test_the_examples_load(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parent.parent.parent / "examples"
    path = list(sys.path)
    try:
        echo = localhost.config.load(examples / "echo.conf")
        assert [s.protocol for s in echo.servers] == ["echo", None]
        upper = localhost.config.load(examples / "upper.conf")
        assert [s.protocol for s in upper.servers] == ["upper:Upper", "greet:Greet"]
    finally:
        sys.path[:] = path
