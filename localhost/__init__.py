"""localhost: a single-threaded, non-blocking HTTP/1.1 server on select.epoll."""

__version__ = "0.1.0"
SERVER_SOFTWARE = f"localhost/{__version__}"
