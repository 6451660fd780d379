"""Absolute-form request-targets (RFC 9112 §3.2.2): the parser's authority and
the router's path, an empty path being "/" (RFC 3986 §3.3 path-abempty)."""

from __future__ import annotations

import pytest

from localhost.http.message import Request
from localhost.http.parser import RequestParser
from localhost.http.target import normalize_target


def parse(target: str, host: str) -> Request:
    parser = RequestParser()
    parser.feed(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    request = parser.next_event()
    assert isinstance(request, Request)
    return request


@pytest.mark.parametrize(
    ("target", "host", "path", "query"),
    [
        ("http://example.com?x=1", "example.com", "/", "x=1"),
        ("http://example.com:8080", "example.com:8080", "/", ""),
        ("http://example.com", "example.com", "/", ""),
        ("https://example.com?a=/b", "example.com", "/", "a=/b"),
        ("http://example.com?", "example.com", "/", ""),
        ("HTTP://Example.COM:80?q", "example.com", "/", "q"),
        ("http://example.com/p?x=1", "example.com", "/p", "x=1"),
        ("http://example.com/p/../q", "example.com", "/q", ""),
    ],
)
def test_absolute_form_path_and_query(target: str, host: str, path: str, query: str) -> None:
    request = parse(target, host)
    assert request.target == target  # as sent (the access log shows it so)
    assert normalize_target(request.target) == (path, query)


def test_the_authority_of_an_empty_path_target_is_compared_with_host() -> None:
    assert parse("http://example.com?x=1", "example.com").host == "example.com"
    assert parse("http://example.com:8080", "example.com:8080").host == "example.com:8080"
