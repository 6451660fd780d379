"""Per-worker state: one ``Services`` object, made after fork, closed at exit.

It holds what handlers share across requests, so that no handler module keeps
mutable state of its own: the open-file cache of static files, the configured
error pages and the listing header fragments read (``SmallFiles``), the CGI
process pool (running scripts and the queue waiting for a slot), the Python
applications with their thread pools (imported here, after the fork), the
session store (opened on first use) and the access logs. ``reload`` keeps what a new
configuration can reuse (open logs; the session store unless its path
changed) and forgets what depended on the old one (cached files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localhost.accesslog import AccessLogs
from localhost.app.wsgi import Applications
from localhost.handlers.cgi import CGIPool
from localhost.handlers.smallfiles import SmallFiles
from localhost.handlers.static import FileCache
from localhost.limits import LIMITS, Limits
from localhost.sessions import Store, open_store
from localhost.upstream import Upstreams

if TYPE_CHECKING:
    from localhost.config.model import Config
    from localhost.io.loop import EventLoop


class Services:
    """The worker's shared state for ``config`` on ``loop``, with ``limits``."""

    __slots__ = (
        "config",
        "loop",
        "limits",
        "files",
        "error_pages",
        "listing_headers",
        "cgi",
        "access_logs",
        "applications",
        "upstreams",
        "_sessions",
    )

    def __init__(self, config: Config, loop: EventLoop, limits: Limits = LIMITS) -> None:
        self.config = config
        self.loop = loop
        self.limits = limits
        self.files = FileCache(limits)
        #: Configured ``error_page`` files read, by path.
        self.error_pages = SmallFiles(limits.error_page_max_bytes)
        #: Directory listings' ``.header.html`` fragments read, by path.
        self.listing_headers = SmallFiles(limits.listing_header_max_bytes)
        self.cgi = CGIPool(limits)
        self.access_logs = AccessLogs()
        #: Balancer state and keep-alive pools of the ``upstream`` groups (proxy_pass).
        self.upstreams = Upstreams()
        self._sessions: Store | None = None
        #: The configuration's applications (``wsgi``, ``app``), imported now.
        self.applications = Applications()
        self.applications.load(config, config.worker_processes)

    def session_store(self) -> Store:
        """The session store of the configuration, opened on first use."""
        if self._sessions is None:
            self._sessions = open_store(self.config.session_store, self.config.session_timeout)
        return self._sessions

    def reload(self, config: Config) -> None:
        """Serve ``config`` from now on: forget cached files; a session store at
        another path is closed (the new one opens on first use)."""
        if self._sessions is not None and (
            config.session_store != self.config.session_store
            or config.session_timeout != self.config.session_timeout
        ):
            self._sessions.close()
            self._sessions = None
        self.config = config
        self.files.clear()
        self.error_pages.clear()
        self.listing_headers.clear()
        self.upstreams.close()  # pooled connections to the old configuration's servers
        # In place (one process): the modules are executed anew.
        self.applications.load(config, config.worker_processes, fresh=True)

    def close(self) -> None:
        """Release everything: cached descriptors, the session store, the logs
        (flushed). Running CGI scripts belong to their requests, which the
        worker aborts before this."""
        self.files.clear()
        self.error_pages.clear()
        self.listing_headers.clear()
        if self._sessions is not None:
            self._sessions.close()
            self._sessions = None
        self.upstreams.close()
        self.applications.close(self.limits.app_shutdown_wait_seconds)
        self.access_logs.close()
