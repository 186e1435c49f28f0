"""Cache hints of 2026-07-28 upstreams: which pass, combined how, and never more public than safe."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mcpmux.protocol.cache import (
    HANDSHAKE_DISCOVER_HINT,
    HINT_META,
    NO_CACHE,
    carried_hint,
    carry_hint,
    combine,
    discover_hint,
    for_client,
    read_hint,
    recarry,
    take_hint,
)
from mcpmux.protocol.translate import complete_result, handshake_response, modern_response


@pytest.mark.parametrize(
    ("ttl", "scope", "expected"),
    [
        (60000, "public", (60000, "public")),
        (0, "private", (0, "private")),
        (-1, "public", None),
        (1.5, "public", None),
        (True, "public", None),
        (2**60, "private", None),
        (10, "shared", None),
        (None, None, None),
    ],
)
def test_only_valid_hints_are_read(ttl: Any, scope: Any, expected: Any) -> None:
    assert read_hint(ttl, scope) == expected


def test_combining_takes_the_shortest_ttl_and_the_most_private_scope() -> None:
    assert combine([(60000, "public"), (5000, "public")]) == (5000, "public")
    assert combine([(60000, "private"), (5000, "public")]) == (5000, "private")
    assert combine([(60000, "public")]) == (60000, "public")


def test_a_part_without_hints_or_no_parts_make_the_whole_not_cacheable() -> None:
    assert combine([(60000, "public"), None]) == NO_CACHE
    assert combine([]) == NO_CACHE


def test_a_client_with_a_token_never_gets_public() -> None:
    assert for_client((60000, "public"), shareable=False) == (60000, "private")
    assert for_client((60000, "public"), shareable=True) == (60000, "public")
    assert for_client((60000, "private"), shareable=True) == (60000, "private")
    assert for_client(None, shareable=True) == NO_CACHE


def test_a_carried_hint_is_taken_out_of_meta_and_other_meta_stays() -> None:
    result: dict[str, Any] = {"tools": [], "_meta": {"com.example/x": 1}}
    carry_hint(result, (100, "public"))
    assert carried_hint(result) == (100, "public")
    assert take_hint(result) == (100, "public")
    assert result == {"tools": [], "_meta": {"com.example/x": 1}}
    carry_hint(result := {"tools": []}, (5, "private"))
    assert take_hint(result) == (5, "private") and result == {"tools": []}


def test_a_forged_carried_hint_is_no_hint() -> None:
    result: dict[str, Any] = {"_meta": {HINT_META: [10, "everyone"]}}
    assert take_hint(result) is None and result == {}


def test_a_carried_hint_that_went_through_json_is_no_hint() -> None:
    """An upstream can write the key, but not the value mcpmux carries (no JSON parser makes a tuple)."""
    carry_hint(result := {"tools": []}, (60000, "public"))
    echoed = orjson.loads(orjson.dumps(result))
    assert echoed["_meta"][HINT_META] == [60000, "public"]
    assert carried_hint(echoed) is None and take_hint(echoed) is None and echoed == {"tools": []}


def test_a_2026_upstreams_complete_result_carries_its_hints_through_the_handshake_side() -> None:
    answer = {
        "id": 1,
        "result": {"tools": [], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"},
    }
    passed = handshake_response(answer)
    assert passed["result"] == {"tools": [], "_meta": {HINT_META: (60000, "public")}}
    assert modern_response("tools/list", passed, shareable=True)["result"] == {
        "tools": [],
        "resultType": "complete",
        "ttlMs": 60000,
        "cacheScope": "public",
    }


def test_after_a_multi_round_trip_retry_no_hint_is_carried() -> None:
    answer = {"id": 1, "result": {"contents": [], "ttlMs": 60000, "cacheScope": "public"}}
    assert handshake_response(answer, keep_hint=False)["result"] == {"contents": []}
    assert complete_result("resources/read", {"contents": []}, shareable=True)["ttlMs"] == 0


def test_an_input_required_result_carries_no_hint() -> None:
    asked = {"resultType": "input_required", "inputRequests": {}, "ttlMs": 5, "cacheScope": "public"}
    assert HINT_META not in (handshake_response({"id": 1, "result": asked})["result"].get("_meta") or {})


def test_hints_a_handshake_era_upstream_put_in_its_result_pass_only_as_far_as_safe() -> None:
    result = {"tools": [], "ttlMs": 60000, "cacheScope": "public"}
    assert complete_result("tools/list", result, shareable=False)["cacheScope"] == "private"
    odd = complete_result("tools/list", {"tools": [], "ttlMs": -3, "cacheScope": "public"}, shareable=True)
    assert (odd["ttlMs"], odd["cacheScope"]) == NO_CACHE


def test_results_of_methods_that_are_not_cacheable_get_no_hints() -> None:
    assert complete_result("tools/call", {"content": []}, shareable=True) == {
        "content": [],
        "resultType": "complete",
    }


def test_the_discover_hint_of_an_upstream_is_its_own_else_a_bounded_default() -> None:
    carry_hint(modern := {"capabilities": {}}, (5000, "public"))
    assert discover_hint(modern) == (5000, "public")
    assert discover_hint({"capabilities": {}}) == HANDSHAKE_DISCOVER_HINT  # a handshake-era upstream
    assert 0 < HANDSHAKE_DISCOVER_HINT[0] <= 3_600_000
    assert discover_hint(None) is None  # not initialized: nothing known yet
    assert combine([discover_hint(modern), discover_hint(None)]) == NO_CACHE


def test_recarrying_replaces_or_removes_the_carried_hint_and_keeps_other_meta() -> None:
    carry_hint(result := {"_meta": {"com.example/x": 1}}, (5000, "public"))
    recarry(result, None)
    assert result == {"_meta": {"com.example/x": 1}}
    recarry(result, (7, "private"))
    assert carried_hint(result) == (7, "private")
