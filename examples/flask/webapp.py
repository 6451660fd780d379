"""A small Flask application served by localhost (``examples/flask/flask.conf``).

Run it from the repository root::

    .venv/bin/python -m localhost examples/flask/flask.conf

then open http://127.0.0.1:8082/flask/. The configuration mounts it with
``wsgi webapp:app`` below the prefix ``/flask``: localhost passes the prefix
as ``SCRIPT_NAME``, so every link ``url_for`` builds starts with it.

Routes (below the mount point):

- ``GET /``: an HTML page with links made by ``url_for``, the visit count
  kept in Flask's signed session cookie and the ``theme`` cookie;
- ``POST /greet``: a form field ``name`` (urlencoded or multipart) → text;
- ``POST /upload``: a multipart form with a file ``file`` and a field
  ``note`` → JSON with the file's name, size in bytes and SHA-256;
- ``POST /api/sum``: JSON ``{"numbers": [...]}`` → JSON ``{"count", "sum"}``;
  400 when the numbers are missing or not numbers;
- ``GET /theme/<name>``: sets the ``theme`` cookie and redirects to ``/``;
- ``GET /stream?lines=N``: N lines (default 5, at most 1000) produced by a
  generator under ``stream_with_context`` (chunked: no Content-Length);
- ``GET /files/<name>``: a file of ``FILES`` with ``send_file`` (localhost
  sends it with ``os.sendfile``; Flask answers ``Range`` and conditionals);
- ``GET /boom``: raises; Flask answers 500 and logs the traceback to
  ``wsgi.errors``, which is localhost's error log.

Environment: ``FLASK_EXAMPLE_FILES`` is the folder ``/files/`` serves
(default: ``files/`` next to this module); ``FLASK_SECRET_KEY`` signs the
session cookie. Every worker process imports the application for itself, so
the key must be the same in all of them: never a random one per import.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from flask import (
    Flask,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

app = Flask(__name__)
app.secret_key = os.environ.get("FLASK_SECRET_KEY", "example-only-not-a-secret")
FILES = Path(os.environ.get("FLASK_EXAMPLE_FILES", Path(__file__).parent / "files")).resolve()
MAX_LINES = 1000


@app.get("/")
def index() -> str:
    """The home page: links, the session's visit count, the theme cookie."""
    session["visits"] = session.get("visits", 0) + 1
    return render_template(
        "index.html", visits=session["visits"], theme=request.cookies.get("theme", "light")
    )


@app.post("/greet")
def greet() -> Response:
    """``Hello, NAME!`` for the form field ``name``; 400 without it."""
    name = request.form.get("name", "").strip()
    if not name:
        abort(400, "the form needs a name")
    return Response(f"Hello, {name}!\n", mimetype="text/plain")


@app.post("/upload")
def upload() -> Response:
    """The uploaded ``file``'s name, size and SHA-256, and the ``note`` field, as JSON.

    The file is read in 64 KiB pieces and not stored.
    """
    upload = request.files.get("file")
    if upload is None:
        abort(400, "the form needs a file")
    digest = hashlib.sha256()
    size = 0
    while piece := upload.stream.read(65536):
        digest.update(piece)
        size += len(piece)
    return jsonify(
        name=upload.filename,
        size=size,
        sha256=digest.hexdigest(),
        note=request.form.get("note", ""),
    )


@app.post("/api/sum")
def api_sum() -> Response:
    """``{"numbers": [1, 2.5]}`` → ``{"count": 2, "sum": 3.5}``."""
    data = request.get_json()
    numbers = data.get("numbers") if isinstance(data, dict) else None
    if not isinstance(numbers, list) or not all(
        isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
    ):
        abort(400, 'expected {"numbers": [...]}')
    return jsonify(count=len(numbers), sum=sum(numbers))


@app.get("/theme/<name>")
def theme(name: str) -> BaseResponse:
    """Remember ``name`` in the ``theme`` cookie and go back home."""
    response = redirect(url_for("index"))
    response.set_cookie("theme", name, max_age=30 * 24 * 3600, httponly=True, samesite="Lax")
    return response


@app.get("/stream")
def stream() -> Response:
    """``line 1 of N`` ... ``line N of N``, one chunk per line.

    The generator reads ``request`` while the body is sent, after the view
    has returned: ``stream_with_context`` keeps the request context for it.
    """

    def lines() -> Iterator[str]:
        count = min(request.args.get("lines", 5, type=int), MAX_LINES)
        for number in range(1, count + 1):
            yield f"line {number} of {count}\n"

    return Response(stream_with_context(lines()), mimetype="text/plain")


@app.get("/files/<path:name>")
def files(name: str) -> Response:
    """A file of ``FILES`` (404 outside it or missing), with ``send_file``."""
    return send_from_directory(FILES, name)


@app.get("/boom")
def boom() -> Response:
    """Always fails: Flask answers 500 and logs the traceback."""
    raise RuntimeError("boom: the example view failed on purpose")
