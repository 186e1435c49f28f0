"""Unit tests of protocol/state.py: sealed, caller-bound MRTR requestState with expiry and key rotation."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from mcpmux.protocol.state import StateError, StateKey, StateSealer, caller_digest, request_binding

OLD = StateKey("k1", b"o" * 32)
NEW = StateKey("k2", b"n" * 32)
REQ = request_binding("tools/call", {"name": "ask"})
NOW = 1_000_000.0


def sealed(sealer: StateSealer | None = None, payload: object = None, caller: str | None = "tok-a") -> str:
    sealer = sealer or StateSealer([OLD], ttl_seconds=60)
    return sealer.seal(payload if payload is not None else {"call": 7}, caller=caller, request=REQ, now=NOW)


def test_a_state_opens_for_its_caller_and_request_before_it_expires() -> None:
    sealer = StateSealer([OLD], ttl_seconds=60)
    state = sealed(sealer)
    assert sealer.open(state, caller="tok-a", request=REQ, now=NOW + 59) == {"call": 7}


def test_no_token_is_a_caller_too() -> None:
    sealer = StateSealer([OLD])
    state = sealed(sealer, caller=None)
    assert sealer.open(state, caller=None, request=REQ, now=NOW) == {"call": 7}
    with pytest.raises(StateError, match="another caller"):
        sealer.open(state, caller="tok-a", request=REQ, now=NOW)


def test_the_token_itself_is_never_in_the_state() -> None:
    state = sealed(caller="secret-token-value")
    body = base64.urlsafe_b64decode(state.split(".")[1] + "==")
    assert b"secret-token-value" not in body
    sub = orjson.loads(body)["sub"]
    assert sub == caller_digest("secret-token-value", OLD.secret)
    # not a plain hash a client could test guessed tokens against (it was sha256 of the token)
    plain = {
        hashlib.sha256(t.encode()).hexdigest() for t in ("secret-token-value", "token secret-token-value")
    }
    assert sub not in plain and sub != caller_digest("secret-token-value", b"k" * 32)


@pytest.mark.parametrize(
    ("caller", "binding", "now", "words"),
    [
        ("tok-b", REQ, NOW, "another caller"),
        ("tok-a", request_binding("tools/call", {"name": "other"}), NOW, "another request"),
        ("tok-a", request_binding("prompts/get", {"name": "ask"}), NOW, "another request"),
        ("tok-a", REQ, NOW + 61, "expired"),
    ],
)
def test_a_state_is_refused_for_another_caller_request_or_after_expiry(
    caller: str, binding: str, now: float, words: str
) -> None:
    sealer = StateSealer([OLD], ttl_seconds=60)
    with pytest.raises(StateError, match=words):
        sealer.open(sealed(sealer), caller=caller, request=binding, now=now)


def test_a_tampered_payload_is_refused() -> None:
    sealer = StateSealer([OLD], ttl_seconds=60)
    prefix, body, mac = sealed(sealer).split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=="))
    claims["data"] = {"call": 8}
    forged_body = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    with pytest.raises(StateError, match="altered"):
        sealer.open(f"{prefix}.{forged_body}.{mac}", caller="tok-a", request=REQ, now=NOW)


@pytest.mark.parametrize(
    "junk", ["", "mx1.", "mx1.a.b", "mx1.!!!.???", "v1.abc", 42, None, "mx1." + "a" * 9000, "mx1.bnVsbA.AAAA"]
)
def test_garbage_is_refused_cleanly(junk: object) -> None:
    with pytest.raises(StateError):
        StateSealer([OLD]).open(junk, caller="tok-a", request=REQ, now=NOW)


def test_rotation_signs_with_the_first_key_and_accepts_every_listed_key() -> None:
    before = StateSealer([OLD], ttl_seconds=60)
    during = StateSealer([NEW, OLD], ttl_seconds=60)
    after = StateSealer([NEW], ttl_seconds=60)
    old_state = sealed(before)
    new_state = sealed(during)
    assert orjson.loads(base64.urlsafe_b64decode(new_state.split(".")[1] + "=="))["kid"] == "k2"
    assert during.open(old_state, caller="tok-a", request=REQ, now=NOW) == {"call": 7}
    assert after.open(new_state, caller="tok-a", request=REQ, now=NOW) == {"call": 7}
    with pytest.raises(StateError, match="unknown key"):
        after.open(old_state, caller="tok-a", request=REQ, now=NOW)


def test_a_key_reusing_an_id_with_another_secret_does_not_open_old_states() -> None:
    state = sealed(StateSealer([OLD]))
    with pytest.raises(StateError, match="altered"):
        StateSealer([StateKey("k1", b"x" * 32)]).open(state, caller="tok-a", request=REQ, now=NOW)


def test_short_secrets_and_empty_key_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StateKey("k", b"short")
    with pytest.raises(ValueError, match="at least one key"):
        StateSealer([])


def test_request_binding_uses_the_uri_for_resources_read() -> None:
    assert request_binding("resources/read", {"uri": "file:///a", "name": "n"}) == "resources/read\nfile:///a"
    assert request_binding("tools/call", None) == "tools/call\n"
