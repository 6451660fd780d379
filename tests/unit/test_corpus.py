"""The request corpus through the parser: whole, byte by byte, and pipelined."""

from __future__ import annotations

import pytest

from localhost.http.errors import HTTPError
from localhost.http.message import Request
from localhost.http.parser import END, NEED_DATA, RequestParser
from tests.corpus import Case, cases

CASES = cases()
NEXT = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n"


def run(pieces: list[bytes]) -> list[object]:
    parser = RequestParser()
    events: list[object] = []
    for piece in pieces:
        parser.feed(piece)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert sum(case.parser is not None for case in CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case_through_the_parser(case: Case) -> None:
    raw = case.raw
    splits = [[raw], [raw[i : i + 1] for i in range(len(raw))]]
    for pieces in splits:
        if case.parser is None:
            events = run(pieces)
            assert isinstance(events[0], Request), case.description
            assert events[-1] is END
        else:
            with pytest.raises(HTTPError) as info:
                run(pieces)
            assert info.value.status == case.parser, case.description
    if case.parser is None:
        events = run([raw + NEXT])
        requests = [e for e in events if isinstance(e, Request)]
        assert [r.target for r in requests][-1] == "/next"
        assert events.count(END) == 2
