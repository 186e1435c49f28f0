"""Shared subscriptions counted per URI: subscribe for the first holder, unsubscribe after the last."""

from __future__ import annotations

from mcpmux.relay.subscriptions import drop, held, hold


def test_only_the_first_holder_subscribes_and_only_the_last_unsubscribes() -> None:
    counts: dict[str, int] = {}
    assert hold(counts, "file:///a") is True
    assert hold(counts, "file:///a") is False
    assert held(counts, "file:///a") and counts == {"file:///a": 2}
    assert drop(counts, "file:///a") is False
    assert drop(counts, "file:///a") is True
    assert counts == {} and not held(counts, "file:///a")


def test_uris_are_counted_apart_and_an_unknown_one_drops_as_the_last() -> None:
    counts: dict[str, int] = {}
    hold(counts, "file:///a")
    hold(counts, "file:///b")
    assert drop(counts, "file:///c") is True  # nothing held: nothing to keep subscribed
    assert drop(counts, "file:///a") is True
    assert counts == {"file:///b": 1}
