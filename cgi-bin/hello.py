#!/usr/bin/env python3
"""CGI demo: the smallest document response."""

print("Content-Type: text/plain; charset=utf-8")
print()
print("Hello from CGI")
