"""A GET stream's reads from Redis are bounded in bytes (cluster/streams.py): a batch is cut at the byte
budget, an oversized or message-less entry is skipped (logged), and a stream of big entries is read a
few at a time."""

from __future__ import annotations

import logging

import pytest

from mcpmux.cluster.streams import MAX_ENTRY_BYTES, READ_BYTES, READ_COUNT, next_read_count, take_batch


def entry(n: int, size: int) -> tuple[bytes, dict[bytes, bytes]]:
    return f"1-{n}".encode(), {b"m": b"x" * size}


def test_a_batch_is_cut_at_the_byte_budget_and_the_rest_read_next_time() -> None:
    entries = [entry(n, 400) for n in range(10)]
    body, last, biggest = take_batch(entries, budget=1000)
    assert body.count(b"event: message") == 2 and last == b"1-1" and biggest == 400
    body, last, _ = take_batch(entries[2:], budget=1000)
    assert last == b"1-3"


def test_one_entry_goes_even_when_alone_it_is_over_the_budget() -> None:
    body, last, _ = take_batch([entry(0, 5000), entry(1, 10)], budget=1000)
    assert body.count(b"event: message") == 1 and last == b"1-0"


def test_an_oversized_or_empty_entry_is_skipped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    huge = entry(1, MAX_ENTRY_BYTES + 1)
    with caplog.at_level(logging.WARNING, logger="mcpmux.cluster"):
        body, last, biggest = take_batch(
            [huge, (b"1-2", {b"not-m": b"x"}), entry(3, 5)], budget=2 * MAX_ENTRY_BYTES
        )
    assert (
        body == b"id: 1-3\nevent: message\ndata: xxxxx\n\n"
    )  # was: the 4 MiB entry sent on, then a KeyError
    assert last == b"1-3" and biggest == MAX_ENTRY_BYTES + 1
    assert "too big" in caplog.text and "no message" in caplog.text


def test_after_big_entries_the_next_read_takes_fewer() -> None:
    assert next_read_count(10) == READ_COUNT
    assert next_read_count(READ_BYTES // 4) == 4
    assert next_read_count(MAX_ENTRY_BYTES + 1) == 1
    assert next_read_count(0) == READ_COUNT
