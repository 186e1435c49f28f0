"""The issuer's metadata (RFC 8414 / OIDC discovery) and its JWKS, cached and refreshed at a bounded rate."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import anyio
import jwt

from .fetch import FetchError, fetch_json

log = logging.getLogger("mcpmux.oauth")

MAX_KEYS = 64
MIN_REFRESH_SECONDS = 30.0  # unknown `kid`s cannot make mcpmux fetch the JWKS more often than this
KEYS_TTL_SECONDS = 3600.0
# Key type each JWS algorithm family needs: an RSA key can never verify an ES256 token, and so on.
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}

Clock = Callable[[], float]


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 (path-inserted) then OpenID Connect discovery URLs for an issuer."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")
    )
    oidc = urlunsplit((parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", ""))
    return [rfc8414, oidc]


class RateLimited:
    """Runs an async refresh at most once per `interval` seconds, one at a time; callers share results."""

    def __init__(self, interval: float, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last_attempt: float | None = None
        self._lock = anyio.Lock()

    def allowed(self) -> bool:
        return self.last_attempt is None or self.clock() - self.last_attempt >= self.interval

    async def run(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Refresh unless one ran (or is running) within the interval: waiters then share its result."""
        started = self.clock()
        async with self._lock:
            if self.last_attempt is not None and (
                self.last_attempt >= started or self.clock() - self.last_attempt < self.interval
            ):
                return
            self.last_attempt = self.clock()
            await refresh()


class IssuerMetadata:
    """The authorization server's metadata document, fetched once (retried at a bounded rate)."""

    def __init__(self, issuer: str, clock: Clock = time.monotonic) -> None:
        self.issuer = issuer
        self.document: dict[str, Any] | None = None
        self._limiter = RateLimited(MIN_REFRESH_SECONDS, clock)

    async def get(self) -> dict[str, Any]:
        if self.document is None:
            await self._limiter.run(self._fetch)
        if self.document is None:
            raise FetchError(f"no usable metadata for issuer {self.issuer}")
        return self.document

    async def endpoint(self, name: str) -> str:
        value = (await self.get()).get(name)
        if not isinstance(value, str) or not value:
            raise FetchError(f"the metadata of {self.issuer} has no {name}")
        return value

    async def _fetch(self) -> None:
        for url in metadata_urls(self.issuer):
            try:
                document = await fetch_json("GET", url)
            except FetchError as exc:
                log.debug("OAuth metadata: %s", exc)
                continue
            if document.get("issuer") != self.issuer:  # RFC 8414 section 3.3
                log.warning("OAuth metadata at %s names another issuer; ignored", url)
                continue
            self.document = document
            return
        log.warning("OAuth: no metadata found for issuer %s", self.issuer)


class VerifyKey(NamedTuple):
    """A public signing key of the JWKS with the type and algorithm it declares."""

    jwk: jwt.PyJWK
    kty: str
    alg: str | None

    def fits(self, alg: str) -> bool:
        """The key's type suits `alg`, and its own `alg`, when it names one, is `alg`."""
        return KEY_TYPES.get(alg[:2]) == self.kty and self.alg in (None, alg)


def parse_jwks(document: dict[str, Any]) -> dict[str | None, VerifyKey]:
    """Signing keys by `kid` (None for a key without one); unusable keys are skipped."""
    keys: dict[str | None, VerifyKey] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise FetchError('a JWKS needs a "keys" list')
    for entry in entries[:MAX_KEYS]:
        if not _public_signing_key(entry):
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        kid = entry.get("kid")
        alg = entry.get("alg")
        keys[kid if isinstance(kid, str) else None] = VerifyKey(
            key, entry["kty"], alg if isinstance(alg, str) else None
        )
    return keys


def _public_signing_key(entry: Any) -> bool:
    """A JWK for signatures of a known type; private or symmetric key material is never used to verify."""
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return False
    return entry.get("kty") in KEY_TYPES.values() and "d" not in entry and "k" not in entry


class KeySet:
    """The issuer's JWKS: fetched on first use, kept an hour, refreshed early for an unknown `kid`."""

    def __init__(self, jwks_uri: Callable[[], Awaitable[str]], clock: Clock = time.monotonic) -> None:
        self._jwks_uri = jwks_uri
        self.clock = clock
        self.keys: dict[str | None, VerifyKey] = {}
        self.fetched_at: float | None = None
        self.fetch_count = 0
        self._limiter = RateLimited(MIN_REFRESH_SECONDS, clock)

    async def key_for(self, kid: str | None, alg: str) -> VerifyKey | None:
        """The key for a token header's `kid` and `alg`, refreshing the set when it is stale or lacks it."""
        stale = self.fetched_at is None or self.clock() - self.fetched_at >= KEYS_TTL_SECONDS
        if stale or self._find(kid, alg) is None:
            await self._limiter.run(self._fetch)
        return self._find(kid, alg)

    def _find(self, kid: str | None, alg: str) -> VerifyKey | None:
        if kid is not None:
            key = self.keys.get(kid)
        else:  # no kid: only unambiguous when exactly one key fits the algorithm
            fitting = [k for k in self.keys.values() if k.fits(alg)]
            key = fitting[0] if len(fitting) == 1 else None
        return key if key is not None and key.fits(alg) else None

    async def _fetch(self) -> None:
        self.fetch_count += 1
        try:
            self.keys = parse_jwks(await fetch_json("GET", await self._jwks_uri()))
            self.fetched_at = self.clock()
        except FetchError as exc:  # keep the keys we have; the next refresh is rate limited
            log.warning("OAuth: fetching the JWKS failed: %s", exc)
