"""Config text -> ProxyConfig: JSONC, env expansion, `mcpProxy`, servers, groups and the merged endpoint."""

from __future__ import annotations

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
    as_positive_int,
    as_string,
    as_string_list,
    join_path,
)
from mcpmux.config.groups import groups_section, merged_endpoint
from mcpmux.config.httplimits import HTTP_KEYS, parse_http_limits
from mcpmux.config.jsonc import JsonSyntaxError, load_json, strip_comments
from mcpmux.config.legacy import (
    CONVERTED_WARNING,
    LEGACY_SERVER_KEYS,
    legacy_default_options,
    parse_legacy_clients,
)
from mcpmux.config.model import (
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
    build_options,
    read_option_values,
)
from mcpmux.config.servers import parse_servers, transport_named
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
TRACING_KEYS = ("enabled", "exporter", "serviceName")
TRACING_EXPORTERS = ("otlp", "console", "none")

# The original has no default address (an absent addr means port 80); mcpmux listens on :9090 when `addr`
# is absent, the port its README and Docker image use. An explicit "" still means port 80, like Go.
DEFAULT_ADDR = ":9090"
DEFAULT_NAME = "mcpmux"
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
        merged=merged_endpoint(proxy, inherited),
        groups=groups_section(root, servers, inherited),
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
