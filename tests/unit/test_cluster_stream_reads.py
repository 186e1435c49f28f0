"""Redis stream reads are bounded in bytes (cluster/pieces.py): a message is written as entries of at most
PIECE_BYTES, a read takes READ_COUNT entries, and a reader relays only entries within that size,
putting a message's pieces together again (across reads) before it sends it on."""

from __future__ import annotations

import logging

import pytest

from mcpmux.cluster.pieces import (
    MAX_MESSAGE_BYTES,
    PIECE_BYTES,
    READ_BYTES,
    READ_COUNT,
    Assembler,
    entry_bytes,
    pieces,
)
from mcpmux.cluster.streams import take_batch


def entries_of(*messages: bytes) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries as Redis gives them back, numbered from 1."""
    fields = [piece for message in messages for piece in pieces(message, {"t": b"d" * 64})]
    return [
        (f"1-{n}".encode(), {k.encode(): v for k, v in entry.items()}) for n, entry in enumerate(fields, 1)
    ]


def test_no_entry_written_is_bigger_than_a_piece_so_no_read_brings_more_than_its_budget() -> None:
    assert READ_COUNT * PIECE_BYTES <= READ_BYTES <= 1024 * 1024
    big = bytes(range(256)) * (MAX_MESSAGE_BYTES // 256)  # the biggest message written
    written = pieces(big, {"t": b"d" * 64})
    assert len(written) == MAX_MESSAGE_BYTES // PIECE_BYTES
    assert max(
        len(entry["f"] if "f" in entry else entry.get("c", entry.get("l", b""))) for entry in written
    ) == (PIECE_BYTES)
    assert pieces(b"small") == [{"m": b"small"}]  # one entry, as before


def test_a_message_in_pieces_is_whole_again_once_its_last_piece_is_read_even_across_reads() -> None:
    message = b'{"jsonrpc":"2.0","method":"n","params":{"x":"' + b"y" * (3 * PIECE_BYTES) + b'"}}'
    entries = entries_of(b'{"a":1}', message, b'{"b":2}')
    assembler = Assembler("GET")
    first, last, delivered = take_batch(entries[:3], assembler)  # the message's last piece is not read yet
    assert first == b'id: 1-1\nevent: message\ndata: {"a":1}\n\n' and (last, delivered) == (b"1-3", b"1-1")
    rest, last, delivered = take_batch(entries[3:], assembler)
    assert rest == (
        b"id: 1-5\nevent: message\ndata: " + message + b"\n\nid: 1-6\nevent: message\ndata: " + b'{"b":2}\n\n'
    )
    assert (last, delivered) == (b"1-6", b"1-6")


def test_a_message_whose_start_was_trimmed_away_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    entries = entries_of(b"x" * (3 * PIECE_BYTES), b'{"after":1}')
    with caplog.at_level(logging.WARNING, logger="mcpmux.cluster"):
        body, _, delivered = take_batch(entries[1:], Assembler("GET"))  # what MAXLEN trimming leaves
    assert body == b'id: 1-4\nevent: message\ndata: {"after":1}\n\n' and delivered == b"1-4"
    assert "its start is gone" in caplog.text


def test_entries_too_big_or_without_a_message_are_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    huge = (b"1-1", {b"m": b"x" * (PIECE_BYTES + 1024)})  # written by something else: never relayed
    empty = (b"1-2", {b"not-m": b"x"})
    padded = (b"1-3", {b"m": b"{}", b"pad": b"x" * (PIECE_BYTES + 1024)})  # small message, huge other field
    fine = (b"1-4", {b"m": b"{}"})
    with caplog.at_level(logging.WARNING, logger="mcpmux.cluster"):
        body, last, delivered = take_batch([huge, empty, padded, fine], Assembler("GET"))
    assert body == b"id: 1-4\nevent: message\ndata: {}\n\n" and last == delivered == b"1-4"
    assert caplog.text.count("too big") == 2 and "no message" in caplog.text
    assert entry_bytes(fine[1]) == 3


def test_pieces_beyond_the_biggest_message_are_dropped_not_kept() -> None:
    assembler = Assembler("GET")
    assert assembler.feed({b"f": b"x" * PIECE_BYTES}) is None
    for _ in range(MAX_MESSAGE_BYTES // PIECE_BYTES + 2):  # a writer that never ends its message
        assert assembler.feed({b"c": b"x" * PIECE_BYTES}) is None
        assert assembler.size <= MAX_MESSAGE_BYTES
    assert assembler.parts is None
    assert assembler.feed({b"m": b"{}"}) == b"{}"  # the next message goes through


def test_a_new_message_starting_before_the_last_piece_drops_the_broken_one() -> None:
    assembler = Assembler("POST")
    assembler.feed({b"f": b"broken"})
    assert assembler.feed({b"f": b"a"}) is None
    assert assembler.feed({b"l": b"b"}) == b"ab"
