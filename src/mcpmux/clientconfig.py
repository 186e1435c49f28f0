"""The client-side config (Claude Desktop/Code `mcpServers` JSON) that points MCP clients at this proxy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from mcpmux.config.model import ProxyConfig, TokenScope
from mcpmux.core.toolfilter import scope_allows

# Claude's configs call streamable HTTP "http"; the path suffix is the route's endpoint for that transport.
_CLIENT_TYPES = {"sse": ("sse", "/sse"), "streamable-http": ("http", "/mcp")}
_PATH_SAFE = "/!$&'()*+,;=:@"  # RFC 3986 path characters besides unreserved ones
_TRANSPORT_ALIASES = {"sse": "sse", "streamable-http": "streamable-http", "http": "streamable-http"}


def client_config(
    config: ProxyConfig, *, transport: str | None = None, servers: Sequence[str] | None = None
) -> dict[str, Any]:
    """`{"mcpServers": {...}}` with one entry per enabled server, the merged endpoint and each group.

    `transport` defaults to `mcpProxy.type`; `servers` keeps only the entries with those names (server,
    group or merged-endpoint names); an unknown name or transport raises ValueError.
    """
    client_type, suffix = _CLIENT_TYPES[_transport_name(transport or config.type)]
    base_url = config.base_url.rstrip("/")
    entries: dict[str, dict[str, Any]] = {}
    enabled = config.enabled_servers
    for name, server in enabled.items():
        entries[name] = _entry(
            client_type, _route_url(base_url, name, suffix), server.options.auth_tokens, [name]
        )
    if config.merged.enabled and enabled:
        merged_key = merged_entry_name(config)
        entries[merged_key] = _entry(
            client_type, f"{base_url}{suffix}", config.merged.auth_tokens, list(enabled)
        )
    for name, group in config.groups.items():
        members = [m.server for m in group.members if m.server in enabled]
        if members:
            entries[name] = _entry(
                client_type, _route_url(base_url, name, suffix), group.auth_tokens, members
            )
    return {"mcpServers": _select(entries, servers)}


def _route_url(base_url: str, name: str, suffix: str) -> str:
    # Names may hold "/" (the `fetch/<token>` trick) or spaces: encode only what a URL path cannot hold.
    return f"{base_url}/{quote(name, safe=_PATH_SAFE)}{suffix}"


def _transport_name(transport: str) -> str:
    name = _TRANSPORT_ALIASES.get(transport.strip().lower())
    if name is None:
        raise ValueError(f'unknown transport "{transport}" (expected sse or streamable-http)')
    return name


def _select(entries: dict[str, dict[str, Any]], names: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    if names is None:
        return entries
    unknown = [name for name in names if name not in entries]
    if unknown:
        raise ValueError(f'unknown server "{unknown[0]}" (known: {", ".join(entries) or "none"})')
    return {name: entries[name] for name in names}


def _entry(
    client_type: str, url: str, tokens: Sequence[TokenScope], servers: Sequence[str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": client_type, "url": url}
    token = pick_token(tokens, servers)
    if token is not None:
        entry["headers"] = {"Authorization": f"Bearer {token}"}
    return entry


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
