"""The client-side config (Claude Desktop/Code `mcpServers` JSON) that points MCP clients at this proxy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote

from mcpmux.config.model import ProxyConfig, TokenScope

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
    for name, server in config.enabled_servers.items():
        entries[name] = _entry(
            client_type, _route_url(base_url, name, suffix), server.options.auth_tokens, name
        )
    if config.merged.enabled:
        merged_key = merged_entry_name(config)
        entries[merged_key] = _entry(client_type, f"{base_url}{suffix}", config.merged.auth_tokens, None)
    for name, group in config.groups.items():
        entries[name] = _entry(client_type, _route_url(base_url, name, suffix), group.auth_tokens, name)
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


def _entry(client_type: str, url: str, tokens: Sequence[TokenScope], route: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": client_type, "url": url}
    token = pick_token(tokens, route)
    if token is not None:
        entry["headers"] = {"Authorization": f"Bearer {token}"}
    return entry


def pick_token(tokens: Sequence[TokenScope], route: str | None) -> str | None:
    """The first token that may use this route (the first one at all if none is scoped to it).

    Options are already inherited, so a server's tokens are its own or else the defaults; none means
    auth is off and no header is written.
    """
    for scope in tokens:
        if route is None or not scope.servers or any(fnmatchcase(route, p) for p in scope.servers):
            return scope.token
    return tokens[0].token if tokens else None


def merged_entry_name(config: ProxyConfig) -> str:
    """`mcpProxy.name` reduced to [A-Za-z0-9_-], made distinct from every server and group name."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", config.name).strip("-") or "mcpmux"
    taken = set(config.servers) | set(config.groups)
    candidate, counter = name, 1
    while candidate in taken:
        counter += 1
        candidate = f"{name}-all" if counter == 2 else f"{name}-all-{counter}"
    return candidate
