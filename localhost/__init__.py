"""localhost: a single-threaded, non-blocking HTTP/1.1 server on select.epoll."""

__version__ = "0.1.0"
SERVER_SOFTWARE = f"localhost/{__version__}"

from localhost.io.protocol import Protocol  # noqa: E402 - after the names it may import

__all__ = ["SERVER_SOFTWARE", "Protocol", "__version__"]
