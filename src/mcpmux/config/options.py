"""The `options` objects of `mcpProxy` and each server: reading, inheritance, tokens and tool filters."""

from __future__ import annotations

from typing import Any, cast

from mcpmux.config.fields import (
    Diagnostics,
    JsonObject,
    Reader,
    as_bool,
    as_duration,
    as_names,
    as_number,
    as_object,
    as_positive_int,
    as_string,
    join_path,
)
from mcpmux.config.model import (
    BackoffPolicy,
    CatalogMode,
    HealthCheck,
    ServerOptions,
    TokenScope,
    ToolFilter,
    ToolOverride,
    UpstreamEra,
)
from mcpmux.config.oauth import as_oauth

# Option values as explicitly given at one level, keyed by ServerOptions field name. Absent or null keys
# are left out, which is exactly what makes them inherit from `mcpProxy.options`.
OptionValues = dict[str, Any]

TOKEN_KEYS = ("token", "servers", "toolFilter")
TOOL_FILTER_KEYS = ("mode", "list")
OVERRIDE_KEYS = ("name", "description", "title")
# JSON key -> (BackoffPolicy / HealthCheck field, converter)
RESTART_KEYS: dict[str, tuple[str, Reader]] = {
    "initialDelay": ("initial_seconds", as_duration),
    "maxDelay": ("max_seconds", as_duration),
    "multiplier": ("multiplier", as_number),
    "jitter": ("jitter", as_number),
}
HEALTH_CHECK_KEYS: dict[str, tuple[str, Reader]] = {
    "interval": ("interval_seconds", as_duration),
    "failureThreshold": ("failure_threshold", as_positive_int),
    "timeout": ("timeout_seconds", as_duration),
}
# Only meaningful on a server's own `options`; `disabled` is read by the server entry (not inherited, as in
# the original, where it is a field of the server's options).
PER_SERVER_KEYS = ("toolFilter", "toolOverrides", "disabled")


def as_session_mode(diag: Diagnostics, path: str, value: Any) -> str:
    mode = as_string(diag, path, value).strip().lower()
    if mode not in ("shared", "isolated"):
        raise diag.error(path, 'expected "shared" or "isolated"')
    return mode


def as_pinning(diag: Diagnostics, path: str, value: Any) -> str:
    mode = as_string(diag, path, value).strip().lower()
    if mode not in ("off", "warn", "enforce"):
        raise diag.error(path, 'expected "off", "warn" or "enforce"')
    return mode


def as_catalog_mode(diag: Diagnostics, path: str, value: Any) -> CatalogMode:
    mode = as_string(diag, path, value).strip().lower()
    if mode not in ("full", "search"):
        raise diag.error(path, 'expected "full" or "search"')
    return cast(CatalogMode, mode)


def as_protocol(diag: Diagnostics, path: str, value: Any) -> UpstreamEra:
    era = as_string(diag, path, value).strip().lower()
    if era not in ("legacy", "auto", "2026-07-28"):
        raise diag.error(path, 'expected "legacy", "auto" or "2026-07-28"')
    return cast(UpstreamEra, era)


def as_restart(diag: Diagnostics, path: str, value: Any) -> dict[str, float]:
    restart = as_object(diag, path, value, tuple(RESTART_KEYS))
    given: dict[str, float] = restart.read_given(RESTART_KEYS)
    if given.get("multiplier", 1) < 1:
        diag.report(restart.path_of("multiplier"), "expected a number >= 1")
    if not 0 <= given.get("jitter", 0) <= 1:
        diag.report(restart.path_of("jitter"), "expected a number between 0 and 1")
    return given


def as_health_check(diag: Diagnostics, path: str, value: Any) -> dict[str, float]:
    return as_object(diag, path, value, tuple(HEALTH_CHECK_KEYS)).read_given(HEALTH_CHECK_KEYS)


def as_auth_tokens(diag: Diagnostics, path: str, value: Any) -> tuple[TokenScope, ...]:
    """A list of tokens, each a string or `{token, servers, toolFilter}`; `[]` means auth off."""
    if not isinstance(value, list):
        raise diag.error(path, "expected a list of strings")
    scopes: list[TokenScope] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        scope = diag.attempt(_token_scope, diag, join_path(path, index), item)
        if scope is None:
            continue
        if scope.token in seen:
            diag.warn(join_path(path, index), "duplicate token")
            continue
        seen.add(scope.token)
        scopes.append(scope)
    return tuple(scopes)


def _token_scope(diag: Diagnostics, path: str, item: Any) -> TokenScope:
    if isinstance(item, str):
        return TokenScope(token=_non_empty_token(diag, path, item))
    if not isinstance(item, dict):
        raise diag.error(path, 'expected a token string or an object {"token": ...}')
    entry = JsonObject(diag, path, item, TOKEN_KEYS)
    token = entry.read("token", as_string)
    if token is None:
        raise diag.error(path, 'needs "token"')
    return TokenScope(
        token=_non_empty_token(diag, entry.path_of("token"), token),
        servers=entry.read("servers", as_names) or (),
        tool_filter=entry.read("toolFilter", as_tool_filter),
    )


def _non_empty_token(diag: Diagnostics, path: str, token: str) -> str:
    # An empty token (often an unset ${VAR}) would let an empty Authorization header in.
    if not token.strip():
        raise diag.error(path, "expected a non-empty token")
    return token


def as_tool_filter(diag: Diagnostics, path: str, value: Any) -> ToolFilter | None:
    """`{mode, list}`; an empty list filters nothing; a missing mode warns and filters nothing (as in the
    original); an unknown mode is an error (the original ignored the filter: a typo that widens access)."""
    spec = as_object(diag, path, value, TOOL_FILTER_KEYS)
    patterns = spec.read("list", as_names) or ()
    mode = (spec.read("mode", as_string) or "").strip().lower()
    if mode not in ("", "allow", "block"):
        raise diag.error(spec.path_of("mode"), 'expected "allow" or "block"')
    if not patterns:
        return None
    if mode == "allow":
        return ToolFilter(mode="allow", patterns=patterns)
    if mode == "block":
        return ToolFilter(mode="block", patterns=patterns)
    diag.warn(spec.path_of("mode"), 'missing; expected "allow" or "block"; the tool filter is ignored')
    return None


def as_tool_overrides(diag: Diagnostics, path: str, value: Any) -> dict[str, ToolOverride]:
    if not isinstance(value, dict):
        raise diag.error(path, "expected an object")
    overrides: dict[str, ToolOverride] = {}
    renamed_from: dict[str, str] = {}
    for tool, spec in value.items():
        entry = as_object(diag, join_path(path, tool), spec, OVERRIDE_KEYS)
        override = ToolOverride(
            name=entry.read("name", as_string),
            description=entry.read("description", as_string),
            title=entry.read("title", as_string),
        )
        if override.name is not None:
            _check_new_tool_name(diag, entry.path_of("name"), override.name, renamed_from, tool)
        overrides[tool] = override
    return overrides


def _check_new_tool_name(
    diag: Diagnostics, path: str, name: str, renamed_from: dict[str, str], tool: str
) -> None:
    if not name.strip():
        raise diag.error(path, "expected a non-empty tool name")
    if name in renamed_from:
        raise diag.error(path, f'"{name}" is already the new name of "{renamed_from[name]}"')
    renamed_from[name] = tool


# JSON key -> (ServerOptions field, converter); all of these inherit from `mcpProxy.options`.
INHERITED_OPTIONS: dict[str, tuple[str, Reader]] = {
    "panicIfInvalid": ("panic_if_invalid", as_bool),
    "logEnabled": ("log_enabled", as_bool),
    "authTokens": ("auth_tokens", as_auth_tokens),
    "sessionMode": ("session_mode", as_session_mode),
    "maxSessions": ("max_sessions", as_positive_int),
    "idleTimeout": ("idle_timeout_seconds", as_duration),
    "maxLineBytes": ("max_line_bytes", as_positive_int),
    "maxRequestQueue": ("max_request_queue", as_positive_int),
    "maxSessionQueue": ("max_session_queue", as_positive_int),
    "connectTimeout": ("connect_timeout_seconds", as_duration),
    "requestTimeout": ("request_timeout_seconds", as_duration),
    "lazyStart": ("lazy_start", as_bool),
    "restart": ("restart", as_restart),
    "healthCheck": ("health_check", as_health_check),
    "pinning": ("pinning", as_pinning),
    "oauth": ("oauth", as_oauth),
    "catalog": ("catalog", as_catalog_mode),
    "protocol": ("protocol", as_protocol),
}
OPTION_KEYS = (*INHERITED_OPTIONS, *PER_SERVER_KEYS)


def read_option_values(options: JsonObject | None, *, per_server: bool) -> OptionValues:
    """The option values explicitly given in one `options` object (None: nothing given)."""
    if options is None:
        return {}
    values: OptionValues = options.read_given(INHERITED_OPTIONS)
    _read_per_server_values(options, values, per_server=per_server)
    return values


def _read_per_server_values(options: JsonObject, values: OptionValues, *, per_server: bool) -> None:
    """`toolFilter` and `toolOverrides` of a server's own options; elsewhere they warn and are ignored."""
    for key in PER_SERVER_KEYS:
        if not options.has(key) or (per_server and key == "disabled"):
            continue
        if per_server:
            converted = options.read(key, as_tool_filter if key == "toolFilter" else as_tool_overrides)
            values["tool_filter" if key == "toolFilter" else "tool_overrides"] = converted
        else:
            options.diag.warn(options.path_of(key), "only applies in mcpServers; ignored here")


def build_options(inherited: OptionValues, own: OptionValues, *, transport: str | None) -> ServerOptions:
    """Apply inheritance: own values win, then `mcpProxy.options`, then the model's defaults.

    `restart` and `healthCheck` inherit field by field. Without any sessionMode, stdio servers share one
    upstream session (a process per client is costly) and HTTP upstreams get one per client session. A
    legacy SSE server is spoken to in the handshake era whatever `protocol` it inherits.
    """
    values = {**inherited, **own}
    values["restart"] = BackoffPolicy(**{**inherited.get("restart", {}), **own.get("restart", {})})
    values["health_check"] = HealthCheck(
        **{**inherited.get("health_check", {}), **own.get("health_check", {})}
    )
    if values.get("oauth") is False:  # `"oauth": false` turns an inherited one off
        values["oauth"] = None
    if transport == "sse":  # the legacy HTTP+SSE transport exists only in the handshake era
        values["protocol"] = "legacy"
    if "session_mode" not in values and transport is not None:
        values["session_mode"] = "shared" if transport == "stdio" else "isolated"
    return ServerOptions(**values)
