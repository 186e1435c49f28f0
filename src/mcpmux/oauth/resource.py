"""mcpmux as a resource server: a token's claims -> a `TokenScope`, the metadata document, challenges."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakValueDictionary

from ..config.model import OAuthResource, TokenScope
from ..core.toolfilter import scope_allows
from .tokens import Claims, InvalidToken, TokenVerifier

PRINCIPAL_CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not let in: 401 (no or bad token) or 403 (`insufficient_scope`)."""

    status: int
    error: str | None = None  # None: no token was presented at all
    description: str = ""
    scope: tuple[str, ...] = ()


def quoted(value: str) -> str:
    """An RFC 6750 auth-param value: no quotes, backslashes or control characters can break out."""
    return '"' + "".join(c for c in value if c not in '"\\' and c >= " ") + '"'


def challenge(refusal: Refusal, metadata_url: str) -> str:
    """The `WWW-Authenticate` value for a refusal (RFC 6750 section 3, RFC 9728 section 5.1)."""
    params: list[str] = []
    if refusal.error is not None:
        params.append(f"error={quoted(refusal.error)}")
        params.append(f"error_description={quoted(refusal.description)}")
    if refusal.scope:
        params.append(f"scope={quoted(' '.join(refusal.scope))}")
    params.append(f"resource_metadata={quoted(metadata_url)}")
    return "Bearer " + ", ".join(params)


class ResourceGuard:
    """One `oauth` configuration: validates tokens and maps their scopes onto mcpmux's token scopes."""

    def __init__(self, config: OAuthResource) -> None:
        self.config = config
        self.verifier = TokenVerifier(config)
        # One TokenScope object per principal and grant: a client session stays bound to it. The most
        # recent ones are kept; beyond them, one lives on here as long as something (a session) holds it.
        self._principals: OrderedDict[tuple[str, str, frozenset[str]], TokenScope] = OrderedDict()
        self._held: WeakValueDictionary[tuple[str, str, frozenset[str]], TokenScope] = WeakValueDictionary()

    @property
    def scopes_supported(self) -> tuple[str, ...]:
        mapped = tuple(scope for scope, _grant in self.config.scopes)
        return tuple(dict.fromkeys((*self.config.required_scopes, *mapped)))

    def scopes_for(self, servers: Sequence[str]) -> tuple[str, ...]:
        """The scopes to ask for to use a route of `servers`: the required ones and every mapped one
        that reaches at least one of them."""
        reaching = (
            s for s, grant in self.config.scopes if any(scope_allows(grant, n, None) for n in servers)
        )
        return tuple(dict.fromkeys((*self.config.required_scopes, *reaching)))

    def metadata(self, resource: str, name: str) -> dict[str, Any]:
        """The RFC 9728 Protected Resource Metadata document of `resource`."""
        document: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": list(self.config.authorization_servers),
            "bearer_methods_supported": ["header"],
            "resource_name": name,
        }
        if self.scopes_supported:
            document["scopes_supported"] = list(self.scopes_supported)
        return document

    async def admit(
        self, token: str | None, accepted: Collection[str], servers: Sequence[str]
    ) -> TokenScope | Refusal:
        """The token scope a presented token gets on a route of `servers`, or why it is refused."""
        if token is None:
            return Refusal(401, scope=self.scopes_for(servers))
        try:
            claims = await self.verifier.verify(token, accepted)
        except InvalidToken as exc:
            return Refusal(401, "invalid_token", str(exc))
        missing = [s for s in self.config.required_scopes if s not in claims.scopes]
        scope = None if missing else self.token_scope(claims)
        if scope is None or not any(scope_allows(scope, server, None) for server in servers):
            return Refusal(
                403,
                "insufficient_scope",
                "The token's scopes do not grant this resource",
                tuple(
                    dict.fromkeys((*claims.scopes & set(self.scopes_supported), *self.scopes_for(servers)))
                ),
            )
        return scope

    def token_scope(self, claims: Claims) -> TokenScope | None:
        """What the token's scopes grant, as one TokenScope object per principal; None: nothing."""
        granted = frozenset(s for s in claims.scopes if any(s == mapped for mapped, _ in self.config.scopes))
        key = (claims.issuer, claims.principal, granted)
        scope = self._principals.get(key) or self._held.get(key)
        if scope is None:
            scope = self._new_scope(f"oauth:{claims.principal}", granted)
            if scope is None:
                return None
            self._held[key] = scope
        self._principals[key] = scope
        self._principals.move_to_end(key)
        while len(self._principals) > PRINCIPAL_CACHE_ENTRIES:
            self._principals.popitem(last=False)
        return scope

    def _new_scope(self, label: str, granted: frozenset[str]) -> TokenScope | None:
        """The scope of a principal with `granted` mapped scopes (None: they grant nothing)."""
        config = self.config
        if not config.scopes:
            return TokenScope(token=label, oauth=config)
        if not granted:
            return None
        grants = tuple(g for s, g in config.scopes if s in granted)
        return TokenScope(token=label, any_of=grants, oauth=config)
