#!/usr/bin/env python3
"""CGI demo: the meta-variables this script was given (RFC 3875 §4.1), as HTML."""

import html
import os
from pathlib import Path

# The demo site's header (navigation bar), shared with its listings.
HEADER = Path(__file__).resolve().parent.parent / "www" / ".header.html"


def header() -> str:
    try:
        return HEADER.read_text(encoding="utf-8")
    except OSError:
        return '<header><nav><a href="/">localhost</a></nav></header>\n'


rows = "".join(
    f'<tr><th scope="row">{html.escape(name)}</th><td><code>{html.escape(value)}</code></td></tr>\n'
    for name, value in sorted(os.environ.items())
)
print("Content-Type: text/html; charset=utf-8")
print()
print(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CGI environment — localhost</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/style.css">
</head>
<body>
{header()}<main>
<h1>CGI environment</h1>
<p>The meta-variables of RFC 3875 this script was run with. Try
<a href="/cgi-bin/env.py/extra/path?x=1">a path and a query</a>.</p>
<table class="env">
<thead><tr><th scope="col">Variable</th><th scope="col">Value</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</main>
</body>
</html>""")
