"""Bounds of the 2026-07-28 machinery: MRTR suspensions per carrier, and the x-mcp-header maps learnt
from upstream catalogs (an upstream renaming its tools at every list must not grow them for ever)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mcpmux.relay import modern
from mcpmux.relay.mrtr import MAX_EVENTS, MAX_SUSPENSIONS, Suspension, Suspensions
from mcpmux.relay.server_route import ServerRoute
from mcpmux.relay.shares import ANONYMOUS_SHARE, share_refusal
from mcpmux.upstream import modern_headers


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


def annotated(name: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}
    return {"name": name, "inputSchema": schema}


def test_learnt_param_headers_are_bounded_per_server_and_in_servers() -> None:
    server = ("hostile", "http://127.0.0.1:1/mcp")
    for round_ in range(3):  # the upstream renames every tool at each list
        tools = [annotated(f"t{round_}-{n}") for n in range(modern_headers.MAX_LEARNT_TOOLS)]
        modern_headers.learn_param_headers(server, [*tools, {"name": "plain", "inputSchema": {}}])
        assert len(modern_headers._PARAM_HEADERS[server]) <= modern_headers.MAX_LEARNT_TOOLS
    assert "plain" not in modern_headers._PARAM_HEADERS[server]  # nothing to mirror: not remembered
    call = {"method": "tools/call", "params": {"name": "t2-7", "arguments": {"region": "eu"}}}
    assert b"mcp-param-Region: eu" in (modern_headers.request_headers(server, call) or b"")
    for n in range(modern_headers.MAX_LEARNT_SERVERS + 10):
        modern_headers.learn_param_headers((f"s{n}", "u"), [annotated("x")])
    assert len(modern_headers._PARAM_HEADERS) <= modern_headers.MAX_LEARNT_SERVERS


def test_header_maps_of_runtimes_are_bounded() -> None:
    routes = []
    for _ in range(modern.MAX_HEADER_MAPS + 50):  # reloads make new runtimes
        route = ServerRoute.__new__(ServerRoute)
        route.runtime = SimpleNamespace(tools=[annotated("echo")])  # type: ignore[assignment]
        route.renamed = {}
        routes.append(route)  # kept alive: ids stay distinct
        assert modern.param_header_map(route, "echo") == {("region",): "Region"}
    assert len(modern._HEADER_MAPS) <= modern.MAX_HEADER_MAPS


def test_anonymous_suspensions_are_counted_per_address_and_bounded_in_all() -> None:
    calls = Suspensions(anonymous=True)
    for n in range(MAX_SUSPENSIONS):
        assert calls.open("tools/call", {"name": f"t{n}"}, "10.0.0.1") is not None
    assert calls.open("tools/call", {"name": "more"}, "10.0.0.1") is None  # its own share is used up
    assert calls.open("tools/call", {"name": "other"}, "10.0.0.2") is not None  # another client's is not
    for n in range(2, ANONYMOUS_SHARE + 1):
        for m in range(MAX_SUSPENSIONS):
            calls.open("tools/call", {"name": f"t{m}"}, f"10.0.0.{n}")
    assert len(calls.calls) == MAX_SUSPENSIONS * ANONYMOUS_SHARE
    assert calls.open("tools/call", {"name": "x"}, "10.0.0.99") is None  # all anonymous clients: bounded


def test_a_token_carrier_counts_all_its_suspensions_together() -> None:
    calls = Suspensions()
    for n in range(MAX_SUSPENSIONS):
        assert calls.open("tools/call", {"name": f"t{n}"}) is not None
    assert calls.open("tools/call", {"name": "x"}) is None


def test_share_refusals_name_the_limit() -> None:
    assert (
        share_refusal(["a"] * 3, "a", 3, True, "things")
        == "at most 3 things per client address without a token"
    )
    assert share_refusal(["a"] * 3, "b", 3, True, "things") is None
    assert share_refusal(["a"] * 3, "b", 3, False, "things") == "at most 3 things per token"
    everyone = [f"c{n}" for n in range(3 * ANONYMOUS_SHARE)]
    assert (
        share_refusal(everyone, "new", 3, True, "things")
        == f"at most {3 * ANONYMOUS_SHARE} things for all clients without a token"
    )
