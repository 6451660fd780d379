#!/usr/bin/env python3
"""A CGI "hello" script (run by the CGI handler)."""
print("Content-Type: text/plain; charset=utf-8")
print()
print("Hello from CGI")
