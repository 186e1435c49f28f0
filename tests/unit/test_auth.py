"""Unit tests of core/auth.py: Authorization parsing and constant-time token matching."""

from __future__ import annotations

import hmac

import pytest

from mcpmux.config.model import TokenScope
from mcpmux.core.auth import TokenSet, token_from_authorization


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("bEaReR abc", "abc"),
        ("Bearer\tabc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("abc", "abc"),
        ("  abc  ", "abc"),
        ("Bearerabc", "Bearerabc"),
        ("Basic abc", "Basic abc"),
        ("Bearer a b", "a b"),
        ("Bearer Bearer x", "Bearer x"),
    ],
)
def test_token_is_read_from_bearer_or_raw_header(header: str, token: str) -> None:
    assert token_from_authorization(header) == token


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "bearer ", "Bearer    ", "\t"])
def test_header_without_a_token_gives_none(header: str | None) -> None:
    assert token_from_authorization(header) is None


def test_empty_token_set_means_auth_is_off() -> None:
    tokens = TokenSet([])
    assert not tokens.enabled
    assert len(tokens) == 0
    assert tokens.match("anything") is None


def test_configured_tokens_enable_auth() -> None:
    assert TokenSet([TokenScope("t")]).enabled


def test_match_returns_the_scope_of_the_presented_token() -> None:
    first, second = TokenScope("alpha"), TokenScope("beta", servers=("fetch",))
    tokens = TokenSet([first, second])
    assert tokens.match("alpha") is first
    assert tokens.match("beta") is second


@pytest.mark.parametrize("presented", [None, "", "alph", "alphaa", "ALPHA", " alpha", "gamma"])
def test_match_refuses_anything_but_an_exact_token(presented: str | None) -> None:
    assert TokenSet([TokenScope("alpha")]).match(presented) is None


def test_match_compares_non_ascii_tokens_as_utf8() -> None:
    scope = TokenScope("clé-☃")
    tokens = TokenSet([scope])
    assert tokens.match("clé-☃") is scope
    assert tokens.match("cle-☃") is None


def test_match_never_raises_on_unencodable_text() -> None:
    assert TokenSet([TokenScope("a")]).match("\ud800") is None


def test_the_first_of_duplicate_tokens_wins() -> None:
    first, second = TokenScope("same"), TokenScope("same", servers=("x",))
    assert TokenSet([first, second]).match("same") is first


def test_match_compares_against_every_token_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    tokens = TokenSet([TokenScope("one"), TokenScope("two"), TokenScope("three")])
    assert tokens.match("one") is not None
    assert calls == [(b"one", b"one"), (b"two", b"one"), (b"three", b"one")]
    calls.clear()
    assert tokens.match("nope") is None
    assert len(calls) == 3
