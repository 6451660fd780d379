"""``protocol MODULE:CLASS`` on a real server: a user's classes from the config folder or
PYTHONPATH, an asyncio.Protocol, failures that close one connection only, start-up errors,
and the examples."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, Server, read_all, recv_until, run_cli
from tests.proc import wait_for

MODULE = '''
import asyncio

import localhost


class Upper(localhost.Protocol):
    def data_received(self, data):
        self.transport.write(bytes(data).upper())


class Fragile(localhost.Protocol):
    """Upper-cases, but raises on "boom"."""

    def data_received(self, data):
        if b"boom" in data:
            raise ValueError("boom requested")
        self.transport.write(bytes(data).upper())


class Peer(asyncio.Protocol):
    """A plain asyncio protocol: names the peer, echoes lines, closes on "bye"."""

    def connection_made(self, transport):
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        local = transport.get_extra_info("sockname")[1]
        transport.write(f"peer {host}:{port} local {local}\\n".encode())

    def data_received(self, data):
        if data.strip() == b"bye":
            self.transport.write(b"bye\\n")
            self.transport.close()
        else:
            self.transport.write(data)


class Unbuildable(asyncio.Protocol):
    calls = 0

    def __init__(self):
        Unbuildable.calls += 1
        if Unbuildable.calls == 1:
            raise RuntimeError("first one fails")
'''


def serve(
    server_factory: Callable[..., Server],
    tmp_path: Path,
    classes: list[str],
    module: str = "userproto",
    env: dict[str, str] | None = None,
) -> Server:
    (tmp_path / f"{module}.py").write_text(MODULE)
    blocks = "".join(
        f"server {{ host 127.0.0.1; port {{port{i}}}; protocol {module}:{name} }}\n"
        for i, name in enumerate(classes)
    )
    return server_factory(blocks, nports=len(classes), env=env)


def test_a_user_protocol_class_from_the_config_folder(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(server_factory, tmp_path, ["Upper"])
    with server.connect() as sock:
        sock.sendall(b"hello, world\n")
        assert recv_until(sock, b"\n") == b"HELLO, WORLD\n"


def test_a_plain_asyncio_protocol(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(server_factory, tmp_path, ["Peer"])
    with server.connect() as sock:
        greeting = recv_until(sock, b"\n")
        port = sock.getsockname()[1]
        assert greeting == f"peer 127.0.0.1:{port} local {server.port}\n".encode()
        sock.sendall(b"abc\n")
        assert recv_until(sock, b"abc\n") == b"abc\n"
        sock.sendall(b"bye\n")
        assert read_all(sock) == b"bye\n"  # then the server closed


def test_an_exception_in_data_received_closes_only_that_connection(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(server_factory, tmp_path, ["Fragile"])
    with server.connect() as calm, server.connect() as doomed:
        calm.sendall(b"one\n")
        assert recv_until(calm, b"\n") == b"ONE\n"
        doomed.sendall(b"boom\n")
        assert read_all(doomed) == b""  # closed, nothing sent
        calm.sendall(b"two\n")
        assert recv_until(calm, b"\n") == b"TWO\n"
    with server.connect() as fresh:
        fresh.sendall(b"three\n")
        assert recv_until(fresh, b"\n") == b"THREE\n"
    assert wait_for(lambda: "boom requested" in server.log())
    assert "data_received failed" in server.log()
    assert server.process.poll() is None


def test_a_constructor_that_raises_closes_only_that_connection(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(server_factory, tmp_path, ["Unbuildable"])
    # The readiness probe of start_server made the first, failing, connection.
    assert wait_for(lambda: "first one fails" in server.log())
    with server.connect() as sock:
        sock.sendall(b"anything")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b""  # asyncio.Protocol's defaults: read, then close
    assert server.process.poll() is None


def test_a_module_on_pythonpath(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    elsewhere = tmp_path / "lib"
    elsewhere.mkdir()
    (elsewhere / "libproto.py").write_text(MODULE)
    config = "server { host 127.0.0.1; port {port0}; protocol libproto:Upper }\n"
    server = server_factory(config, env={"PYTHONPATH": f"{REPO}:{elsewhere}"})
    with server.connect() as sock:
        sock.sendall(b"path\n")
        assert recv_until(sock, b"\n") == b"PATH\n"


def test_a_missing_module_stops_the_server_with_the_directive_position(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "site.conf"
    conf.write_text("server {\n    port 7007\n    protocol nosuchmodule:Upper\n}\n")
    result = run_cli([str(conf)], timeout=20)
    assert result.returncode == 1
    assert f"{conf}:3:14: " in result.stderr
    assert 'no module named "nosuchmodule"' in result.stderr


def test_a_missing_class_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "userproto.py").write_text(MODULE)
    conf = tmp_path / "site.conf"
    conf.write_text("server {\n    port 7007\n    protocol userproto:Lower\n}\n")
    result = run_cli([str(conf)], timeout=20)
    assert result.returncode == 1
    assert f"{conf}:3:14: " in result.stderr
    assert '"Lower" not found' in result.stderr


def test_the_examples_run(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    examples = REPO / "examples"
    for name in ("upper.py", "greet.py"):
        shutil.copy(examples / name, tmp_path / name)
    text = (examples / "upper.conf").read_text()
    server = server_factory(text.replace("7008", "{port0}").replace("7009", "{port1}"), nports=2)
    with server.connect() as sock:
        sock.sendall(b"shout\nthis")
        assert recv_until(sock, b"\n") == b"SHOUT\n"
    with server.connect(server.ports[1]) as sock:
        assert recv_until(sock, b"\n").startswith(b"hello 127.0.0.1:")
        sock.sendall(b"hi\nbye\n")
        assert read_all(sock) == b"you said: hi\nbye\n"
