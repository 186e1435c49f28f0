"""A 2026 upstream's own `inputRequests` keys survive the way through mcpmux to a 2026 client."""

from __future__ import annotations

from mcpmux.jsonrpc import request
from mcpmux.protocol.constants import INPUT_KEY_META
from mcpmux.protocol.translate import take_input_key, with_input_key
from mcpmux.relay.mrtr import Suspension

ASK = {"message": "Your name?", "requestedSchema": {"type": "object"}}


def test_the_key_travels_in_meta_and_comes_out_without_a_trace() -> None:
    carried = with_input_key({**ASK, "_meta": {"com.example/x": 1}}, "user_name")
    assert carried["_meta"][INPUT_KEY_META] == "user_name"
    assert take_input_key(carried) == ({**ASK, "_meta": {"com.example/x": 1}}, "user_name")
    assert take_input_key(with_input_key(ASK, "k")) == (ASK, "k")
    assert take_input_key(ASK) == (ASK, None)
    assert with_input_key("not params", "k") == "not params"


def test_a_suspension_asks_under_the_upstreams_key_and_takes_answers_by_it() -> None:
    suspension = Suspension("binding")
    suspension.asked["c1-7"] = request("c1-7", "elicitation/create", with_input_key(ASK, "user_name"))
    suspension.asked["c1-8"] = request("c1-8", "roots/list", {})  # a handshake-era request: no key
    asked = suspension.input_required(None)["inputRequests"]
    assert asked == {
        "user_name": {"method": "elicitation/create", "params": ASK},
        "c1-8": {"method": "roots/list", "params": {}},
    }
    answers, missing = suspension.take_answers({"user_name": {"action": "accept"}})
    assert [a["id"] for a in answers] == ["c1-7"] and missing
    answers, missing = suspension.take_answers({"c1-8": {"roots": []}})
    assert [a["id"] for a in answers] == ["c1-8"] and not missing


def test_two_requests_under_one_key_are_told_apart_by_our_ids() -> None:
    suspension = Suspension("binding")
    for rid in ("c1-1", "c1-2"):
        suspension.asked[rid] = request(rid, "elicitation/create", with_input_key(ASK, "same"))
    assert set(suspension.input_required(None)["inputRequests"]) == {"same", "c1-2"}
