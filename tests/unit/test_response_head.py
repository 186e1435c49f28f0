"""Response heads (web/exchange.py, pure): header lines, the length and close an app sent, injection."""

from __future__ import annotations

import pytest

from mcpmux.web.exchange import check_head, has_body, header_lines, status_line


def test_header_lines_lowercase_names_and_report_length_and_close() -> None:
    lines, length, close = header_lines(
        [(b"Content-Type", b"application/json"), (b"Content-Length", b"12"), (b"Connection", b"Close")]
    )
    assert b"".join(lines) == (
        b"content-type: application/json\r\ncontent-length: 12\r\nconnection: Close\r\n"
    )
    assert (length, close) == (12, True)
    assert header_lines([(b"x-a", b"1")])[1:] == (None, False)


def test_a_head_of_only_its_own_line_ends_passes() -> None:
    lines, _, _ = header_lines([(b"x-a", b"1"), (b"x-b", b"2")])
    head = b"".join((status_line(200), *lines, b"\r\n"))
    check_head(head, 4)  # status line, two headers, the blank line


@pytest.mark.parametrize("value", [b"1\r\nset-cookie: x=1", b"1\nx", b"1\rx", b"1\0"])
def test_a_header_value_carrying_a_line_end_or_nul_is_refused(value: bytes) -> None:
    lines, _, _ = header_lines([(b"x-a", value)])
    head = b"".join((status_line(200), *lines, b"\r\n"))
    with pytest.raises(RuntimeError, match="invalid character"):
        check_head(head, 3)


def test_only_1xx_204_and_304_have_no_body() -> None:
    assert [has_body(s) for s in (100, 200, 204, 301, 304, 500)] == [False, True, False, True, False, True]
