"""HTTP/1.1 protocol code: sans-IO parser, messages and errors."""
