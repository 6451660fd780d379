"""localhost: a single-threaded, non-blocking HTTP/1.1 server on select.epoll."""

__version__ = "0.1.0"
SERVER_SOFTWARE = f"localhost/{__version__}"

from typing import TYPE_CHECKING  # noqa: E402

from localhost.io.protocol import Protocol  # noqa: E402 - after the names it may import

if TYPE_CHECKING:
    from localhost.app.api import Action, App, Request, Response

# The App API, imported on first use: ``from localhost import App`` should not
# load the server's modules for a program that only needs ``Protocol``.
_APP_NAMES = frozenset({"Action", "App", "Request", "Response"})


def __getattr__(name: str) -> object:
    if name in _APP_NAMES:
        from localhost.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'localhost' has no attribute {name!r}")


__all__ = ["SERVER_SOFTWARE", "Action", "App", "Protocol", "Request", "Response", "__version__"]
