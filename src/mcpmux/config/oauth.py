"""The `oauth` option of a route: mcpmux as an OAuth 2.1 resource server (issuer, keys, scope map)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any, Literal
from urllib.parse import urlsplit

from mcpmux.config.fields import (
    Diagnostics,
    JsonObject,
    as_duration,
    as_names,
    as_object,
    as_string,
    as_string_list,
    join_path,
)
from mcpmux.config.model import OAUTH_ALGORITHMS, OAuthIntrospection, OAuthResource, ProxyConfig, TokenScope

OAUTH_KEYS = (
    *("issuer", "authorizationServers", "jwksUri", "audience", "algorithms"),
    *("leeway", "requiredScopes", "scopes", "introspection"),
)
INTROSPECTION_KEYS = ("endpoint", "clientId", "clientSecret", "cacheTtl")
GRANT_KEYS = ("servers", "toolFilter")
MAX_LEEWAY_SECONDS = 300.0


def as_oauth(diag: Diagnostics, path: str, value: Any) -> OAuthResource | Literal[False]:
    """An `oauth` object, or `false` to turn an inherited one off on this route (True is not meaningful)."""
    if isinstance(value, bool):
        if value:
            raise diag.error(path, 'expected an object with "issuer", or false to turn OAuth off here')
        return False
    spec = as_object(diag, path, value, OAUTH_KEYS)
    if find_spec("jwt") is None or find_spec("cryptography") is None:
        raise diag.error(path, 'needs PyJWT and cryptography: pip install "mcpmux[oauth]"')
    issuer = spec.read("issuer", as_string)
    if issuer is None:
        raise diag.error(path, 'needs "issuer" (the authorization server\'s issuer URL)')
    issuer = _url(diag, spec.path_of("issuer"), issuer)
    servers = spec.read("authorizationServers", as_string_list) or (issuer,)
    jwks = spec.read("jwksUri", as_string)
    leeway = _leeway(spec)
    return OAuthResource(
        issuer=issuer,
        authorization_servers=_authorization_servers(spec, servers),
        jwks_uri=None if jwks is None else _url(diag, spec.path_of("jwksUri"), jwks),
        audiences=_audiences(spec),
        algorithms=_algorithms(spec),
        leeway_seconds=30.0 if leeway is None else leeway,
        required_scopes=spec.read("requiredScopes", as_string_list) or (),
        scopes=_scope_map(spec),
        introspection=spec.read("introspection", _introspection),
    )


def _authorization_servers(spec: JsonObject, servers: Sequence[str]) -> tuple[str, ...]:
    """`authorizationServers` (by default the issuer alone), each an http(s) URL."""
    path = spec.path_of("authorizationServers")
    return tuple(_url(spec.diag, join_path(path, i), s) for i, s in enumerate(servers))


def _leeway(spec: JsonObject) -> float | None:
    leeway = spec.read("leeway", as_duration)
    if leeway is not None and leeway > MAX_LEEWAY_SECONDS:
        raise spec.diag.error(spec.path_of("leeway"), f"expected at most {MAX_LEEWAY_SECONDS:g}s")
    return leeway


def _url(diag: Diagnostics, path: str, text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise diag.error(path, 'expected an http(s) URL like "https://login.example.com"')
    return text.strip()


def _audiences(spec: JsonObject) -> tuple[str, ...]:
    value = spec.get("audience")
    if isinstance(value, str):
        return (value,)
    return spec.read("audience", as_string_list) or ()


def _algorithms(spec: JsonObject) -> tuple[str, ...]:
    algorithms = spec.read("algorithms", as_string_list)
    if algorithms is None:
        return OAUTH_ALGORITHMS
    for index, name in enumerate(algorithms):
        if name not in OAUTH_ALGORITHMS:
            raise spec.diag.error(
                join_path(spec.path_of("algorithms"), index),
                f"expected one of {', '.join(OAUTH_ALGORITHMS)} (none and HMAC are never accepted)",
            )
    if not algorithms:
        raise spec.diag.error(spec.path_of("algorithms"), "expected at least one algorithm")
    return algorithms


def _scope_map(spec: JsonObject) -> tuple[tuple[str, TokenScope], ...]:
    """`{"<oauth scope>": {"servers": [...], "toolFilter": {...}}}`, each like a scoped static token."""
    from mcpmux.config.options import as_tool_filter

    value = spec.get("scopes") if spec.has("scopes") else None
    if value is None:
        return ()
    path = spec.path_of("scopes")
    if not isinstance(value, dict):
        raise spec.diag.error(path, 'expected an object like {"mcp:read": {"servers": ["a"]}}')
    grants: list[tuple[str, TokenScope]] = []
    for scope, item in value.items():
        entry = as_object(spec.diag, join_path(path, scope), {} if item is None else item, GRANT_KEYS)
        grant = TokenScope(
            token="",
            servers=entry.read("servers", as_names) or (),
            tool_filter=entry.read("toolFilter", as_tool_filter),
        )
        grants.append((scope, grant))
    return tuple(grants)


def _introspection(diag: Diagnostics, path: str, value: Any) -> OAuthIntrospection:
    spec = as_object(diag, path, value, INTROSPECTION_KEYS)
    client_id = spec.read("clientId", as_string)
    secret = spec.read("clientSecret", as_string)
    if not client_id or not secret:
        raise diag.error(path, 'needs "clientId" and "clientSecret" (mcpmux authenticates to the endpoint)')
    endpoint = spec.read("endpoint", as_string)
    ttl = spec.read("cacheTtl", as_duration)
    return OAuthIntrospection(
        client_id=client_id,
        client_secret=secret,
        endpoint=None if endpoint is None else _url(diag, spec.path_of("endpoint"), endpoint),
        cache_seconds=60.0 if ttl is None else ttl,
    )


def route_oauth(config: ProxyConfig, name: str) -> OAuthResource | None:
    """The `oauth` setting of a route: the merged endpoint (""), a group or a server."""
    if name == "":
        return config.merged.oauth
    if name in config.groups:
        return config.groups[name].oauth
    server = config.servers.get(name)
    return server.options.oauth if server is not None else None
