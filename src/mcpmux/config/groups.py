"""The merged endpoint and `mcpGroups`: the servers each serves, with its tokens, logging, OAuth, catalog."""

from __future__ import annotations

import re
from typing import Any

from mcpmux.config.fields import Diagnostics, JsonObject, as_bool, as_names, as_object, as_string, join_path
from mcpmux.config.model import GroupConfig, GroupMember, MergedConfig, OAuthResource, ServerConfig
from mcpmux.config.oauth import as_oauth
from mcpmux.config.options import OptionValues, as_auth_tokens, as_catalog_mode, as_tool_filter
from mcpmux.config.servers import check_route_name

# what the merged endpoint and each group set for themselves, else inherit from `mcpProxy.options`
ROUTE_SETTING_KEYS = ("authTokens", "logEnabled", "oauth", "catalog")
MERGED_KEYS = ("enabled", "separator", *ROUTE_SETTING_KEYS)
GROUP_KEYS = ("servers", "options")
GROUP_MEMBER_KEYS = ("toolFilter",)
_SEPARATOR = re.compile(r"[A-Za-z0-9_.-]+")


def merged_endpoint(proxy: JsonObject, inherited: OptionValues) -> MergedConfig:
    """`mcpProxy.merged`: true/false, or an object overriding what the proxy's options give it."""
    value = proxy.get("merged")
    if isinstance(value, bool):
        return MergedConfig(enabled=value, **route_settings(None, inherited))
    merged = proxy.object("merged", MERGED_KEYS)
    if merged is None:
        return MergedConfig(**route_settings(None, inherited))
    separator = _separator(merged)
    settings = route_settings(merged, inherited)
    enabled = merged.read("enabled", as_bool)
    return MergedConfig(enabled=True if enabled is None else enabled, separator=separator or "__", **settings)


def route_settings(own: JsonObject | None, inherited: OptionValues) -> dict[str, Any]:
    """The merged endpoint's or a group's tokens, logging, OAuth and catalog (MergedConfig/GroupConfig
    fields): each as its own object sets it, else as inherited from `mcpProxy.options`."""
    tokens = own.read("authTokens", as_auth_tokens) if own else None
    log_enabled = own.read("logEnabled", as_bool) if own else None
    oauth = own_oauth(own, inherited.get("oauth") or None)
    catalog = own.read("catalog", as_catalog_mode) if own else None
    return {
        "auth_tokens": inherited.get("auth_tokens", ()) if tokens is None else tokens,
        "log_enabled": inherited.get("log_enabled", False) if log_enabled is None else log_enabled,
        "oauth": oauth,
        "catalog": catalog or inherited.get("catalog", "full"),
    }


def _separator(merged: JsonObject) -> str | None:
    separator = merged.read("separator", as_string)
    if separator is not None and not _SEPARATOR.fullmatch(separator):
        merged.diag.report(merged.path_of("separator"), "expected one or more of A-Z a-z 0-9 _ . -")
    return separator


def own_oauth(options: JsonObject | None, inherited: OAuthResource | None) -> OAuthResource | None:
    """A route's `oauth` (an object, or false for off) or else the inherited one."""
    own = options.read("oauth", as_oauth) if options is not None else None
    if own is None:
        return inherited
    return own or None


def groups_section(
    root: JsonObject, servers: dict[str, ServerConfig], inherited: OptionValues
) -> dict[str, GroupConfig]:
    """`mcpGroups`: each group's members (known, enabled servers) and its own route options."""
    if not root.has("mcpGroups"):
        return {}
    section, diag = root.get("mcpGroups"), root.diag
    path = root.path_of("mcpGroups")
    if not isinstance(section, dict):
        diag.report(path, "expected an object of groups")
        return {}
    # A server whose entry had errors is missing from `servers`; naming it in a group is not one more.
    written = root.get("mcpServers")
    known = set(written) if isinstance(written, dict) else set(servers)
    return diag.attempt_each(path, section, _group, servers, inherited, known)


def _group(
    diag: Diagnostics,
    path: str,
    name: str,
    value: Any,
    servers: dict[str, ServerConfig],
    inherited: OptionValues,
    known: set[str],
) -> GroupConfig:
    check_route_name(diag, path, name)
    if name in servers:
        raise diag.error(path, f'"{name}" is also the name of a server')
    group = as_object(diag, path, value, GROUP_KEYS)
    if not group.has("servers"):
        raise diag.error(path, 'needs "servers"')
    members = _group_members(group, servers, known)
    options = group.object("options", ROUTE_SETTING_KEYS)
    return GroupConfig(name=name, members=members, **route_settings(options, inherited))


def _group_members(
    group: JsonObject, servers: dict[str, ServerConfig], known: set[str]
) -> tuple[GroupMember, ...]:
    diag, path, listed = group.diag, group.path_of("servers"), group.get("servers")
    if isinstance(listed, dict):
        members = tuple(_member(diag, join_path(path, name), name, spec) for name, spec in listed.items())
    else:
        members = tuple(GroupMember(server=server) for server in as_names(diag, path, listed))
    if not members:
        raise diag.error(path, "expected at least one server")
    for member in members:
        _check_member(diag, join_path(path, member.server), member.server, servers, known)
    return members


def _member(diag: Diagnostics, path: str, server: str, spec: Any) -> GroupMember:
    """`"a": {"toolFilter": {...}}` (or `"a": {}` / `"a": null` for every tool)."""
    member = as_object(diag, path, {} if spec is None else spec, GROUP_MEMBER_KEYS)
    return GroupMember(server=server, tool_filter=member.read("toolFilter", as_tool_filter))


def _check_member(
    diag: Diagnostics, path: str, server: str, servers: dict[str, ServerConfig], known: set[str]
) -> None:
    if server not in servers:
        if server not in known:
            diag.report(path, f'unknown server "{server}"')
        return
    if servers[server].disabled:
        diag.warn(path, f'server "{server}" is disabled')
