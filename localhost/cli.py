"""The command line: ``python -m localhost [options] [CONFIG | MODULE:APP]``.

``-t`` checks the configuration (like ``nginx -t``); ``-T`` checks it and
prints the effective configuration (like ``nginx -T``); ``-s SIGNAL`` sends
reload/quit/stop/reopen to the running server through its pid file (like
``nginx -s``); ``-w N`` overrides ``worker_processes``.

``--root DIR`` without a configuration file serves DIR on ``--host``/``--port``
(127.0.0.1:8080), like ``python -m http.server``. With a file, ``--host``,
``--port``, ``--root``, ``--listing`` and ``--timeout-ms`` override its values
in every server block (``localhost.config.loader.Overrides``), and keep doing
so across reloads; ``--max-header-size`` sets the request head limit either way.

``MODULE:APP`` instead of a configuration file serves a ``localhost.App``
(or a WSGI callable) on ``--host``/``--port`` (127.0.0.1:8080), the module
imported from the current directory and ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from localhost import __version__
from localhost.accesslog import LEVELS, flush_error_log, setup_error_log
from localhost.config import Config, ConfigError, load
from localhost.config.loader import Overrides, Trace, explain, explains, loads
from localhost.http import parser as request_parser
from localhost.io.tls import probe_ktls
from localhost.routing import Router
from localhost.server.listener import ListenError
from localhost.server.master import Master
from localhost.server.worker import Worker

log = logging.getLogger("localhost")

SIGNALS = {
    "reload": signal.SIGHUP,
    "quit": signal.SIGQUIT,
    "stop": signal.SIGTERM,
    "reopen": signal.SIGUSR1,
}

DEFAULT_HOST = "127.0.0.1"  # without a configuration file (--root, MODULE:APP)
DEFAULT_PORT = 8080
DEFAULT_CONFIG = "config.conf"

#: The configuration served by ``--root DIR`` without a file: one server
#: block, whose address, root and the rest come from the flags (``Overrides``).
NO_FILE_CONFIG = "server {\n    port 8080\n}\n"

#: --max-header-size bounds (bytes): a head smaller than the first cannot hold
#: a browser's request; the second is 64 times the default.
MIN_HEADER_SIZE = 256
MAX_HEADER_SIZE = 1024 * 1024


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="localhost", description="A single-threaded, non-blocking HTTP/1.1 server."
    )
    parser.add_argument(
        "config",
        nargs="?",
        help="configuration file (default: ./config.conf, unless --root is given), or "
        "MODULE:APP to serve a localhost.App or a WSGI application",
    )
    parser.add_argument(
        "--host",
        help="the address to listen on with --root or MODULE:APP (default 127.0.0.1); with "
        "a file, replaces every server block's address",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="the port to listen on with --root or MODULE:APP (default 8080); with a file, "
        "replaces every server block's ports",
    )
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="serve DIR (without a file: the whole configuration; with one: every "
        "server block's root)",
    )
    parser.add_argument("--listing", action="store_true", help="list folders without an index file")
    parser.add_argument(
        "--timeout-ms",
        type=_milliseconds,
        metavar="MS",
        help="client header, client body, keep-alive and send timeouts, in milliseconds",
    )
    parser.add_argument(
        "--max-header-size",
        type=_header_size,
        metavar="BYTES",
        help="the largest request header section (431 beyond; default 16k), and request "
        "line when smaller than 8k (414 beyond)",
    )
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="with MODULE:APP: no access log (by default one line per request on stdout)",
    )
    parser.add_argument(
        "-t", "--test", action="store_true", help="check the configuration file and exit"
    )
    parser.add_argument(
        "-T",
        "--dump",
        action="store_true",
        help="check the configuration file, print the effective configuration and exit",
    )
    parser.add_argument(
        "-s",
        "--signal",
        choices=sorted(SIGNALS),
        help="send a signal to the running server named by the pid file, and exit",
    )
    parser.add_argument(
        "-w", "--workers", type=_positive, help="worker processes (overrides worker_processes)"
    )
    parser.add_argument(
        "--log-level", choices=sorted(LEVELS), help="error log level (overrides error_log)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    parser.add_argument("--version", action="version", version=f"localhost {__version__}")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError("expected a number from 1 to 1024, or auto")
    return int(text)


def _milliseconds(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 86_400_000:
        raise argparse.ArgumentTypeError("expected milliseconds from 1 to 86400000 (a day)")
    return int(text)


def _header_size(text: str) -> int:
    """BYTES, or a number with k or m (as the configuration's sizes)."""
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 9:
        raise argparse.ArgumentTypeError("expected bytes, or a number with k or m")
    size = int(digits) * scale
    if not MIN_HEADER_SIZE <= size <= MAX_HEADER_SIZE:
        raise argparse.ArgumentTypeError(
            f"expected {MIN_HEADER_SIZE} bytes to {MAX_HEADER_SIZE // 1024 // 1024}m"
        )
    return size


def _limit_head(size: int) -> None:
    """Make ``size`` bytes the request head limit of this process and the
    workers it forks: the header section (431 beyond) and, when smaller than
    the default, the request line (414 beyond).

    The parser reads its limits as module constants at each head, so the
    command line sets them once, before any worker starts (a reload keeps
    them: the flag belongs to the process, not to the file).
    """
    request_parser.MAX_FIELD_SECTION = size
    request_parser.MAX_REQUEST_LINE = min(size, _DEFAULT_REQUEST_LINE)


_DEFAULT_REQUEST_LINE = request_parser.MAX_REQUEST_LINE


def _send_signal(config: Config, name: str) -> int:
    if config.pid is None:
        print(
            f"localhost: {config.path} has no pid directive: cannot find the server",
            file=sys.stderr,
        )
        return 1
    try:
        text = config.pid.read_text().strip()
    except OSError as exc:
        print(f"localhost: cannot read {config.pid}: {exc.strerror}", file=sys.stderr)
        return 1
    if not text.isdigit() or int(text) < 1:
        print(f"localhost: {config.pid} holds no process id ({text[:40]!r})", file=sys.stderr)
        return 1
    pid = int(text)
    try:
        os.kill(pid, SIGNALS[name])
    except ProcessLookupError:
        print(
            f"localhost: no process {pid} (from {config.pid}): is the server running?",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(
            f"localhost: cannot signal process {pid} (from {config.pid}): {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


def _write_pid(path: Path | None) -> None:
    """Write our PID atomically (a new file renamed over the old), so that
    ``-s`` never reads a pid file that exists but is still empty."""
    if path is not None:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(f"{os.getpid()}\n")
        os.replace(partial, path)


def _remove_pid(path: Path | None) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit status (0 ok, 1 bad config, listen error or failure)."""
    args = _arguments(argv)
    if args.config is not None and _is_app_target(args.config):
        return _serve_app(args)
    if args.max_header_size is not None:
        _limit_head(args.max_header_size)
    name, build, describe = _configuration(args)
    try:
        if args.dump:
            config, trace = describe()
        else:
            config = build()
    except ConfigError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    if args.signal:
        return _send_signal(config, args.signal)
    if args.test or args.dump:
        # Warnings do not fail the check (the server would start), as with nginx -t.
        for warning in config.warnings:
            print(f"localhost: {warning}", file=sys.stderr)
        if args.dump:
            from localhost.config.effective import render

            print(f"{name}: syntax is ok", file=sys.stderr)
            sys.stdout.write(render(config, trace))
        else:
            print(f"{name}: syntax is ok")
        return 0
    level = args.log_level or ("error" if args.quiet else config.error_log_level)
    return run_config(config, args.workers or config.worker_processes, bool(args.workers), level)


def _configuration(
    args: argparse.Namespace,
) -> tuple[str, Callable[[], Config], Callable[[], tuple[Config, Trace]]]:
    """What to serve: its name for messages, how to build the ``Config``
    (again at each reload), and how to build it with ``-T``'s trace.

    With a file: the file, with the flags' ``Overrides``. With ``--root``
    and no file: ``NO_FILE_CONFIG`` with the flags (127.0.0.1:8080 unless
    ``--host``/``--port``), named after no file, as ``MODULE:APP`` is.
    """
    overrides = Overrides(
        host=args.host,
        port=args.port,
        root=args.root,
        listing=args.listing,
        timeout_ms=args.timeout_ms,
    )
    if args.config is None and args.root is not None:
        overrides = replace(
            overrides,
            host=DEFAULT_HOST if args.host is None else args.host,
            port=DEFAULT_PORT if args.port is None else args.port,
        )
        path = Path.cwd() / "<command line>"

        def build() -> Config:
            return replace(loads(NO_FILE_CONFIG, path, overrides), rebuild=build)

        def describe() -> tuple[Config, Trace]:
            config, trace = explains(NO_FILE_CONFIG, path, overrides)
            trace.sources = []  # no file to show
            return config, trace

        return "command line", build, describe
    name = args.config or DEFAULT_CONFIG
    if overrides == Overrides():
        # A reload reads the file again (Config.rebuild None).
        return name, lambda: load(name), lambda: explain(name)

    def build_with_flags() -> Config:
        return replace(load(name, overrides), rebuild=build_with_flags)

    return name, build_with_flags, lambda: explain(name, overrides)


def run_config(config: Config, workers: int, fixed_workers: bool, level: str) -> int:
    """Serve ``config`` with ``workers`` processes until stopped; the exit status.

    ``fixed_workers``: the count came from the command line and survives reloads.
    """
    try:
        setup_error_log(config.error_log, level)
    except OSError as exc:
        print(f"localhost: cannot open the error log: {exc}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        log.warning("%s", warning)
    if workers != config.worker_processes:
        # What applications see (wsgi.multiprocess) follows the real count.
        config = replace(config, worker_processes=workers)
    server: Worker | Master = (
        Worker(config) if workers == 1 else Master(config, workers, fixed_workers)
    )
    try:
        server.listen()
    except ListenError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    secure = Router(config).tls_addresses
    for host, port in server.sockets:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on %s://%s/", "https" if (host, port) in secure else "http", shown)
    if secure:
        ktls, why = probe_ktls()
        log.info("kernel TLS: %s", "on" if ktls else f"unavailable ({why})")
    log.info(
        "serving %s with %d worker process%s (pid %d)",
        os.path.abspath(config.path),
        workers,
        "" if workers == 1 else "es",
        os.getpid(),
    )
    _write_pid(config.pid)
    status = 0
    try:
        if isinstance(server, Master):
            status = server.run()
        else:
            server.run()
    finally:
        _remove_pid(config.pid)
    log.info("stopped")
    flush_error_log()
    return status


def _is_app_target(text: str) -> bool:
    """``MODULE:ATTRIBUTE`` that is not a file's name."""
    module, colon, attribute = text.partition(":")
    return (
        bool(colon)
        and not os.path.exists(text)
        and all(part.isidentifier() for part in (*module.split("."), *attribute.split(".")))
    )


def _serve_app(args: argparse.Namespace) -> int:
    """``python -m localhost MODULE:APP``: import it from here and serve it."""
    from localhost.app.api import App
    from localhost.app.loading import AppImportError, resolve
    from localhost.app.mount import serve_wsgi

    try:
        found = resolve(args.config, (os.getcwd(),))
    except AppImportError as exc:
        print(f"localhost: {args.config}: {exc}", file=sys.stderr)
        return 1
    level = args.log_level or ("error" if args.quiet else "info")
    host = DEFAULT_HOST if args.host is None else args.host
    port = DEFAULT_PORT if args.port is None else args.port
    if isinstance(found, App):
        if args.test:
            print(f"{args.config}: the App imports")
            return 0
        # None: an App.from_config keeps its file's worker_processes and error_log level.
        own_level = args.log_level or ("error" if args.quiet else None)
        return found.serve(host, port, args.workers, own_level, not args.no_access_log)
    if not callable(found):
        print(
            f"localhost: {args.config}: {type(found).__name__} object is neither a "
            "localhost.App nor a WSGI callable",
            file=sys.stderr,
        )
        return 1
    if args.test:
        print(f"{args.config}: the WSGI application imports")
        return 0
    return serve_wsgi(
        found,
        args.config,
        host,
        port,
        args.workers or 1,
        level,
        not args.no_access_log,
    )


if __name__ == "__main__":
    sys.exit(main())
