"""Config text -> ProxyConfig: JSONC, env expansion, `mcpProxy`, servers, groups and the merged endpoint."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from mcpmux import __version__
from mcpmux.config.cluster import parse_cluster
from mcpmux.config.envexpand import expand_env as expand_env_references
from mcpmux.config.fields import (
    Diagnostics,
    JsonObject,
    as_bool,
    as_names,
    as_object,
    as_positive_int,
    as_string,
    as_string_list,
    join_path,
)
from mcpmux.config.httplimits import HTTP_KEYS, parse_http_limits
from mcpmux.config.jsonc import JsonSyntaxError, load_json, strip_comments
from mcpmux.config.legacy import (
    CONVERTED_WARNING,
    LEGACY_SERVER_KEYS,
    legacy_default_options,
    parse_legacy_clients,
)
from mcpmux.config.model import (
    GroupConfig,
    GroupMember,
    MergedConfig,
    OAuthResource,
    ProxyConfig,
    ServerConfig,
    TokenScope,
    TracingConfig,
)
from mcpmux.config.oauth import as_oauth
from mcpmux.config.options import (
    OPTION_KEYS,
    OptionValues,
    as_auth_tokens,
    as_catalog_mode,
    as_tool_filter,
    build_options,
    read_option_values,
)
from mcpmux.config.servers import check_route_name, parse_servers, transport_named
from mcpmux.config.statekeys import parse_request_state_keys
from mcpmux.config.upstream_oauth import token_store
from mcpmux.errors import ConfigError

TOP_LEVEL_KEYS = ("mcpProxy", "mcpServers", "mcpGroups", "server", "clients", "$schema")
PROXY_KEYS = (
    *("baseURL", "addr", "name", "version", "type", "options", "strict", "operatorTokens"),
    *(
        "merged",
        "allowedHosts",
        "allowedOrigins",
        "maxRequestBytes",
        "tracing",
        "http",
        "tokenStore",
        "oauth",
        "cluster",
        "requestStateKeys",
    ),
)
MERGED_KEYS = ("enabled", "separator", "authTokens", "logEnabled", "oauth", "catalog")
TRACING_KEYS = ("enabled", "exporter", "serviceName")
TRACING_EXPORTERS = ("otlp", "console", "none")
GROUP_KEYS = ("servers", "options")
GROUP_OPTION_KEYS = ("authTokens", "logEnabled", "oauth", "catalog")
GROUP_MEMBER_KEYS = ("toolFilter",)

# The original has no default address (an absent addr means port 80); mcpmux listens on :9090 when `addr`
# is absent, the port its README and Docker image use. An explicit "" still means port 80, like Go.
DEFAULT_ADDR = ":9090"
DEFAULT_NAME = "mcpmux"
_SEPARATOR = re.compile(r"[A-Za-z0-9_.-]+")
_ADDR_EXPECTED = 'expected an address like ":9090" or "127.0.0.1:9090"'


def parse_config(
    text: str,
    source: str,
    *,
    environ: Mapping[str, str],
    expand_env: bool,
    strict: bool = False,
    prior_warnings: Sequence[ConfigError] = (),
) -> tuple[ProxyConfig, list[str]]:
    """Parse config text (pure); returns the config and the warnings to log.

    Raises ConfigErrors naming every error found (with `strict` or `mcpProxy.strict`, every warning too,
    `prior_warnings` such as a .env file's included)."""
    diag = Diagnostics(source, strict=strict)
    diag.findings.extend((False, warning) for warning in prior_warnings)
    config: ProxyConfig | None = None
    try:
        data = _read_document(text, diag, environ, expand_env=expand_env)
        config = build_config(data, diag)
    except ConfigError as exc:  # one that ends the reading: reported with everything found before it
        diag.collect(exc)
    diag.finish()
    assert config is not None
    return config, diag.warnings


def _read_document(text: str, diag: Diagnostics, environ: Mapping[str, str], *, expand_env: bool) -> Any:
    try:
        # Comments go first, so that a `$NAME` in a comment is neither expanded nor warned about.
        text = strip_comments(text.removeprefix("\ufeff"))
        if expand_env:
            expansion = expand_env_references(text, environ)
            text = expansion.text
            for name in expansion.undefined:
                diag.warn("", f'environment variable "{name}" is not set; it expands to an empty string')
        return load_json(text)
    except JsonSyntaxError as exc:
        raise ConfigError(diag.source, f"line {exc.line}, column {exc.column}", exc.message) from None


def build_config(data: Any, diag: Diagnostics) -> ProxyConfig:
    """The parsed JSON document -> ProxyConfig, converting the old format when that is what it is."""
    if not isinstance(data, dict):
        raise diag.error("", "expected a JSON object at the top level")
    root = JsonObject(diag, "", data, TOP_LEVEL_KEYS)
    proxy, inherited, global_tokens = _proxy_section(root)
    if proxy.read("strict", as_bool):
        diag.strict = True
    servers = _servers_section(root, inherited, global_tokens)
    return ProxyConfig(
        **_proxy_settings(proxy),
        defaults=build_options({}, inherited, transport=None),
        servers=servers,
        merged=_merged_endpoint(proxy, inherited),
        groups=_groups(root, servers, inherited),
        source=diag.source,
        tracing=_tracing(proxy),
        http=parse_http_limits(proxy),
        token_store=token_store(proxy),
        cluster=parse_cluster(proxy),
        request_state_keys=parse_request_state_keys(proxy),
    )


def _proxy_section(root: JsonObject) -> tuple[JsonObject, OptionValues, tuple[TokenScope, ...]]:
    """`mcpProxy` (or the old `server`), its default options, and the old format's global tokens."""
    proxy = root.object("mcpProxy", PROXY_KEYS, {"options": OPTION_KEYS, "http": tuple(HTTP_KEYS)})
    if proxy is None and root.has("mcpProxy"):  # not an object: reported; read on without it
        proxy = JsonObject(root.diag, root.path_of("mcpProxy"), {}, PROXY_KEYS)
    if proxy is not None:
        if root.has("server"):
            root.diag.warn(root.path_of("server"), 'ignored because "mcpProxy" is present')
        inherited = read_option_values(proxy.object("options", OPTION_KEYS), per_server=False)
        return proxy, _proxy_oauth(proxy, inherited), ()
    legacy = root.object("server", LEGACY_SERVER_KEYS)
    if legacy is None:
        raise root.diag.error("", 'missing "mcpProxy"')
    root.diag.warn("", CONVERTED_WARNING)
    inherited = legacy_default_options(legacy)
    return legacy, inherited, inherited.get("auth_tokens", ())


def _proxy_oauth(proxy: JsonObject, inherited: OptionValues) -> OptionValues:
    """`mcpProxy.oauth`: shorthand for `mcpProxy.options.oauth` (the proxy-wide resource server)."""
    if not proxy.has("oauth"):
        return inherited
    if "oauth" in inherited:
        proxy.diag.warn(proxy.path_of("oauth"), 'ignored because "options.oauth" is present')
        return inherited
    oauth = proxy.read("oauth", as_oauth)
    return inherited if oauth is None else {**inherited, "oauth": oauth}


def _servers_section(
    root: JsonObject, inherited: OptionValues, global_tokens: tuple[TokenScope, ...]
) -> dict[str, ServerConfig]:
    section = root.get("mcpServers") if root.has("mcpServers") else None
    servers = parse_servers(root.diag, root.path_of("mcpServers"), section, inherited)
    if root.has("clients"):
        # Like the original, the old `clients` are used only when `mcpServers` is empty.
        if servers:
            root.diag.warn(root.path_of("clients"), 'ignored because "mcpServers" is present')
            return servers
        if root.has("mcpProxy"):  # otherwise _proxy_section has said so already
            root.diag.warn("", CONVERTED_WARNING)
        return parse_legacy_clients(root.diag, root.get("clients"), inherited, global_tokens)
    return servers


def _proxy_settings(proxy: JsonObject) -> dict[str, Any]:
    addr = proxy.read("addr", as_string)
    addr = DEFAULT_ADDR if addr is None else addr.strip()
    port = listen_port(addr)
    if port is None:
        proxy.diag.report(proxy.path_of("addr"), _ADDR_EXPECTED)
        addr, port = DEFAULT_ADDR, 9090
    return {
        "base_url": _base_url(proxy, addr, port),
        "addr": addr,
        "name": proxy.read("name", as_string) or DEFAULT_NAME,
        "version": proxy.read("version", as_string) or __version__,
        "type": _proxy_type(proxy),
        "allowed_hosts": proxy.read("allowedHosts", as_string_list) or (),
        "allowed_origins": proxy.read("allowedOrigins", as_string_list) or (),
        "max_request_bytes": proxy.read("maxRequestBytes", as_positive_int) or 4 * 1024 * 1024,
        "operator_tokens": _operator_tokens(proxy),
        "base_url_set": bool((proxy.read("baseURL", as_string) or "").strip()),
    }


def _operator_tokens(proxy: JsonObject) -> tuple[TokenScope, ...] | None:
    """`operatorTokens`: plain token strings (an operator sees everything, so they cannot be scoped)."""
    tokens = proxy.read("operatorTokens", as_auth_tokens)
    for index, scope in enumerate(tokens or ()):
        if not scope.unrestricted:
            raise proxy.diag.error(
                join_path(proxy.path_of("operatorTokens"), index), "expected a token string"
            )
    return tokens


def listen_port(addr: str) -> int | None:
    """The port of a Go listen address (`:9090`, `0.0.0.0:80`, `[::1]:8080`); "" is 80; None if invalid."""
    if addr == "":
        return 80
    _host, colon, port = addr.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        return None
    return int(port)


def _base_url(proxy: JsonObject, addr: str, port: int) -> str:
    base_url = (proxy.read("baseURL", as_string) or "").strip().rstrip("/")
    if not base_url:
        host = addr.rpartition(":")[0].strip("[]") if addr else ""
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}" if port == 80 else f"http://{host}:{port}"
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        # Not an error, for compatibility: only the SSE `endpoint` event and exported client configs use it.
        proxy.diag.warn(proxy.path_of("baseURL"), 'expected an http(s) URL like "https://mcp.example.com"')
    return base_url


def _proxy_type(proxy: JsonObject) -> str:
    text = proxy.read("type", as_string)
    if text is None or not text.strip():
        return "sse"
    kind = transport_named(text)
    if kind not in ("sse", "streamable-http"):
        proxy.diag.report(proxy.path_of("type"), 'expected "sse" or "streamable-http"')
        return "sse"
    return kind


def _merged_endpoint(proxy: JsonObject, inherited: OptionValues) -> MergedConfig:
    value = proxy.get("merged")
    tokens = inherited.get("auth_tokens", ())
    log_enabled = inherited.get("log_enabled", False)
    oauth = inherited.get("oauth") or None
    catalog = inherited.get("catalog", "full")
    if isinstance(value, bool):
        return MergedConfig(
            enabled=value, auth_tokens=tokens, log_enabled=log_enabled, oauth=oauth, catalog=catalog
        )
    merged = proxy.object("merged", MERGED_KEYS)
    if merged is None:
        return MergedConfig(auth_tokens=tokens, log_enabled=log_enabled, oauth=oauth, catalog=catalog)
    separator = merged.read("separator", as_string)
    if separator is not None and not _SEPARATOR.fullmatch(separator):
        merged.diag.report(merged.path_of("separator"), "expected one or more of A-Z a-z 0-9 _ . -")
    own_tokens = merged.read("authTokens", as_auth_tokens)
    own_log = merged.read("logEnabled", as_bool)
    enabled = merged.read("enabled", as_bool)
    return MergedConfig(
        enabled=True if enabled is None else enabled,
        separator=separator or "__",
        auth_tokens=tokens if own_tokens is None else own_tokens,
        log_enabled=log_enabled if own_log is None else own_log,
        oauth=_own_oauth(merged, oauth),
        catalog=merged.read("catalog", as_catalog_mode) or catalog,
    )


def _own_oauth(options: JsonObject | None, inherited: OAuthResource | None) -> OAuthResource | None:
    """A route's `oauth` (an object, or false for off) or else the inherited one."""
    own = options.read("oauth", as_oauth) if options is not None else None
    if own is None:
        return inherited
    return own or None


def _tracing(proxy: JsonObject) -> TracingConfig:
    """`"tracing": true` or `{"enabled": true, "exporter": "otlp|console|none", "serviceName": …}`."""
    value = proxy.get("tracing")
    if isinstance(value, bool):
        return TracingConfig(enabled=value)
    tracing = proxy.object("tracing", TRACING_KEYS)
    if tracing is None:
        return TracingConfig()
    exporter = tracing.read("exporter", as_string)
    if exporter is not None and exporter not in TRACING_EXPORTERS:
        tracing.diag.report(tracing.path_of("exporter"), 'expected "otlp", "console" or "none"')
        exporter = None
    enabled = tracing.read("enabled", as_bool)
    return TracingConfig(
        enabled=True if enabled is None else enabled,
        exporter=exporter or "otlp",  # type: ignore[arg-type]
        service_name=tracing.read("serviceName", as_string) or "mcpmux",
    )


def _groups(
    root: JsonObject, servers: dict[str, ServerConfig], inherited: OptionValues
) -> dict[str, GroupConfig]:
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
    groups: dict[str, GroupConfig] = {}
    for name, value in section.items():
        group_path = join_path(path, name)
        group = diag.attempt(_group, diag, group_path, name, value, servers, inherited, known)
        if group is not None:
            groups[name] = group
    return groups


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
    options = group.object("options", GROUP_OPTION_KEYS)
    tokens = options.read("authTokens", as_auth_tokens) if options else None
    log_enabled = options.read("logEnabled", as_bool) if options else None
    catalog = options.read("catalog", as_catalog_mode) if options else None
    return GroupConfig(
        name=name,
        members=members,
        auth_tokens=inherited.get("auth_tokens", ()) if tokens is None else tokens,
        log_enabled=inherited.get("log_enabled", False) if log_enabled is None else log_enabled,
        oauth=_own_oauth(options, inherited.get("oauth") or None),
        catalog=catalog or inherited.get("catalog", "full"),
    )


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
