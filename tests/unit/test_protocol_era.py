"""Unit tests of protocol/era.py: per-request era classification and the 2026-07-28 envelope ladder."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mcpmux.protocol.constants import (
    CLIENT_CAPABILITIES_META,
    CLIENT_INFO_META,
    HEADER_MISMATCH,
    LOG_LEVEL_META,
    PROTOCOL_VERSION_META,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from mcpmux.protocol.era import (
    EnvelopeError,
    RoutingHeaders,
    decode_header_value,
    encode_header_value,
    is_modern,
    mcp_param_headers,
    read_envelope,
    x_mcp_header_map,
)

MODERN = "2026-07-28"
ENVELOPE = {PROTOCOL_VERSION_META: MODERN, CLIENT_CAPABILITIES_META: {"sampling": {}}}


def call(name: str = "echo", **meta: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": {}, "_meta": {**ENVELOPE, **meta}}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def headers(
    method: str = "tools/call", name: str | None = "echo", version: str | None = MODERN
) -> RoutingHeaders:
    return RoutingHeaders(protocol_version=version, method=method, name=name)


@pytest.mark.parametrize(
    ("session", "header", "msg", "modern"),
    [
        ("abc", MODERN, call(), False),  # a handshake session decides, whatever else is sent
        ("abc", None, call(), False),
        (None, MODERN, {"method": "tools/list"}, True),
        (None, "2099-01-01", {"method": "tools/list"}, True),  # unknown version: the modern ladder refuses it
        (None, "2025-06-18", call(), False),
        (None, None, {"method": "server/discover"}, True),
        (None, None, call(), True),
        (None, None, {"method": "tools/list", "params": {"_meta": {"traceparent": "x"}}}, False),
        (None, None, {"method": "tools/list", "params": ["not", "a", "dict"]}, False),
    ],
)
def test_a_request_is_classified_by_session_header_and_envelope(
    session: str | None, header: str | None, msg: dict[str, Any], modern: bool
) -> None:
    assert is_modern(session, header, msg) is modern


def deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"d": value}
    return value


def test_a_valid_envelope_is_read() -> None:
    envelope = read_envelope(call(**{CLIENT_INFO_META: {"name": "c"}, LOG_LEVEL_META: "info"}), headers())
    assert envelope.version == MODERN
    assert envelope.capabilities == {"sampling": {}}
    assert envelope.client_info == {"name": "c"}
    assert envelope.log_level == "info"


@pytest.mark.parametrize(
    ("msg", "code", "words"),
    [
        ({"method": "tools/list"}, -32602, "params._meta must be an object"),
        ({"method": "x", "params": {"_meta": {PROTOCOL_VERSION_META: MODERN}}}, -32602, "clientCapabilities"),
        (call(**{CLIENT_CAPABILITIES_META: []}), -32602, "must be an object"),
        (call(**{CLIENT_INFO_META: "me"}), -32602, "must be an object"),
        (call(**{LOG_LEVEL_META: "loud"}), -32602, "Invalid log level"),
        (call(**{LOG_LEVEL_META: ["debug"]}), -32602, "Invalid log level"),  # unhashable: was a TypeError
        (call(**{LOG_LEVEL_META: {"debug": 1}}), -32602, "Invalid log level"),
        (call(**{CLIENT_CAPABILITIES_META: {"x": deep_dict(300)}}), -32602, "nested too deeply"),
        (call(**{CLIENT_INFO_META: {"name": deep_dict(300)}}), -32602, "nested too deeply"),
    ],
)
def test_a_bad_envelope_gets_invalid_params(msg: dict[str, Any], code: int, words: str) -> None:
    with pytest.raises(EnvelopeError, match=words) as caught:
        read_envelope(msg, None)
    assert caught.value.code == code


def test_the_nesting_check_is_skipped_only_for_capabilities_equal_to_ones_that_passed() -> None:
    fine = call(**{CLIENT_CAPABILITIES_META: {"x": deep_dict(100)}})
    deep = call(**{CLIENT_CAPABILITIES_META: {"x": deep_dict(300)}})
    for msg in (fine, deep, deep, fine, fine, deep):  # a refused value is never remembered as checked
        if msg is deep:
            with pytest.raises(EnvelopeError, match="nested too deeply"):
                read_envelope(msg, None)
        else:
            assert read_envelope(msg, None).capabilities == {"x": deep_dict(100)}


def test_an_unsupported_version_gets_32022_listing_every_version_the_proxy_speaks() -> None:
    msg = call(**{PROTOCOL_VERSION_META: "2099-01-01"})
    with pytest.raises(EnvelopeError) as caught:
        read_envelope(msg, headers(version="2099-01-01"))
    assert caught.value.code == UNSUPPORTED_PROTOCOL_VERSION
    assert caught.value.data == {
        "supported": [MODERN],
        "requested": "2099-01-01",
    }


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        (headers(version=None), "MCP-Protocol-Version"),
        (headers(version="2025-06-18"), "MCP-Protocol-Version"),
        (headers(method=None), "Mcp-Method"),
        (headers(method="tools/list"), "Mcp-Method"),
        (headers(name=None), "Mcp-Name"),
        (headers(name="other"), "Mcp-Name"),
        (headers(name="=?base64?b3RoZXI=?="), "Mcp-Name"),
        (headers(name="=?base64?!!!?="), "Mcp-Name"),
    ],
)
def test_headers_that_disagree_with_the_body_get_header_mismatch(sent: RoutingHeaders, words: str) -> None:
    with pytest.raises(EnvelopeError, match=words) as caught:
        read_envelope(call(), sent)
    assert caught.value.code == HEADER_MISMATCH


def test_the_header_rung_comes_before_the_version_rung() -> None:
    msg = call(**{PROTOCOL_VERSION_META: "2099-01-01"})
    with pytest.raises(EnvelopeError) as caught:
        read_envelope(msg, headers(version=MODERN))
    assert caught.value.code == HEADER_MISMATCH


def test_a_non_ascii_name_travels_base64_encoded() -> None:
    name = "grüße ☃"
    encoded = "=?base64?" + base64.b64encode(name.encode()).decode() + "?="
    assert read_envelope(call(name), headers(name=encoded)).version == MODERN


def test_mcp_name_is_only_checked_for_name_bearing_methods() -> None:
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}}
    assert read_envelope(msg, headers(method="tools/list", name="anything")).version == MODERN


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        (None, None),
        ("plain", "plain"),
        ("=?base64?aMOk?=", "hä"),
        ("=?base64?aMOk=?=", None),  # padding that is not canonical
        ("=?base64?//8=?=", None),  # not UTF-8
    ],
)
def test_header_values_decode_like_the_sdk_encodes_them(value: str | None, decoded: str | None) -> None:
    assert decode_header_value(value) == decoded


def test_x_mcp_header_annotations_are_found_at_any_depth_and_bad_tokens_skipped() -> None:
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "bad": {"type": "string", "x-mcp-header": "Bad: injected\r\nX-Evil: 1"},
            "nested": {"type": "object", "properties": {"tier": {"type": "integer", "x-mcp-header": "Tier"}}},
            "plain": {"type": "string"},
        },
    }
    assert x_mcp_header_map(schema) == {("region",): "Region", ("nested", "tier"): "Tier"}
    assert x_mcp_header_map("not a schema") == {}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"region": "eu", "nested": {"tier": 2}}, {"mcp-param-Region": "eu", "mcp-param-Tier": "2"}),
        ({"region": True}, {"mcp-param-Region": "true"}),
        ({"region": "grüße"}, {"mcp-param-Region": "=?base64?Z3LDvMOfZQ==?="}),
        ({"region": None, "nested": "x"}, {}),
        ({"region": ["list"]}, {}),
        ("not arguments", {}),
    ],
)
def test_mcp_param_headers_mirror_scalar_arguments(arguments: Any, expected: dict[str, str]) -> None:
    header_map = {("region",): "Region", ("nested", "tier"): "Tier"}
    assert mcp_param_headers(header_map, arguments) == expected


@pytest.mark.parametrize("value", ["plain", " edge ", "grüße", "=?base64?abc?=", "line\nbreak", ""])
def test_header_values_round_trip(value: str) -> None:
    encoded = encode_header_value(value)
    assert encoded.isascii() and encoded.isprintable()
    assert decode_header_value(encoded) == value
