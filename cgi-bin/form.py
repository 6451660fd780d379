#!/usr/bin/env python3
"""CGI demo: echo a form sent by GET (query), POST urlencoded or POST multipart."""

import email.parser
import email.policy
import html
import os
import sys
from urllib.parse import parse_qsl

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
    f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>\n"
    for name, value in fields
)
print("Content-Type: text/html; charset=utf-8")
print()
print(f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Form echo</title>
<link rel="stylesheet" href="/style.css"></head><body><main>
<h1>Form echo ({html.escape(method)})</h1>
<table>{rows or "<tr><td>No fields.</td></tr>"}</table>
<div class="card"><h2>GET</h2><form method="get"><input name="name" value="Ada">
<button>Send</button></form></div>
<div class="card"><h2>POST (urlencoded)</h2><form method="post"><input name="colour" value="blue">
<button>Send</button></form></div>
<div class="card"><h2>POST (multipart)</h2><form method="post" enctype="multipart/form-data">
<input name="note" value="hello"> <input type="file" name="file"> <button>Send</button></form></div>
</main></body></html>""")
