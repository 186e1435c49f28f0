"""Unit tests of protocol/translate.py: discover <-> initialize, the 2026 result envelope, stripping."""

from __future__ import annotations

from typing import Any

import pytest

from mcpmux.protocol.constants import (
    CLIENT_CAPABILITIES_META,
    CLIENT_INFO_META,
    LOG_LEVEL_META,
    PROTOCOL_VERSION_META,
    SERVER_INFO_META,
)
from mcpmux.protocol.translate import (
    complete_result,
    discover_from_initialize,
    drop_envelope,
    forwarded_capabilities,
    initialize_from_discover,
    modern_response,
    strip_envelope,
)

INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {
        "tools": {"listChanged": True},
        "resources": {"subscribe": True, "listChanged": True},
        "logging": {},
        "tasks": {"list": {}},
        "experimental": {"x": {}},
    },
    "serverInfo": {"name": "up", "version": "1.2"},
    "instructions": "be nice",
}


def test_discover_is_built_from_an_initialize_result() -> None:
    assert discover_from_initialize(INIT) == {
        "resultType": "complete",
        "supportedVersions": ["2026-07-28"],
        "capabilities": {"tools": {}, "resources": {}, "logging": {}, "experimental": {"x": {}}},
        "ttlMs": 0,
        "cacheScope": "private",
        "instructions": "be nice",
        "_meta": {SERVER_INFO_META: {"name": "up", "version": "1.2"}},
    }


def test_discover_keeps_the_listen_flags_when_listen_is_served() -> None:
    caps = discover_from_initialize(INIT, listen=True, ttl_ms=5000, cache_scope="public")
    assert caps["capabilities"]["resources"] == {"subscribe": True, "listChanged": True}
    assert (caps["ttlMs"], caps["cacheScope"]) == (5000, "public")


def test_discover_from_a_bare_initialize_result() -> None:
    result = discover_from_initialize({"capabilities": "junk"})
    assert result["capabilities"] == {}
    assert "instructions" not in result and "_meta" not in result


def test_initialize_is_built_from_a_discover_result() -> None:
    discover = discover_from_initialize(INIT, listen=True)
    init = initialize_from_discover(discover, "2025-06-18", {"name": "fallback"})
    assert init == {
        "protocolVersion": "2025-06-18",
        "capabilities": discover["capabilities"],
        "serverInfo": {"name": "up", "version": "1.2"},
        "instructions": "be nice",
    }


@pytest.mark.parametrize("requested", ["2026-07-28", "1999-01-01", None])
def test_initialize_from_discover_answers_a_non_handshake_version_with_the_newest(requested: Any) -> None:
    init = initialize_from_discover({"capabilities": {}}, requested, {"name": "fallback"})
    assert init["protocolVersion"] == "2025-11-25"
    assert init["serverInfo"] == {"name": "fallback"}


@pytest.mark.parametrize(
    ("method", "result", "expected"),
    [
        ("tools/call", {"content": []}, {"content": [], "resultType": "complete"}),
        (
            "tools/list",
            {"tools": []},
            {"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"},
        ),
        (  # the upstream's hints are kept, but not public unless the caller says the route is shareable
            "resources/read",
            {"contents": [], "ttlMs": 9, "cacheScope": "public", "resultType": "complete"},
            {"contents": [], "ttlMs": 9, "cacheScope": "private", "resultType": "complete"},
        ),
        (  # never cache hints on an input_required result
            "tools/call",
            {"resultType": "input_required", "inputRequests": {}, "requestState": "s"},
            {"resultType": "input_required", "inputRequests": {}, "requestState": "s"},
        ),
        (
            "prompts/get",
            {"resultType": "input_required"},
            {"resultType": "input_required"},
        ),
    ],
)
def test_results_get_the_2026_envelope(method: str, result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert complete_result(method, result) == expected


def test_modern_response_maps_resource_not_found_and_leaves_other_errors() -> None:
    gone = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32002, "message": "nope", "data": {"uri": "x"}}}
    assert modern_response("resources/read", gone)["error"] == {
        "code": -32602,
        "message": "nope",
        "data": {"uri": "x"},
    }
    other = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "x"}}
    assert modern_response("tools/call", other)["error"]["code"] == -32603
    listed = {"jsonrpc": "2.0", "id": 1, "result": {"prompts": []}}
    assert modern_response("prompts/list", listed)["result"]["cacheScope"] == "private"


def test_strip_envelope_removes_only_the_envelope_keys() -> None:
    meta = {
        PROTOCOL_VERSION_META: "2026-07-28",
        CLIENT_CAPABILITIES_META: {},
        CLIENT_INFO_META: {"name": "c"},
        LOG_LEVEL_META: "info",
        "progressToken": 7,
        "traceparent": "00-x",
    }
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "e", "_meta": meta}}
    stripped = strip_envelope(msg)
    assert stripped["params"] == {"name": "e", "_meta": {"progressToken": 7, "traceparent": "00-x"}}
    assert msg["params"]["_meta"] is meta and len(meta) == 6  # the original is not changed


def test_strip_envelope_drops_an_emptied_meta_and_leaves_plain_requests_alone() -> None:
    msg = {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": {PROTOCOL_VERSION_META: "v"}}}
    assert strip_envelope(msg)["params"] == {}
    plain = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"progressToken": 1}}}
    assert strip_envelope(plain) is plain
    assert strip_envelope({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})["method"] == "tools/list"


def test_drop_envelope_removes_the_envelope_keys_and_gives_the_message_its_own_params() -> None:
    meta = {PROTOCOL_VERSION_META: "2026-07-28", CLIENT_CAPABILITIES_META: {}, "progressToken": 7}
    sent = {"name": "e", "_meta": meta}
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": sent}
    assert drop_envelope(msg) is msg
    assert msg["params"] == {"name": "e", "_meta": {"progressToken": 7}}
    msg["params"]["name"] = "renamed"  # what the merged route does to a tool call
    assert sent["name"] == "e"  # the params as sent (a suspended call's binding) stay
    envelope = {PROTOCOL_VERSION_META: "v", CLIENT_CAPABILITIES_META: {}, LOG_LEVEL_META: "info"}
    for meta_sent in (envelope, {**envelope, CLIENT_INFO_META: {"name": "c"}}):
        only = {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": meta_sent}}
        assert drop_envelope(only)["params"] == {}
        assert PROTOCOL_VERSION_META in meta_sent  # left as sent: only the message's params changed
    with_info = {PROTOCOL_VERSION_META: "v", CLIENT_CAPABILITIES_META: {}, CLIENT_INFO_META: {}, "x": 1}
    other = {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": with_info}}
    assert drop_envelope(other)["params"] == {"_meta": {"x": 1}}


def test_a_2026_upstream_is_told_only_the_client_capabilities_mcpmux_can_translate() -> None:
    caps = {
        "sampling": {"tools": {}},
        "elicitation": {"form": {}},
        "roots": {"listChanged": True},
        "tasks": {"requests": {}},  # handshake-only: mcpmux does not carry tasks to a 2026 upstream
        "experimental": {"x": {}},
        "extensions": {"io.example/y": {}},
    }
    assert forwarded_capabilities(caps) == {
        "sampling": {"tools": {}},
        "elicitation": {"form": {}},
        "roots": {"listChanged": True},
    }
    assert forwarded_capabilities({"sampling": {}}) == {"sampling": {}}  # no elicitation: none claimed
    assert forwarded_capabilities({"sampling": True, "roots": None}) == {}  # malformed values dropped
    assert forwarded_capabilities(None) == {}
