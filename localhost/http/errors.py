"""The one error type of the HTTP layer."""

from __future__ import annotations


class HTTPError(Exception):
    """A request that must be answered with ``status`` (a 4xx or 5xx code).

    Raised by the parser (malformed input: RFC 9112) and by handlers;
    ``detail`` is for the error log, never sent to the client; ``headers``
    are fields the response must carry (e.g. ``Allow`` with 405).
    """

    def __init__(
        self, status: int, detail: str = "", headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.detail = detail
        self.headers = headers
