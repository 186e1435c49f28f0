"""The bounds of MRTR suspensions: at most MAX_SUSPENSIONS waiting calls per carrier, expired ones freed."""

from __future__ import annotations

from mcpmux.relay.mrtr import MAX_EVENTS, MAX_SUSPENSIONS, Suspension, Suspensions


def test_a_carrier_holds_at_most_max_suspensions_and_frees_expired_ones() -> None:
    calls = Suspensions()
    held = [calls.open("tools/call", {"name": f"t{n}"}) for n in range(MAX_SUSPENSIONS)]
    assert all(isinstance(s, Suspension) for s in held)
    assert calls.open("tools/call", {"name": "one-more"}) is None
    first = held[0]
    assert first is not None
    first.expires_at = 0.0  # its client never came back
    again = calls.open("tools/call", {"name": "one-more"})
    assert again is not None and first.handle not in calls.calls
    assert len(calls.calls) == MAX_SUSPENSIONS


def test_a_suspended_call_keeps_at_most_max_events_notifications_but_always_its_response() -> None:
    suspension = Suspension("tools/call\nx")
    for n in range(MAX_EVENTS + 50):
        suspension.put({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": n}})
    assert len(suspension.events) == MAX_EVENTS
    suspension.put({"jsonrpc": "2.0", "id": 1, "result": {}})
    assert suspension.events[-1] == {"jsonrpc": "2.0", "id": 1, "result": {}}
