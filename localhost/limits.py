"""Every tunable of a worker in one place, with its unit.

``Limits`` is a frozen dataclass; ``LIMITS`` is the instance the server runs
with. Field names end in their unit where it is not a count: ``_bytes``,
``_seconds``. Configuration directives (``body_limit``, the timeouts, ...)
are not here: they live in ``localhost.config.model``; these are the
settings the configuration does not expose.

The transport's constants are its own: ``localhost.io`` imports nothing
outside ``io/``, so it does not read this object. They are, in
``io/transport.py``: ``RECV_SIZE`` (64 KiB read per event),
``SENDFILE_CHUNK`` (8 MiB of a file per event), ``FILE_CHUNK`` (64 KiB per
pread when a transport cannot sendfile), ``LINGER_TIMEOUT`` (5 s draining a
half-closed socket), ``HIGH_WATER``/``LOW_WATER`` (256/64 KiB, the default
write-buffer marks); in ``io/loop.py``: ``_COMPACT_AFTER`` (256 cancelled
timers before the timer heap is rebuilt). The fields of the "connections"
group below state the same values for the server's side (the worker's
receive buffer, the exchange's high watermark); a unit test keeps the two
equal.
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
    max_rewrites: int = 10  # rewrites and internal redirects of one request, then 500 (NGINX)
    body_spool_memory_bytes: int = 64 * KiB  # of a SPOOLed body kept in memory, then a file

    # -- worker process ---------------------------------------------------------
    shutdown_grace_seconds: float = 5.0  # for responses in flight after SIGTERM/SIGINT
    idle_grace_seconds: float = 1.0  # an idle keep-alive connection stays open once stopping
    accept_pause_seconds: float = 0.5  # without accepting after EMFILE/ENFILE
    flush_every_seconds: float = 1.0  # between writes of the buffered logs
    heartbeat_every_seconds: float = 1.0  # between two heartbeats to the master
    parent_check_every_seconds: float = 0.5  # between a worker's checks that its master lives
    timer_slack_seconds: float = 0.005  # a connection timer this early is due (loop clock)
    listen_backlog: int = 511  # connections the kernel queues before accept (NGINX's default)

    # -- master process ---------------------------------------------------------
    quick_death_seconds: float = 1.0  # a worker dying sooner after its start: a failed start
    max_quick_deaths: int = 5  # failed starts in a row (with growing delays) before giving up
    master_tick_seconds: float = 0.1  # between looks at the workers when no signal comes

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
    cgi_max_header_bytes: int = 64 * KiB  # of a script's header section; more: 502
    env_key_cache_entries: int = 512  # field name → HTTP_* name kept (CGI and WSGI environs)

    # -- Python applications (app/) ---------------------------------------------
    # Bytes an application thread may have produced that the connection has not
    # taken yet before the thread waits (the slow-client bound of a streamed body).
    app_stream_window_bytes: int = 256 * KiB
    app_body_window_bytes: int = 256 * KiB  # of a request body not yet read: pause the client
    app_import_check_seconds: float = 60.0  # the master's check that an application imports
    app_shutdown_wait_seconds: float = 1.0  # for application threads at a worker's exit

    # -- access (modules/access.py) ---------------------------------------------
    auth_file_check_seconds: float = 1.0  # between looks at an auth_basic_user_file
    auth_file_racy_seconds: float = 2.0  # a user file changed this recently is read again
    auth_verified_cache_entries: int = 256  # successful slow password checks kept per user file
    auth_bcrypt_warn_cost: int = 12  # bcrypt cost from which loading warns (checks block the loop)

    # -- rate limits (modules/ratelimit.py) -------------------------------------
    ratelimit_probe_slots: int = 16  # slots a limit key may take in its zone's table

    # -- uploads (handlers/upload.py) -------------------------------------------
    upload_max_files: int = 100  # file parts in one request
    upload_max_part_header_bytes: int = 8 * KiB  # one part's header section
    upload_max_name_bytes: int = 255  # a stored file name in UTF-8 (the usual file-system limit)
    upload_max_suffix: int = 10000  # name-1 ... name-9999 tried for a taken name; then 409
    upload_max_notice: int = 20  # stored names listed in the result page's ?uploaded= query

    # -- WebSocket (server/websocket.py, app/websocket.py) ----------------------
    websocket_high_water_bytes: int = 256 * KiB  # queued for a client: send() says False
    websocket_low_water_bytes: int = 64 * KiB  # queued when on_writable is called
    websocket_hard_limit_bytes: int = 16 * MiB  # queued for a client that does not read: dropped
    websocket_close_periods: int = 12  # closing deadlines a client still reading gets in all
    websocket_queue_messages: int = 64  # waiting for a threaded endpoint: stop reading the client

    # -- HTTP/2 (server/http2.py) ------------------------------------------------
    http2_window_bytes: int = (
        1 * MiB
    )  # flow-control window granted per stream (and 4x per connection)
    http2_flood_frames: int = 200  # RST_STREAM, PING or SETTINGS from a client per second
    http2_header_block_cache: int = 64  # encoded response header blocks kept per connection
    http2_request_cache: int = 16  # request header blocks and lists, decoded, per connection

    # -- error pages and listings (handlers/error_pages.py, handlers/autoindex.py)
    error_page_max_bytes: int = 1 * MiB  # of a configured error page read; larger: built-in
    listing_header_max_bytes: int = 64 * KiB  # of a listing's .header.html; larger: ignored


#: The limits the server runs with.
LIMITS = Limits()
