"""Hypothesis fuzzing of the pure checks that hostile 2026 and cluster input reaches first: sealed
session ids and forwarding proofs, the retry's replica hint, sealed `requestState`, the 2026 envelope
and header values. Each either accepts what this proxy made or refuses with its own error, never
anything else. Few examples by default; MCPMUX_FUZZ_EXAMPLES=N runs N.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_kit import fuzz_settings, hostile_values, json_values
from mcpmux.cluster.seal import Sealer, retry_replica
from mcpmux.protocol.era import EnvelopeError, RoutingHeaders, decode_header_value, read_envelope
from mcpmux.protocol.state import StateError, StateKey, StateSealer

SECRET = "fuzz-cluster-secret-0123456789abcdef"
SEALER = Sealer(SECRET, "abcdef012345")
STATES = StateSealer([StateKey("k1", b"k" * 32)])
NOW = 1_700_000_000.0

texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="0123456789abcdef.", max_size=80),
    st.builds(lambda s: SEALER.session_id()[: len(s)] + s, st.text(max_size=8)),  # near-genuine ids
    # the genuine shape (12.x.32, replica.stamp.64) with any characters in the parts (a header's obs-text)
    st.builds(lambda r, m: f"abcdef012345.{r}.{m}", st.text(max_size=4), st.text(min_size=32, max_size=32)),
    st.builds(lambda t, m: f"abcdef012345.{t}.{m}", st.text(max_size=12), st.text(min_size=64, max_size=64)),
)


@pytest.mark.parametrize(
    "forged",
    [
        "abcdef012345.aa." + "\xe9" * 32,
        "abcdef012345.1700000000." + "\xe9" * 64,
        "abcdef012345.\u00b2." + "0" * 64,
    ],
)
def test_non_ascii_ids_and_proofs_are_refused_not_raised(forged: str) -> None:
    assert SEALER.owner(forged) is None  # raised TypeError (compare_digest) or ValueError (int("²"))
    assert SEALER.proof_ok(forged, "GET", "/p", "s", NOW) is False


@fuzz_settings(200)
@given(texts)
def test_a_session_id_opens_only_when_this_cluster_sealed_it(session_id: str) -> None:
    owner = SEALER.owner(session_id)
    assert owner is None or owner == "abcdef012345"
    if owner is not None:  # then it is byte for byte an id the cluster made: body and MAC agree
        body, _, mac = session_id.rpartition(".")
        assert Sealer(SECRET, "x").owner(session_id) == owner and len(mac) == 32 and body


@fuzz_settings(200)
@given(texts, st.sampled_from(["GET", "POST"]), st.text(max_size=20), texts)
def test_a_forwarding_proof_is_checked_without_raising(proof: str, method: str, path: str, sid: str) -> None:
    assert SEALER.proof_ok(proof, method, path, sid, NOW) in (True, False)
    genuine = SEALER.proof(method, path, sid, NOW)
    assert SEALER.proof_ok(genuine, method, path, sid, NOW)
    assert not SEALER.proof_ok(genuine, method, path + "x", sid, NOW)


def state_like(payload: Any) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)).rstrip(b"=")
    return "mx1." + body.decode() + ".AAAA"


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: orjson.dumps({"params": {"requestState": v}})),
    json_values.map(lambda v: orjson.dumps({"params": {"requestState": state_like({"kid": v})}})),
)


@fuzz_settings(200)
@given(bodies)
def test_the_retry_hint_is_a_replica_id_or_nothing(body: bytes) -> None:
    hint = retry_replica(body)
    assert hint is None or (isinstance(hint, str) and len(hint) == 12)


states = st.one_of(
    hostile_values, json_values.map(state_like), st.text(max_size=100).map(lambda s: "mx1." + s)
)


@fuzz_settings(200)
@given(states)
def test_a_forged_request_state_is_a_state_error(state: Any) -> None:
    with pytest.raises(StateError):
        STATES.open(state, caller="tok", request="tools/call\nx", now=NOW)


@fuzz_settings(200)
@given(st.one_of(hostile_values, st.dictionaries(st.sampled_from(["_meta", "name", "uri"]), hostile_values)))
def test_any_params_are_an_envelope_or_an_envelope_error(params: Any) -> None:
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = RoutingHeaders("2026-07-28", "tools/call", "x")
    try:
        read_envelope(msg, headers)
    except EnvelopeError as exc:
        assert type(exc.code) is int


@fuzz_settings(200)
@given(st.one_of(st.text(max_size=60), st.text(max_size=40).map(lambda s: f"=?base64?{s}?=")))
def test_a_header_value_decodes_or_is_none(value: str) -> None:
    decoded = decode_header_value(value)
    assert decoded is None or isinstance(decoded, str)
