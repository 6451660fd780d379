"""Upload file names and the no-overwrite commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from localhost.handlers.upload import _commit, safe_name
from localhost.http.errors import HTTPError


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\file.txt", "file.txt"),
        (".hidden", "hidden"),
        ("..double", "double"),
        ("  spaced.txt ", "spaced.txt"),
        ("ünï côdé.txt", "ünï côdé.txt"),
        ("dir/name", "name"),
    ],
)
def test_safe_names(raw: str, name: str) -> None:
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    "raw", ["", ".", "..", "...", "a/", "x\x00y", "tab\there", "new\nline", "del\x7f", "dir/.."]
)
def test_unusable_names(raw: str) -> None:
    with pytest.raises(HTTPError) as info:
        safe_name(raw)
    assert info.value.status == 400


def test_long_names_keep_their_extension() -> None:
    # README: at most 255 bytes, the extension kept.
    # 254 bytes: a two-byte character is never cut in half.
    assert safe_name("é" * 300 + ".tar") == "é" * 125 + ".tar"
    assert safe_name("x" * 300) == "x" * 255
    assert safe_name("y" * 255) == "y" * 255
    assert safe_name("z" * 251 + ".txt") == "z" * 251 + ".txt"
    assert safe_name("z" * 252 + ".txt") == "z" * 251 + ".txt"


def test_commit_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("original")
    names = []
    for content in ("one", "two"):
        temporary = tmp_path / f".tmp-{content}"
        temporary.write_text(content)
        names.append(_commit(str(temporary), str(tmp_path), "a.txt"))
        assert not temporary.exists()
    assert names == ["a-1.txt", "a-2.txt"]
    assert (tmp_path / "a.txt").read_text() == "original"
    assert (tmp_path / "a-2.txt").read_text() == "two"
    temporary = tmp_path / ".tmp-noext"
    temporary.write_text("x")
    (tmp_path / "README").write_text("r")
    assert _commit(str(temporary), str(tmp_path), "README") == "README-1"
