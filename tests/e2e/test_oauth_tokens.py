"""OAuth front, token rules: real signed JWTs from a local authorization server, checked by the verifier."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import anyio
import jwt
import pytest

from mcpmux.config.model import OAuthIntrospection, OAuthResource
from mcpmux.oauth.keys import MIN_REFRESH_SECONDS
from mcpmux.oauth.resource import ResourceGuard
from mcpmux.oauth.tokens import InvalidToken, TokenVerifier, normalize_resource
from oauth_as import AuthServer, new_key, running_auth_server

pytestmark = pytest.mark.anyio

RESOURCE = "http://127.0.0.1:9/github/mcp"
ACCEPTED = frozenset({normalize_resource(RESOURCE)})
BOUND = 20


@pytest.fixture(scope="module")
def auth() -> Iterator[AuthServer]:
    with running_auth_server() as server:
        yield server


def verifier(auth: AuthServer, **overrides: Any) -> TokenVerifier:
    return TokenVerifier(OAuthResource(issuer=auth.issuer, authorization_servers=(auth.issuer,), **overrides))


async def verify(auth: AuthServer, token: str, **overrides: Any) -> Any:
    with anyio.fail_after(BOUND):
        return await verifier(auth, **overrides).verify(token, ACCEPTED)


async def refused(auth: AuthServer, token: str, **overrides: Any) -> str:
    with pytest.raises(InvalidToken) as info:
        await verify(auth, token, **overrides)
    return str(info.value)


@pytest.mark.parametrize("kid", ["key-0-RS256", "key-1-ES256"])
async def test_a_token_signed_by_a_published_key_for_this_resource_is_accepted(
    auth: AuthServer, kid: str
) -> None:
    claims = await verify(auth, auth.mint({"aud": RESOURCE, "scope": "mcp read"}, kid=kid))
    assert claims.principal.endswith(":alice") and claims.scopes == {"mcp", "read"}


async def test_the_audience_may_carry_a_trailing_slash_or_be_one_of_a_list(auth: AuthServer) -> None:
    await verify(auth, auth.mint({"aud": RESOURCE + "/"}))
    await verify(auth, auth.mint({"aud": ["https://elsewhere.example", RESOURCE]}))


async def test_a_token_for_another_resource_is_refused(auth: AuthServer) -> None:
    assert "aud" in await refused(auth, auth.mint({"aud": "http://127.0.0.1:9/other/mcp"}))
    assert "aud" in await refused(auth, auth.mint({"aud": "http://127.0.0.1:9/github/mcpx"}))
    assert "invalid" in (await refused(auth, auth.mint({"aud": None}))).lower()  # aud is required


async def test_an_extra_configured_audience_is_accepted(auth: AuthServer) -> None:
    token = auth.mint({"aud": "api://mcpmux"})
    with anyio.fail_after(BOUND):
        await verifier(auth).verify(token, ACCEPTED | {"api://mcpmux"})


async def test_a_bad_signature_is_refused(auth: AuthServer) -> None:
    impostor = new_key("key-0-RS256")  # same kid, another private key
    payload = {"iss": auth.issuer, "sub": "mallory", "aud": RESOURCE, "exp": int(time.time()) + 60}
    token = jwt.encode(payload, impostor.private, algorithm="RS256", headers={"kid": impostor.kid})
    assert "signature" in await refused(auth, token)
    genuine = auth.mint({"aud": RESOURCE})
    head, _body, signature = genuine.split(".")
    tampered = base64.urlsafe_b64encode(b'{"sub":"root"}').rstrip(b"=").decode()
    assert "signature" in await refused(auth, f"{head}.{tampered}.{signature}")


async def test_expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway(auth: AuthServer) -> None:
    now = int(time.time())
    assert "expired" in await refused(auth, auth.mint({"aud": RESOURCE, "exp": now - 120}))
    assert "nbf" in await refused(auth, auth.mint({"aud": RESOURCE, "nbf": now + 120}))
    await verify(auth, auth.mint({"aud": RESOURCE, "exp": now - 5}))  # within the 30 s leeway
    assert "expired" in await refused(auth, auth.mint({"aud": RESOURCE, "exp": now - 5}), leeway_seconds=0)
    assert "invalid" in (await refused(auth, auth.mint({"aud": RESOURCE, "exp": None}))).lower()


async def test_another_issuer_is_refused(auth: AuthServer) -> None:
    assert "iss" in await refused(auth, auth.mint({"aud": RESOURCE, "iss": "http://127.0.0.1:1"}))


async def test_alg_none_and_hmac_with_the_public_key_are_refused(auth: AuthServer) -> None:
    payload = {"iss": auth.issuer, "sub": "mallory", "aud": RESOURCE, "exp": int(time.time()) + 60}
    unsigned = jwt.encode(payload, None, algorithm="none", headers={"kid": "key-0-RS256"})
    assert "algorithm" in await refused(auth, unsigned)
    public_pem = auth.keys["key-0-RS256"].public_jwk()["n"].encode()
    forged = jwt.encode(payload, public_pem, algorithm="HS256", headers={"kid": "key-0-RS256"})
    assert "algorithm" in await refused(auth, forged)


async def test_an_algorithm_not_configured_is_refused(auth: AuthServer) -> None:
    token = auth.mint({"aud": RESOURCE}, kid="key-1-ES256")
    assert "algorithm" in await refused(auth, token, algorithms=("RS256",))


async def test_an_algorithm_that_does_not_fit_the_key_is_refused(auth: AuthServer) -> None:
    rsa = auth.keys["key-0-RS256"]
    payload = {"iss": auth.issuer, "sub": "mallory", "aud": RESOURCE, "exp": int(time.time()) + 60}
    token = jwt.encode(
        payload, rsa.private, algorithm="PS256", headers={"kid": rsa.kid}
    )  # the JWK says RS256
    assert "unknown key" in await refused(auth, token)


async def test_an_unknown_kid_refreshes_the_jwks_at_a_bounded_rate(auth: AuthServer) -> None:
    now = [1000.0]
    check = TokenVerifier(
        OAuthResource(issuer=auth.issuer, authorization_servers=(auth.issuer,)), clock=lambda: now[0]
    )
    with anyio.fail_after(BOUND):
        await check.verify(auth.mint({"aud": RESOURCE}), ACCEPTED)
        fetches = auth.jwks_fetches
        auth.add_key("rotated", "ES256")  # the issuer rotates: a new key, published
        for _ in range(3):  # within the rate limit the JWKS is not fetched again
            with pytest.raises(InvalidToken, match="unknown key"):
                await check.verify(auth.mint({"aud": RESOURCE}, kid="rotated"), ACCEPTED)
        assert auth.jwks_fetches == fetches
        now[0] += MIN_REFRESH_SECONDS
        claims = await check.verify(auth.mint({"aud": RESOURCE}, kid="rotated"), ACCEPTED)
        assert claims.principal.endswith(":alice") and auth.jwks_fetches == fetches + 1
        await check.verify(auth.mint({"aud": RESOURCE}, kid="key-0-RS256"), ACCEPTED)  # known: no fetch
    assert auth.jwks_fetches == fetches + 1


async def test_an_opaque_token_is_introspected_and_the_answer_cached(auth: AuthServer) -> None:
    spec = OAuthIntrospection(
        client_id=auth.introspection_client[0], client_secret=auth.introspection_client[1]
    )
    auth.opaque["opaque-1"] = {"sub": "bob", "aud": RESOURCE, "scope": "mcp", "exp": int(time.time()) + 60}
    check = verifier(auth, introspection=spec)
    before = auth.introspections
    with anyio.fail_after(BOUND):
        first = await check.verify("opaque-1", ACCEPTED)
        second = await check.verify("opaque-1", ACCEPTED)
        with pytest.raises(InvalidToken, match="not active"):
            await check.verify("opaque-unknown", ACCEPTED)
    assert first == second and first.principal.endswith(":bob") and first.scopes == {"mcp"}
    assert auth.introspections == before + 2
    assert "not a JWT" in await refused(auth, "opaque-1")  # without introspection configured


async def test_guard_maps_scopes_to_one_token_scope_object_per_principal(auth: AuthServer) -> None:
    from mcpmux.config.model import TokenScope, ToolFilter

    grant = TokenScope("", servers=("github",), tool_filter=ToolFilter("allow", ("github__get_*",)))
    guard = ResourceGuard(
        OAuthResource(issuer=auth.issuer, authorization_servers=(auth.issuer,), scopes=(("gh", grant),))
    )
    with anyio.fail_after(BOUND):
        first = await guard.admit(auth.mint({"aud": RESOURCE, "scope": "gh"}), ACCEPTED, ["github"])
        again = await guard.admit(auth.mint({"aud": RESOURCE, "scope": "gh"}), ACCEPTED, ["github"])
        other = await guard.admit(
            auth.mint({"aud": RESOURCE, "scope": "gh", "sub": "eve"}), ACCEPTED, ["github"]
        )
        none = await guard.admit(auth.mint({"aud": RESOURCE, "scope": "x"}), ACCEPTED, ["github"])
    assert first is again and first is not other
    assert getattr(none, "status", None) == 403 and none.scope == ("gh",)  # type: ignore[union-attr]


async def test_an_oversized_metadata_document_is_not_read(auth: AuthServer) -> None:
    from mcpmux.oauth.fetch import MAX_DOCUMENT_BYTES

    auth.metadata_padding = MAX_DOCUMENT_BYTES + 1  # a hostile or broken issuer
    try:
        assert "unknown key" in await refused(auth, auth.mint({"aud": RESOURCE}))
    finally:
        auth.metadata_padding = 0
    await verify(auth, auth.mint({"aud": RESOURCE}))  # a fresh verifier reads the normal document


async def test_a_jwks_or_introspection_url_that_is_no_url_refuses_the_token_without_a_crash(
    auth: AuthServer,
) -> None:
    token = auth.mint({"aud": RESOURCE})
    assert "unknown key" in await refused(auth, token, jwks_uri="http://[::1")  # raised InvalidURL before
    spec = OAuthIntrospection(client_id="c", client_secret="s", endpoint="http://[::1")
    assert "could not be introspected" in await refused(auth, "opaque-x", introspection=spec)
