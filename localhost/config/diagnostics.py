"""Configuration errors and warnings, and how they are shown.

A diagnostic is ``PATH:LINE:COLUMN: message``, then the offending source line
and a caret under the column, the form compilers use so that editors can jump
to it. Lines are counted at LF only, as the grammar counts them (a CR before
the LF is not part of the shown line); columns count characters from 1.

The excerpt is made safe to print: control and other invisible characters
(NUL, form feed, U+2028, a stray byte-order mark...) are shown as escapes
such as ``\\x0c``, and a very long line is cut to a window around the column.
The caret line copies each tab of the source line and pads two columns under
a wide (East Asian) character, so that the caret stays under the column in a
terminal whatever its tab width.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

GUTTER = "    "
#: Characters of a long source line shown around the column.
WINDOW = 120
ELLIPSIS = "..."


@dataclass(frozen=True, slots=True)
class Note:
    """A second position that explains a diagnostic (e.g. where a block opened).

    ``path`` names the file the note is in when it is not the diagnostic's
    own (the ``include`` that brought an included file in).
    """

    line: int
    column: int
    message: str
    source: str = ""
    path: str | None = None


def _shown_char(char: str) -> tuple[str, str]:
    """How ``char`` is printed in the excerpt, and the blank that pads under it."""
    if char == "\t":
        return "\t", "\t"
    if char.isprintable():
        if unicodedata.combining(char):
            return char, ""
        wide = unicodedata.east_asian_width(char) in ("W", "F")
        return char, "  " if wide else " "
    escaped = char.encode("unicode_escape").decode("ascii")
    return escaped, " " * len(escaped)


def excerpt(source: str, column: int) -> tuple[str, str]:
    """The printable form of ``source`` and the line holding its caret.

    ``column`` counts characters from 1; a column past the end (the end of
    the file) puts the caret just after the last character.
    """
    index = max(column - 1, 0)
    start, end = 0, len(source)
    if end > WINDOW:
        start = max(0, min(index - WINDOW // 2, end - WINDOW))
        end = start + WINDOW
    shown = [ELLIPSIS] if start else []
    pad = [" " * len(ELLIPSIS)] if start else []
    for position in range(start, end):
        text, blank = _shown_char(source[position])
        shown.append(text)
        if position < index:
            pad.append(blank)
    if end < len(source):
        shown.append(ELLIPSIS)
    if index > end:  # past the end of the line: one column per missing character
        pad.append(" " * (index - end))
    return "".join(shown), "".join(pad) + "^"


def render(
    path: str, line: int, column: int, message: str, source: str = "", notes: tuple[Note, ...] = ()
) -> str:
    """``PATH:LINE:COLUMN: message`` with its excerpt (``source`` is the whole
    line, even when blank), then each note the same way.

    ``line`` 0 means the file as a whole (it could not be read): ``PATH: message``.
    """
    if not line:
        return f"{path}: {message}"
    shown, caret = excerpt(source, column)
    text = f"{path}:{line}:{column}: {message}\n{GUTTER}{shown}\n{GUTTER}{caret}"
    for note in notes:
        text += "\n" + render(
            note.path or path, note.line, note.column, f"note: {note.message}", note.source
        )
    return text


class ConfigError(Exception):
    """A configuration problem at ``path:line:column``.

    ``str(error)`` is ``PATH:LINE:COLUMN: message``, then the offending source
    line and a caret under the column, then any ``notes`` (each a
    ``PATH:LINE:COLUMN: note: ...`` with its own excerpt). ``line`` is 0 when
    the file as a whole is at fault (it could not be read).
    """

    def __init__(
        self,
        path: str,
        line: int,
        column: int,
        message: str,
        source: str = "",
        notes: tuple[Note, ...] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.source = source
        self.notes = notes

    def __str__(self) -> str:
        return render(self.path, self.line, self.column, self.message, self.source, self.notes)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A problem that does not stop the server (e.g. a missing ``error_page`` file).

    ``str(warning)`` is ``PATH:LINE:COLUMN: warning: message`` with the source
    line and a caret, as for ``ConfigError``.
    """

    path: str
    line: int
    column: int
    message: str
    source: str = ""

    def __str__(self) -> str:
        return render(self.path, self.line, self.column, f"warning: {self.message}", self.source)
