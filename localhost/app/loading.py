"""Finding a Python application named ``MODULE:ATTRIBUTE``.

The configuration names applications (``wsgi myproject.wsgi:application``,
``app myproject.web:app``); each worker imports them after the fork, so that
no application state (database connections, threads) is shared between
workers. The master only *checks* that they import: ``check_import`` does it
in a forked child that reports back through a pipe and exits, so a module
that fails to import stops the server at start (and ``-t``) with the
directive's position, while the master itself never runs application code.
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from localhost.limits import LIMITS

#: Seconds the import check may take before it counts as hung.
IMPORT_CHECK_SECONDS = LIMITS.app_import_check_seconds


class AppImportError(Exception):
    """An application could not be found: the message says why (no position)."""


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:attr.sub"`` → ``("pkg.mod", "attr.sub")``.

    Raises ``AppImportError`` when it is not ``MODULE:ATTRIBUTE`` with dotted
    identifiers on both sides.
    """
    module, colon, attribute = target.partition(":")
    if not colon or not _dotted(module) or not _dotted(attribute):
        raise AppImportError(
            f'"{target}" is not MODULE:ATTRIBUTE (e.g. myproject.wsgi:application)'
        )
    return module, attribute


def resolve(target: str, paths: Sequence[str] = (), fresh: bool = False) -> Any:
    """Import ``target`` (``MODULE:ATTRIBUTE``) with ``paths`` first on ``sys.path``.

    ``fresh`` re-executes a module imported before (a reload in a process
    that already has it). Raises ``AppImportError`` with the reason.
    """
    module_name, attribute = split_target(target)
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        if fresh and module_name in sys.modules:
            module = importlib.reload(sys.modules[module_name])
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            searched = ", ".join(paths) or "the Python path"
            raise AppImportError(
                f'no module named "{missing}" (searched {searched} and the Python path)'
            ) from None
        raise AppImportError(f'importing "{module_name}" failed: {exc}') from None
    except (Exception, SystemExit) as exc:
        raise AppImportError(
            f'importing "{module_name}" failed: {type(exc).__name__}: {exc}'
        ) from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            where = getattr(module, "__file__", None) or module_name
            raise AppImportError(f'"{part}" not found in {where}') from None
    return found


def check_import(
    target: str,
    paths: Sequence[str],
    accept: Callable[[Any], str | None],
    timeout: float = IMPORT_CHECK_SECONDS,
) -> str | None:
    """Whether ``target`` imports and is acceptable, tried in a forked child.

    ``accept(obj)`` returns None when the object will do, else why not.
    Returns None, or the reason it failed (import error, a rejected object,
    a child that died or took more than ``timeout`` seconds).
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: import, report, exit without running any cleanup
        status = 0
        try:
            os.close(read_fd)
            try:
                problem = accept(resolve(target, paths))
            except AppImportError as exc:
                problem = str(exc)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                problem = f"{type(exc).__name__}: {exc}"
            os.write(write_fd, (problem or "").encode("utf-8", "replace")[:4000])
        except BaseException:  # noqa: BLE001 - never return into the caller's code
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks: list[bytes] = []
    poller = select.poll()  # not select(): the descriptor may be above 1023
    poller.register(read_fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                return f"importing it took more than {timeout:g} s"
            ready = poller.poll(left * 1000)
            if not ready:
                continue
            data = os.read(read_fd, 4096)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return f"the import check ended with {_exit_text(status)}"
    text = b"".join(chunks).decode("utf-8", "replace")
    return text or None


def _exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"signal {-code}"
    return f"exit status {code}"
