"""Validate an access token: a JWT against the issuer's JWKS, or an opaque one by introspection."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
import jwt

from ..config.model import OAuthResource
from .fetch import FetchError, fetch_json
from .keys import Clock, IssuerMetadata, KeySet

MAX_TOKEN_BYTES = 16 * 1024
INTROSPECTION_CACHE_ENTRIES = 10_000
INTROSPECTION_NEGATIVE_SECONDS = 10.0
INTROSPECTION_CONCURRENCY = 8


class InvalidToken(Exception):
    """The token is not valid here; the message is safe to send back (it never contains the token)."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What mcpmux uses of a validated token."""

    issuer: str
    principal: str  # who, unambiguously: see `principal_of`
    scopes: frozenset[str]


def normalize_resource(url: str) -> str:
    """A resource URL compared the way clients build it: scheme and host lower case, no fragment, no
    trailing slash (`https://h/mcp` and `https://h/mcp/` name the same resource)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # not a URL (a bad IPv6 literal): compared as it is, so it matches no resource URL
        return url.strip()
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def granted_scopes(payload: dict[str, Any]) -> frozenset[str]:
    """OAuth scopes of a token: `scope` (space separated, RFC 9068 / 7662) or `scp` (a list or string)."""
    value = payload.get("scope", payload.get("scp"))
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def check_audience(payload: dict[str, Any], accepted: Collection[str]) -> None:
    """RFC 8707: the token must have been issued for this resource (one of `accepted`, normalized)."""
    aud = payload.get("aud")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(v, str) and normalize_resource(v) in accepted for v in values):
        raise InvalidToken("The token was not issued for this resource (aud)")


def principal_of(payload: dict[str, Any], issuer: str) -> str:
    """Who a token stands for: `sub:<issuer>:<sub>`, else (no `sub`) `client:<issuer>:<client_id>`,
    each part percent-encoded, so that neither a `sub` spelled like another token's `client_id`, nor the
    same `sub` from another issuer, nor a value with a colon in it, names the same principal."""
    sub = payload.get("sub")
    kind, value = ("client", payload.get("client_id")) if sub in (None, "") else ("sub", sub)
    if not isinstance(value, str) or not value:
        raise InvalidToken("The token names no subject (sub)")
    return f"{kind}:{quote(issuer, safe='')}:{quote(value, safe='')}"


def claims_of(payload: dict[str, Any], issuer: str) -> Claims:
    return Claims(issuer=issuer, principal=principal_of(payload, issuer), scopes=granted_scopes(payload))


class TokenVerifier:
    """Validates tokens for one `oauth` configuration; its JWKS and introspection results are cached."""

    def __init__(self, config: OAuthResource, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.metadata = IssuerMetadata(config.issuer, clock)
        self.keys = KeySet(self._jwks_uri, clock)
        self._introspected: OrderedDict[bytes, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self._introspecting = anyio.CapacityLimiter(INTROSPECTION_CONCURRENCY)

    async def _jwks_uri(self) -> str:
        return self.config.jwks_uri or await self.metadata.endpoint("jwks_uri")

    async def verify(self, token: str, accepted: Collection[str]) -> Claims:
        """Claims of a valid token whose audience is one of `accepted` (normalized); else InvalidToken."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("The token is too long")
        if token.count(".") == 2:
            payload = await self._verify_jwt(token)
        elif self.config.introspection is not None:
            payload = await self._introspect(token)
        else:
            raise InvalidToken("The token is not a JWT")
        check_audience(payload, accepted)
        return claims_of(payload, self.config.issuer)

    async def _verify_jwt(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.config.algorithms:
            raise InvalidToken(f"The token's algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        key = await self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        if key is None:
            raise InvalidToken("The token is signed with an unknown key")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key=key.jwk.key,
                algorithms=[alg],
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"], "verify_aud": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(_jwt_error_message(exc)) from None
        return payload

    async def _introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662, cached briefly by the token's hash (never the token itself)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = time.monotonic()
        cached = self._introspected.get(digest)
        if cached is None or cached[0] <= now:
            async with self._introspecting:
                payload = await self._ask_introspection(token)
            self._remember(digest, payload)
        else:
            payload = cached[1]
        if payload is None:
            raise InvalidToken("The token is not active")
        return payload

    async def _ask_introspection(self, token: str) -> dict[str, Any] | None:
        spec = self.config.introspection
        assert spec is not None
        try:
            endpoint = spec.endpoint or await self.metadata.endpoint("introspection_endpoint")
            answer = await fetch_json(
                "POST",
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(spec.client_id, spec.client_secret),
            )
        except FetchError:
            raise InvalidToken("The token could not be introspected") from None
        return self._active_payload(answer)

    def _active_payload(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        if answer.get("active") is not True:
            return None
        issuer = answer.get("iss")
        if issuer is not None and issuer != self.config.issuer:
            return None
        now, leeway = time.time(), self.config.leeway_seconds
        exp, nbf = answer.get("exp"), answer.get("nbf")
        if isinstance(exp, int | float) and exp + leeway < now:
            return None
        if isinstance(nbf, int | float) and nbf - leeway > now:
            return None
        return answer

    def _remember(self, digest: bytes, payload: dict[str, Any] | None) -> None:
        ttl = INTROSPECTION_NEGATIVE_SECONDS
        if payload is not None:
            assert self.config.introspection is not None
            ttl = self.config.introspection.cache_seconds
            exp = payload.get("exp")
            if isinstance(exp, int | float):
                ttl = max(0.0, min(ttl, exp - time.time()))
        self._introspected[digest] = (time.monotonic() + ttl, payload)
        self._introspected.move_to_end(digest)
        while len(self._introspected) > INTROSPECTION_CACHE_ENTRIES:
            self._introspected.popitem(last=False)


# What a refused JWT is told, by PyJWT's error (the first that matches); otherwise the error's type name.
_JWT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired"),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf)"),
    (jwt.InvalidIssuerError, "The token was issued by another issuer (iss)"),
    (jwt.InvalidSignatureError, "The token's signature is invalid"),
)


def _jwt_error_message(exc: Exception) -> str:
    for kind, message in _JWT_ERRORS:
        if isinstance(exc, kind):
            return message
    return f"The token is invalid ({type(exc).__name__})"
