"""OAuth identities: a token's principal names its kind and issuer, so no two callers share what binds."""

from __future__ import annotations

from typing import Any

import pytest

from mcpmux.config.model import OAuthResource, TokenScope
from mcpmux.oauth.resource import ResourceGuard
from mcpmux.oauth.tokens import InvalidToken, claims_of, principal_of
from mcpmux.relay.mrtr import caller_of

ISSUER = "https://idp.example/"
OTHER = "https://other.example/"


def guard(issuer: str = ISSUER) -> ResourceGuard:
    return ResourceGuard(OAuthResource(issuer=issuer, authorization_servers=(issuer,)))


def scope_of(payload: dict[str, Any], issuer: str = ISSUER, on: ResourceGuard | None = None) -> TokenScope:
    scope = (on or guard(issuer)).token_scope(claims_of(payload, issuer))
    assert scope is not None
    return scope


def test_a_sub_spelled_like_another_tokens_client_id_is_someone_else() -> None:
    door = guard()
    user = scope_of({"sub": "svc"}, on=door)
    machine = scope_of({"client_id": "svc"}, on=door)  # client credentials: no `sub`
    assert user is not machine  # the same TokenScope object bound both to one session before
    assert user.token != machine.token and caller_of(user) != caller_of(machine)


def test_the_same_sub_of_two_issuers_names_two_principals() -> None:
    assert principal_of({"sub": "alice"}, ISSUER) != principal_of({"sub": "alice"}, OTHER)
    assert caller_of(scope_of({"sub": "alice"})) != caller_of(scope_of({"sub": "alice"}, OTHER))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # a colon in a value must not shift it into another field
        (({"sub": "a:b"}, "https://x/"), ({"sub": "b"}, "https://x/:a")),
        (({"sub": "sub:x"}, ISSUER), ({"client_id": "x"}, ISSUER)),
        (({"sub": "a%3Ab"}, ISSUER), ({"sub": "a:b"}, ISSUER)),
    ],
)
def test_values_with_separators_cannot_spell_another_principal(first: Any, second: Any) -> None:
    assert principal_of(*first) != principal_of(*second)


def test_the_same_principal_with_the_same_grants_is_one_scope_object() -> None:
    door = guard()
    assert scope_of({"sub": "alice", "client_id": "app1"}, on=door) is scope_of(
        {"sub": "alice", "client_id": "app2"}, on=door
    )


def test_a_static_token_spelled_like_an_oauth_label_is_another_caller() -> None:
    oauth = scope_of({"sub": "alice"})
    static = TokenScope(oauth.token)  # an operator's static token with the same text
    assert caller_of(static) != caller_of(oauth)


@pytest.mark.parametrize("payload", [{}, {"sub": 7}, {"client_id": ""}, {"sub": "", "client_id": None}])
def test_a_token_naming_no_one_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken, match="names no subject"):
        principal_of(payload, ISSUER)


def test_the_principal_holds_no_part_of_the_token() -> None:
    principal = principal_of({"sub": "alice", "jti": "secret-id"}, ISSUER)
    assert principal == "sub:https%3A%2F%2Fidp.example%2F:alice"


def test_a_principal_whose_session_holds_its_scope_keeps_that_scope_beyond_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from mcpmux.oauth import resource

    monkeypatch.setattr(resource, "PRINCIPAL_CACHE_ENTRIES", 2)
    door = guard()
    held = scope_of({"sub": "alice"}, on=door)  # as a client session holds it
    for n in range(5):  # more principals than the cache keeps
        scope_of({"sub": f"user-{n}"}, on=door)
    gc.collect()
    assert scope_of({"sub": "alice"}, on=door) is held  # a new object before: alice's session was 404
    assert len(door._principals) == 2 and len(door._held) <= 3  # those nothing holds are gone
