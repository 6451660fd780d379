"""The Flask "hello" of the applications benchmark: a 1 KiB text body at ``/``.

The same Flask application under localhost (``wsgi flask_hello:app``),
gunicorn and waitress, so that the rows compare the servers around one
framework.
"""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)
BODY = b"x" * 1024


@app.get("/")
def hello() -> Response:
    """``200`` with ``BODY`` (1024 bytes of ``text/plain``)."""
    return Response(BODY, mimetype="text/plain")
