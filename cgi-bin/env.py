#!/usr/bin/env python3
"""CGI demo: the meta-variables this script was given (RFC 3875 §4.1), as HTML."""

import html
import os

rows = "".join(
    f"<tr><th>{html.escape(name)}</th><td><code>{html.escape(value)}</code></td></tr>\n"
    for name, value in sorted(os.environ.items())
)
print("Content-Type: text/html; charset=utf-8")
print()
print(
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>CGI environment</title>'
    '<link rel="stylesheet" href="/style.css"></head><body><main><h1>CGI environment</h1>'
    f"<table>{rows}</table></main></body></html>"
)
