"""Who reaches which member of a merged endpoint or group: per token, what its own routes would allow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config.model import OAuthResource, TokenScope
from .auth import TokenSet
from .toolfilter import scope_allows

__all__ = ["Access", "AccessTable"]

OAUTH_CACHE_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class Access:
    """What one caller may use on a merged endpoint or group.

    `members` maps each server the caller reaches to the token scopes that must all allow a tool:
    the scope its token has on that server's own route (none when the server has auth off) and the
    scope it has on the merged endpoint or group itself (none when that has auth off).
    """

    members: Mapping[str, tuple[TokenScope, ...]]

    def reaches(self, server: str) -> bool:
        """Whether the caller may use `server` at all (lists, prompts, resources, completions)."""
        return server in self.members

    def allows(self, server: str, tool: str) -> bool:
        """Whether the caller may see and call the published tool name `tool` of `server`."""
        scopes = self.members.get(server)
        if scopes is None:
            return False
        for scope in scopes:  # (no generator: this runs for every tool call)
            if not scope_allows(scope, server, tool):
                return False
        return True


def _grant(
    route_scope: TokenScope | None,
    token: str | None,
    members: Mapping[str, Mapping[str, TokenScope]],
    oauth_only: frozenset[str],
) -> Access:
    """The members a static token (or none) reaches: those whose own route admits it, or has auth off.

    `members` maps each server to its own tokens by token string (looked up at config time only);
    `oauth_only` are the servers whose routes take OAuth access tokens and no static token.
    """
    reached: dict[str, tuple[TokenScope, ...]] = {}
    for server, tokens in members.items():
        scopes: tuple[TokenScope, ...] = ()
        if tokens:  # auth on for this server: the token must be one of its own
            own = tokens.get(token) if token is not None else None
            if own is None:
                continue
            scopes = (own,)
        elif server in oauth_only:
            continue  # its route wants an OAuth access token
        if route_scope is not None:
            scopes = (*scopes, route_scope)
        if all(scope_allows(scope, server, None) for scope in scopes):
            reached[server] = scopes
    return Access(reached)


def _oauth_only(
    members: Mapping[str, Sequence[TokenScope]], member_oauth: Mapping[str, OAuthResource | None]
) -> frozenset[str]:
    """The members whose own routes take OAuth and no static token."""
    return frozenset(s for s, tokens in members.items() if not tokens and member_oauth.get(s))


class AccessTable:
    """Every caller's `Access` to one merged endpoint or group, computed once per configuration.

    `tokens` is what the HTTP layer matches a presented token against (constant time); each of its
    entries is a plain `TokenScope` standing for one distinct token string, kept across reloads (the
    transports check a session's scope by identity), and `access()` maps it to what it reaches.
    A caller that reaches no member gets 401 (`tokens` then requires a token that is listed).
    """

    def __init__(
        self,
        route_tokens: Sequence[TokenScope],
        members: Mapping[str, Sequence[TokenScope]],
        keep: Mapping[str, TokenScope] | None = None,
        member_oauth: Mapping[str, OAuthResource | None] | None = None,
    ) -> None:
        """`route_tokens`: the endpoint's own (empty: auth off there); `members`: each server's own tokens;
        `member_oauth`: each server's own `oauth` setting."""
        keep = keep or {}
        self._members = members
        self._member_oauth = member_oauth or {}
        self._oauth_cache: dict[int, tuple[TokenScope, Access]] = {}
        route_set = TokenSet(route_tokens)
        own = {server: {t.token: t for t in tokens} for server, tokens in members.items()}
        oauth_only = _oauth_only(members, self._member_oauth)
        self.by_token: dict[str, TokenScope] = {}
        self._access: dict[str | None, Access] = {}
        self._grant_tokens(route_tokens, route_set.enabled, own, oauth_only, keep)
        anonymous = Access({}) if route_set.enabled else _grant(None, None, own, oauth_only)
        self._access[None] = anonymous
        required = route_set.enabled or (bool(members) and not anonymous.members)
        self.tokens = TokenSet(list(self.by_token.values()), required=required)

    def _grant_tokens(
        self,
        route_tokens: Sequence[TokenScope],
        gated: bool,
        own: dict[str, dict[str, TokenScope]],
        oauth_only: frozenset[str],
        keep: Mapping[str, TokenScope],
    ) -> None:
        """Each distinct token reaching a member: its `by_token` entry and its `Access` (`gated`: only the
        endpoint's own tokens get in)."""
        route_own = {t.token: t for t in route_tokens}
        for token in dict.fromkeys([*route_own, *(t for tokens in own.values() for t in tokens)]):
            route_scope = route_own.get(token)
            if gated and route_scope is None:
                continue  # the endpoint's own tokens gate it
            access = _grant(route_scope, token, own, oauth_only)
            if access.members:
                self.by_token[token] = keep.get(token) or TokenScope(token)
                self._access[token] = access

    def access(self, scope: TokenScope | None) -> Access:
        """What the caller authenticated as `scope` (an entry of `tokens`, or None) reaches."""
        if scope is None:
            return self._access[None]
        if scope.oauth is not None:
            return self._oauth_access(scope)
        return self._access.get(scope.token) or Access({})

    def _oauth_access(self, scope: TokenScope) -> Access:
        """An OAuth caller reaches the members whose own routes accept the same OAuth setting, and
        those with auth off, as far as its scope allows; cached per (per-principal) scope object."""
        cached = self._oauth_cache.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1]
        reached = {
            server: (scope,)
            for server, tokens in self._members.items()
            if (
                self._member_oauth.get(server) == scope.oauth
                or (not tokens and not self._member_oauth.get(server))
            )
            and scope_allows(scope, server, None)
        }
        access = Access(reached)
        if len(self._oauth_cache) >= OAUTH_CACHE_ENTRIES:
            self._oauth_cache.clear()
        self._oauth_cache[id(scope)] = (scope, access)
        return access
