"""Status lines carry the reason phrases of RFC 9110 §15 (not Python's older
names from RFC 7231, which http.HTTPStatus keeps before Python 3.13)."""

from __future__ import annotations

import pytest

from localhost.http.message import Response, reason, status_line
from localhost.http.writer import response_head

# RFC 9110 §15, every status code it defines.
RFC9110 = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    203: "Non-Authoritative Information",
    204: "No Content",
    205: "Reset Content",
    206: "Partial Content",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    421: "Misdirected Request",
    422: "Unprocessable Content",
    426: "Upgrade Required",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


@pytest.mark.parametrize(("code", "phrase"), sorted(RFC9110.items()))
def test_status_line_has_the_rfc9110_phrase(code: int, phrase: str) -> None:
    assert status_line(code) == f"HTTP/1.1 {code} {phrase}\r\n".encode()
    assert reason(code) == phrase


def test_other_codes_keep_a_phrase_or_none() -> None:
    assert status_line(431) == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"  # RFC 6585
    assert status_line(507) == b"HTTP/1.1 507 Insufficient Storage\r\n"  # RFC 4918
    assert status_line(599) == b"HTTP/1.1 599 \r\n"  # RFC 9112 §4: the phrase may be empty
    assert reason(599) == ""


def test_response_heads_use_the_precomputed_lines() -> None:
    head = response_head(Response(413, [], b"x"), keep_alive=False, http10=False)
    assert head.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
