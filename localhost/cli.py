"""The command line: ``python -m localhost [options] [CONFIG | MODULE:APP]``.

``-t`` checks the configuration (like ``nginx -t``); ``-s SIGNAL`` sends
reload/quit/stop/reopen to the running server through its pid file (like
``nginx -s``); ``-w N`` overrides ``worker_processes``.

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
from dataclasses import replace
from pathlib import Path

from localhost import __version__
from localhost.accesslog import LEVELS, flush_error_log, setup_error_log
from localhost.config import Config, ConfigError, load
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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="localhost", description="A single-threaded, non-blocking HTTP/1.1 server."
    )
    parser.add_argument(
        "config",
        nargs="?",
        default="config.conf",
        help="configuration file (default: ./config.conf), or MODULE:APP to serve a "
        "localhost.App or a WSGI application",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="with MODULE:APP: the address (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="with MODULE:APP: the port (default 8080)"
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
    if _is_app_target(args.config):
        return _serve_app(args)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    if args.signal:
        return _send_signal(config, args.signal)
    if args.test:
        # Warnings do not fail the check (the server would start), as with nginx -t.
        for warning in config.warnings:
            print(f"localhost: {warning}", file=sys.stderr)
        print(f"{args.config}: syntax is ok")
        return 0
    level = args.log_level or ("error" if args.quiet else config.error_log_level)
    return run_config(config, args.workers or config.worker_processes, bool(args.workers), level)


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
    for host, port in server.sockets:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on http://%s/", shown)
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
    if isinstance(found, App):
        if args.test:
            print(f"{args.config}: the App imports")
            return 0
        # None: an App.from_config keeps its file's worker_processes and error_log level.
        own_level = args.log_level or ("error" if args.quiet else None)
        return found.serve(args.host, args.port, args.workers, own_level, not args.no_access_log)
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
        args.host,
        args.port,
        args.workers or 1,
        level,
        not args.no_access_log,
    )


if __name__ == "__main__":
    sys.exit(main())
