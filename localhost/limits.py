"""Every tunable of a worker in one place, with its unit.

``Limits`` is a frozen dataclass; ``LIMITS`` is the instance the server runs
with. Field names end in their unit where it is not a count: ``_bytes``,
``_seconds``. Configuration directives (``body_limit``, the timeouts, ...)
are not here: they live in ``localhost.config.model``; these are the
settings the configuration does not expose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    """The worker's tunables (see each field's comment for its unit and source)."""

    # -- connections (server/, io/) -------------------------------------------
    recv_size_bytes: int = 64 * KiB  # read per event
    sendfile_chunk_bytes: int = 8 * MiB  # of a file per event, so one client cannot hog the loop
    file_chunk_bytes: int = 64 * KiB  # per pread when a transport cannot sendfile
    linger_timeout_seconds: float = 5.0  # drain a half-closed socket (NGINX lingering_timeout)
    high_water_bytes: int = 256 * KiB  # queued before a producer is paused
    low_water_bytes: int = 64 * KiB  # queued when a paused producer resumes
    max_internal_redirects: int = 5  # in a row; one more answers 500 (a cycle)
    body_spool_memory_bytes: int = 64 * KiB  # of a SPOOLed body kept in memory, then a file

    # -- worker process ---------------------------------------------------------
    shutdown_grace_seconds: float = 5.0  # for responses in flight after SIGTERM/SIGINT
    idle_grace_seconds: float = 1.0  # an idle keep-alive connection stays open once stopping
    accept_pause_seconds: float = 0.5  # without accepting after EMFILE/ENFILE
    flush_every_seconds: float = 1.0  # between writes of the buffered logs
    heartbeat_every_seconds: float = 1.0  # between two heartbeats to the master

    # -- static files (handlers/static.py, services.FileCache) -----------------
    cache_entries: int = 4096  # cached (location, path) answers; full → the cache is emptied
    cache_fds: int = 256  # open descriptors the cache holds for files too large for memory
    cache_body_max_bytes: int = 64 * KiB  # a file kept in memory at most this large
    cache_body_budget_bytes: int = 32 * MiB  # all files kept in memory together

    # -- CGI (handlers/cgi.py, services.CGIPool) -------------------------------
    # Scripts one worker runs at once: each is an interpreter process (about
    # 10 MiB for Python), and past a few per core they only compete for the CPU.
    cgi_max_running: int = max(16, 4 * (os.cpu_count() or 1))
    cgi_spool_memory_bytes: int = 64 * KiB  # of a request body in memory before a temporary file
    cgi_pipe_chunk_bytes: int = 64 * KiB  # per write to a script's stdin
    cgi_max_stderr_log_bytes: int = 64 * KiB  # of a run's stderr that reach the error log

    # -- uploads (handlers/upload.py) -------------------------------------------
    upload_max_files: int = 100  # file parts in one request
    upload_max_part_header_bytes: int = 8 * KiB  # one part's header section
    upload_max_name_bytes: int = 255  # a stored file name in UTF-8 (the usual file-system limit)

    # -- error pages and listings (handlers/error_pages.py, handlers/autoindex.py)
    error_page_max_bytes: int = 1 * MiB  # of a configured error page read; larger: built-in
    listing_header_max_bytes: int = 64 * KiB  # of a listing's .header.html; larger: ignored


#: The limits the server runs with.
LIMITS = Limits()
