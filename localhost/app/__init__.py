"""Python applications: WSGI (PEP 3333) from the configuration, and the App API."""

# The registry first: it imports this package's handler modules, which need
# ``localhost.handlers.base`` complete (whichever module is imported first).
import localhost.handlers  # noqa: F401
