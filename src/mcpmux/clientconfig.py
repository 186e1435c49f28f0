"""The client-side config (Claude Desktop/Code `mcpServers` JSON) that points MCP clients at this proxy."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from mcpmux.config.model import ProxyConfig, TokenScope
from mcpmux.core.access import AccessTable
from mcpmux.core.naming import claim_name
from mcpmux.core.toolfilter import scope_allows

# Claude's configs call streamable HTTP "http"; the path suffix is the route's endpoint for that transport.
_CLIENT_TYPES = {"sse": ("sse", "/sse"), "streamable-http": ("http", "/mcp")}
_PATH_SAFE = "/!$&'()*+,;=:@"  # RFC 3986 path characters besides unreserved ones
_TRANSPORT_ALIASES = {"sse": "sse", "streamable-http": "streamable-http", "http": "streamable-http"}


# (route key, the route's tokens, its servers) -> the token to write, or None for no Authorization header
TokenChooser = Callable[[str, Sequence[TokenScope], Sequence[str]], str | None]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def client_config(
    config: ProxyConfig,
    *,
    transport: str | None = None,
    servers: Sequence[str] | None = None,
    token_for: TokenChooser | None = None,
) -> dict[str, Any]:
    """`{"mcpServers": {...}}` with one entry per enabled server, the merged endpoint and each group.

    `transport` defaults to `mcpProxy.type`; `servers` keeps only the entries with those names (server,
    group or merged-endpoint names, as configured or as written); an unknown name or transport raises
    ValueError. `token_for` picks each entry's token (default: `pick_token`). Entry names are client-safe
    (see `entry_names`); the routes' keys stay in the URLs.
    """
    entries = route_entries(config, transport=transport, token_for=token_for)
    names = entry_names(config, list(entries))
    chosen = _select(entries, names, servers)
    return {"mcpServers": {names[key]: entries[key] for key in chosen}}


def route_entries(
    config: ProxyConfig, *, transport: str | None = None, token_for: TokenChooser | None = None
) -> dict[str, dict[str, Any]]:
    """Route key ("" for the merged endpoint) -> its client entry."""
    choose = token_for or _default_chooser(config)
    client_type, suffix = _CLIENT_TYPES[_transport_name(transport or config.type)]
    base_url = config.base_url.rstrip("/")
    routes: dict[str, tuple[str, Sequence[TokenScope], list[str]]] = {}
    enabled = config.enabled_servers
    for name, server in enabled.items():
        routes[name] = (_route_url(base_url, name, suffix), server.options.auth_tokens, [name])
    if config.merged.enabled and enabled:
        routes[""] = (f"{base_url}{suffix}", config.merged.auth_tokens, list(enabled))
    _add_group_routes(routes, config, base_url, suffix)
    return {
        key: _entry(client_type, url, choose(key, tokens, members))
        for key, (url, tokens, members) in routes.items()
    }


def _add_group_routes(
    routes: dict[str, tuple[str, Sequence[TokenScope], list[str]]],
    config: ProxyConfig,
    base_url: str,
    suffix: str,
) -> None:
    """Each group with an enabled member: its URL, tokens and enabled members."""
    enabled = config.enabled_servers
    for name, group in config.groups.items():
        members = [m.server for m in group.members if m.server in enabled]
        if members:
            routes[name] = (_route_url(base_url, name, suffix), group.auth_tokens, members)


def entry_names(config: ProxyConfig, keys: Sequence[str]) -> dict[str, str]:
    """A client-safe entry name per route key: `[A-Za-z0-9_-]` only, distinct, never a path token.

    `fetch/<token>` is written as `fetch` (the token stays only in the URL); the merged endpoint ("")
    is named after `mcpProxy.name`; a name taken already gets `-2`, `-3`, ...
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for key in sorted(keys, key=lambda k: (k == "", "/" in k)):  # plain names keep theirs first
        base = merged_entry_name(config) if key == "" else _safe(key.partition("/")[0])
        names[key] = claim_name(base, taken)
    return names


def _safe(name: str) -> str:
    return _UNSAFE.sub("-", name).strip("-") or "server"


def _route_url(base_url: str, name: str, suffix: str) -> str:
    # Names may hold "/" (the `fetch/<token>` trick) or spaces: encode only what a URL path cannot hold.
    return f"{base_url}/{quote(name, safe=_PATH_SAFE)}{suffix}"


def _transport_name(transport: str) -> str:
    name = _TRANSPORT_ALIASES.get(transport.strip().lower())
    if name is None:
        raise ValueError(f'unknown transport "{transport}" (expected sse or streamable-http)')
    return name


def _select(
    entries: dict[str, dict[str, Any]], names: dict[str, str], wanted: Sequence[str] | None
) -> list[str]:
    """The route keys to write: all, or those named (by key or by entry name)."""
    if wanted is None:
        return list(entries)
    by_name = {**{name: key for key, name in names.items()}, **{key: key for key in entries if key}}
    for name in wanted:
        if name not in by_name:
            known = ", ".join(names[key] for key in entries) or "none"
            raise ValueError(f'unknown server "{name}" (known: {known})')
    return [by_name[name] for name in wanted]


def _entry(client_type: str, url: str, token: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": client_type, "url": url}
    if token is not None:
        entry["headers"] = {"Authorization": f"Bearer {token}"}
    return entry


def _default_chooser(config: ProxyConfig) -> TokenChooser:
    """`pick_token` for a server's route; for the merged endpoint and groups, the token reaching most."""
    enabled = config.enabled_servers

    def choose(key: str, tokens: Sequence[TokenScope], servers: Sequence[str]) -> str | None:
        if key in enabled:
            return pick_token(tokens, servers)
        table = AccessTable(tokens, {name: enabled[name].options.auth_tokens for name in servers})
        if not table.tokens.enabled:
            return None

        def reach(token: str) -> tuple[int, bool]:
            members = table.access(table.by_token[token]).members
            return len(members), all(s.unrestricted for scopes in members.values() for s in scopes)

        return max(table.by_token, key=reach, default=None)  # max keeps the first of equals

    return choose


def pick_token(tokens: Sequence[TokenScope], servers: Sequence[str]) -> str | None:
    """The token that gives the most on a route serving `servers`: the first that reaches every one of
    them with every tool, else the first that reaches all of them, else the first that reaches any.

    Options are already inherited, so a server's tokens are its own or else the defaults; none means
    auth is off and no header is written. A token that reaches none of the servers would get 401 there,
    so it is never written.
    """

    def reach(scope: TokenScope) -> int:
        reached = sum(1 for server in servers if scope_allows(scope, server, None))
        if not reached:
            return 0
        return (
            3
            if reached == len(servers) and scope.tool_filter is None
            else 2
            if reached == len(servers)
            else 1
        )

    best = max(tokens, key=reach, default=None)  # max keeps the first of equals
    return best.token if best is not None and reach(best) else None


def merged_entry_name(config: ProxyConfig) -> str:
    """`mcpProxy.name` reduced to [A-Za-z0-9_-], made distinct from every server and group name."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", config.name).strip("-") or "mcpmux"
    taken = set(config.servers) | set(config.groups)
    candidate, counter = name, 1
    while candidate in taken:
        counter += 1
        candidate = f"{name}-all" if counter == 2 else f"{name}-all-{counter}"
    return candidate
