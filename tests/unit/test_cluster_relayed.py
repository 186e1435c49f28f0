"""An owner replica's answer as the relay takes it (cluster/forward.Relayed): event streams pause above the
high-water mark; a whole (JSON) answer never pauses, and one above MAX_ANSWER_BYTES is dropped."""

from __future__ import annotations

from mcpmux.cluster.forward import HIGH_WATER, MAX_ANSWER_BYTES, Relayed


def test_a_json_answer_is_read_whole_without_pausing() -> None:
    relayed = Relayed()
    relayed.on_head(200, {b"content-type": b"application/json"})
    relayed.on_data(b"x" * (2 * HIGH_WATER))  # paused before, and nothing took from it: a hang
    assert not relayed.streaming and not relayed.over and relayed.waiting == 2 * HIGH_WATER
    relayed.on_end()
    assert relayed.over and len(relayed.take()) == 2 * HIGH_WATER


def test_a_json_answer_above_its_bound_ends_as_too_big_and_keeps_nothing() -> None:
    relayed = Relayed()
    relayed.on_head(200, {b"content-type": b"application/json"})
    relayed.on_data(b"x" * MAX_ANSWER_BYTES)
    assert not relayed.too_big
    relayed.on_data(b"x")
    assert relayed.too_big and relayed.over and not relayed.chunks


def test_an_event_stream_is_relayed_as_it_comes() -> None:
    relayed = Relayed()
    relayed.on_head(200, {b"content-type": b"text/event-stream"})
    relayed.on_data(b"x" * (MAX_ANSWER_BYTES + 1))  # a stream has no total bound, only its high water
    assert relayed.streaming and not relayed.too_big and not relayed.over
