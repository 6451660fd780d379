"""The event loop, listeners, connections and the worker."""
