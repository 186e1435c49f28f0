"""Response heads (web/exchange.py, pure): header lines, the length and close an app sent, injection."""

from __future__ import annotations

import pytest

from mcpmux.web.exchange import has_body, header_block, status_line


def test_header_block_lowercases_names_and_reports_length_and_close() -> None:
    block, length, close = header_block(
        [(b"Content-Type", b"application/json"), (b"Content-Length", b"12"), (b"Connection", b"Close")]
    )
    assert block == b"content-type: application/json\r\ncontent-length: 12\r\nconnection: Close\r\n"
    assert (length, close) == (12, True)
    assert header_block([(b"x-a", b"1")])[1:] == (None, False)
    assert header_block(iter([(b"x-a", b"1")]))[0] == b"x-a: 1\r\n"  # any iterable of pairs
    assert header_block(()) == (b"", None, False)


def test_a_block_of_only_its_own_line_ends_passes() -> None:
    block, _, _ = header_block([(b"x-a", b"1"), (b"x-b", b"2")])
    assert block == b"x-a: 1\r\nx-b: 2\r\n"
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"


@pytest.mark.parametrize("value", [b"1\r\nset-cookie: x=1", b"1\nx", b"1\rx", b"1\0"])
def test_a_header_value_carrying_a_line_end_or_nul_is_refused(value: bytes) -> None:
    with pytest.raises(RuntimeError, match="invalid character"):
        header_block([(b"x-a", value)])
    with pytest.raises(RuntimeError, match="invalid character"):
        header_block([(b"x-a" + value, b"1")])  # in a name too


def test_only_1xx_204_and_304_have_no_body() -> None:
    assert [has_body(s) for s in (100, 200, 204, 301, 304, 500)] == [False, True, False, True, False, True]
