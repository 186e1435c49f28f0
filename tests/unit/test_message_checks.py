"""The envelope and field checks at every boundary where bytes become messages (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from mcpmux.jsonrpc import (
    _OTHER_CHECKS,
    STRING_FIELDS,
    MessageError,
    check_fields,
    check_shape,
    parse_message,
)


@pytest.mark.parametrize(
    "msg",
    [
        {"method": None, "id": None, "result": 1},  # found by the fuzzer: a null method is no response
        {"method": "x", "id": [1]},
        {"method": "x", "id": {"a": 1}},
        {"method": "x", "id": 1.5},
        {"method": "x", "id": True},
        {"method": "x", "params": [1]},
        {"id": [1], "result": {}},
        {"id": 1},
        {"method": 5},
    ],
)
def test_an_envelope_mcpmux_cannot_rely_on_is_refused(msg: dict[str, Any]) -> None:
    with pytest.raises(MessageError) as caught:
        check_shape(msg)
    assert caught.value.code == -32600


@pytest.mark.parametrize(
    "params",
    [
        {"name": "t", "_meta": "x"},
        {"name": "t", "_meta": {"progressToken": [1]}},
        {"name": ["t"]},
        {"arguments": {}},
    ],
)
def test_a_tool_call_with_fields_of_the_wrong_type_is_invalid_params(params: dict[str, Any]) -> None:
    with pytest.raises(MessageError) as caught:
        check_fields({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    assert caught.value.code == -32602


def test_a_null_response_id_and_null_params_are_fine() -> None:
    assert parse_message(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}')["id"] is None
    check_fields(parse_message(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":null}'))


@pytest.mark.parametrize("method", ["tools/call", "prompts/get", "resources/read", "logging/setLevel"])
@pytest.mark.parametrize("params", [None, {}])
def test_a_request_that_needs_params_and_has_none_is_invalid_params(method: str, params: Any) -> None:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        msg["params"] = params
    with pytest.raises(MessageError) as caught:
        check_fields(msg)
    assert caught.value.code == -32602


def test_no_method_has_both_string_fields_and_other_checks() -> None:
    # check_fields looks the other checks up only for methods without string fields
    assert not STRING_FIELDS.keys() & _OTHER_CHECKS.keys()


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("notifications/cancelled", {"requestId": None}),
        ("notifications/cancelled", {"requestId": 1.5}),
        ("completion/complete", {"ref": "prompt"}),
    ],
)
def test_params_that_are_not_plain_strings_are_still_checked(method: str, params: Any) -> None:
    with pytest.raises(MessageError) as caught:
        check_fields({"jsonrpc": "2.0", "method": method, "params": params})
    assert caught.value.code == -32602
