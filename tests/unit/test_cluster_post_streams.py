"""Resumable POST answers, the parts without Redis: event ids, events in a body, which answers are kept."""

from __future__ import annotations

from mcpmux.cluster.pieces import MAX_MESSAGE_BYTES, PIECE_BYTES, Assembler, pieces
from mcpmux.cluster.post_streams import POST_ID, events_of, is_event_stream, post_batch, post_key, with_id
from mcpmux.cluster.streams import EVENT_ID
from mcpmux.web.asgi import JSON_TYPE, SSE_HEADERS, sse_event


def test_a_post_events_id_names_its_stream_and_never_looks_like_a_get_streams_id() -> None:
    event = sse_event(b'{"jsonrpc":"2.0","method":"notifications/progress"}')
    stamped = with_id(event, "0123456789abcdef", 3)
    assert stamped == b"id: p.0123456789abcdef.3\n" + event
    found = POST_ID.fullmatch("p.0123456789abcdef.3")
    assert found is not None and found.groups() == ("0123456789abcdef", "3")
    assert EVENT_ID.fullmatch("p.0123456789abcdef.3") is None
    for other in ("1700000000000-0", "p.0123.3", "p.0123456789abcdef.", "p.0123456789ABCDEF.3", "x"):
        assert POST_ID.fullmatch(other) is None
    assert post_key("r.s.m", "0123456789abcdef") == "mcpmux:post:r.s.m:0123456789abcdef"


def test_the_events_of_a_body_leave_out_comments_and_empty_parts() -> None:
    first, second = sse_event(b"{}"), sse_event(b"[1]")
    assert events_of(first + b": keep-alive\n\n" + second) == [first, second]
    assert events_of(b"") == [] and events_of(b": keep-alive\n\n") == []


def test_only_an_event_stream_answer_is_kept() -> None:
    assert is_event_stream(SSE_HEADERS)
    assert not is_event_stream([JSON_TYPE]) and not is_event_stream([])


def test_a_post_streams_read_puts_pieces_together_and_skips_oversized_entries() -> None:
    tag = "0123456789abcdef"
    event = sse_event(b"x" * (2 * PIECE_BYTES))
    written = [{k.encode(): v for k, v in entry.items()} for entry in pieces(event, {"t": b"d"})]
    entries = [(f"0-{n}".encode(), fields) for n, fields in enumerate(written, 1)]
    assembler = Assembler("POST")
    body, last, done = post_batch(entries[:2], tag, assembler)
    assert (body, last, done) == (b"", 2, False)  # the event's last piece comes with the next read
    body, last, done = post_batch(entries[2:], tag, assembler)
    assert body == with_id(event, tag, 3) and last == 3 and not done
    huge = (b"0-6", {b"t": b"d", b"m": b"x" * (MAX_MESSAGE_BYTES + 1)})
    empty = (b"0-7", {b"t": b"d"})  # neither message nor end: a KeyError ended the stream before
    end = (b"0-8", {b"t": b"d", b"e": b"1"})
    body, last, done = post_batch([huge, empty, end], tag, assembler)
    assert body == b"" and last == 8 and done
