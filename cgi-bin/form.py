#!/usr/bin/env python3
"""CGI demo: echo a form sent by GET (query), POST urlencoded or POST multipart."""

import email.parser
import email.policy
import html
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl

# The demo site's header (navigation bar), shared with its listings.
HEADER = Path(__file__).resolve().parent.parent / "www" / ".header.html"


def header() -> str:
    try:
        return HEADER.read_text(encoding="utf-8")
    except OSError:
        return '<header><nav><a href="/">localhost</a></nav></header>\n'


method = os.environ.get("REQUEST_METHOD", "GET")
content_type = os.environ.get("CONTENT_TYPE", "")
fields: list[tuple[str, str]] = []
if method == "POST":
    body = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition") or "?"
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename:
                fields.append((name, f"file {filename!r}, {len(payload)} bytes"))
            else:
                fields.append((name, payload.decode("utf-8", "replace")))
    else:
        fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
else:
    fields = parse_qsl(os.environ.get("QUERY_STRING", ""), keep_blank_values=True)

rows = "".join(
    f'<tr><th scope="row">{html.escape(name)}</th><td>{html.escape(value)}</td></tr>\n'
    for name, value in fields
)
print("Content-Type: text/html; charset=utf-8")
print()
print(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Form echo — localhost</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/style.css">
</head>
<body>
{header()}<main>
<h1>Form echo ({html.escape(method)})</h1>
<table>
<thead><tr><th scope="col">Field</th><th scope="col">Value</th></tr></thead>
<tbody>
{rows or '<tr><td colspan="2">No fields.</td></tr>'}
</tbody>
</table>
<div class="card"><h2>GET</h2><form method="get">
<label for="get-name">Name</label><input id="get-name" name="name" value="Ada">
<button type="submit">Send</button></form></div>
<div class="card"><h2>POST (urlencoded)</h2><form method="post">
<label for="post-colour">Colour</label><input id="post-colour" name="colour" value="blue">
<button type="submit">Send</button></form></div>
<div class="card"><h2>POST (multipart)</h2><form method="post" enctype="multipart/form-data">
<label for="multi-note">Note</label><input id="multi-note" name="note" value="hello">
<label for="multi-file">File</label><input id="multi-file" type="file" name="file">
<p><button type="submit">Send</button></p></form></div>
</main>
</body>
</html>""")
