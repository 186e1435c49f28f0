"""The old config format (`server` + `clients`, before 2025-04), converted without the original's losses."""

from __future__ import annotations

from typing import Any

from mcpmux.config.fields import Diagnostics, JsonObject, as_bool, as_object, as_string
from mcpmux.config.model import ServerConfig, TokenScope, Transport
from mcpmux.config.options import OptionValues, as_auth_tokens, build_options
from mcpmux.config.servers import (
    TRANSPORT_FIELD_KEYS,
    check_route_name,
    make_server,
    read_transport_fields,
    transport_named,
    warn_ignored_fields,
)

LEGACY_SERVER_KEYS = ("baseURL", "addr", "name", "version", "globalAuthTokens")
LEGACY_CLIENT_KEYS = ("type", "config", "panicIfInvalid", "logEnabled", "authTokens", "disabled")

CONVERTED_WARNING = (
    'the old config format ("server"/"clients") was converted; '
    'consider moving to "mcpProxy"/"mcpServers" (see the README)'
)


def legacy_default_options(server: JsonObject) -> OptionValues:
    """`server.globalAuthTokens` become the default tokens (`mcpProxy.options.authTokens`)."""
    tokens = server.read("globalAuthTokens", as_auth_tokens)
    return {"auth_tokens": tokens} if tokens else {}


def parse_legacy_clients(
    diag: Diagnostics, section: Any, inherited: OptionValues, global_tokens: tuple[TokenScope, ...]
) -> dict[str, ServerConfig]:
    """Each client keeps its own panicIfInvalid/logEnabled and transport; its tokens are its own plus the
    global ones. A bad client is an error (the original silently dropped it)."""
    if not isinstance(section, dict):
        raise diag.error("clients", "expected an object of clients")
    return diag.attempt_each("clients", section, _parse_client, inherited, global_tokens)


def _parse_client(
    diag: Diagnostics,
    path: str,
    name: str,
    value: Any,
    inherited: OptionValues,
    global_tokens: tuple[TokenScope, ...],
) -> ServerConfig:
    check_route_name(diag, path, name)
    client = as_object(diag, path, value, LEGACY_CLIENT_KEYS)
    transport = _declared_transport(client)
    config = client.object("config", TRANSPORT_FIELD_KEYS)
    if config is None:
        raise diag.error(client.path_of("config"), 'needs "config" with the transport fields')
    fields = read_transport_fields(config)
    required = "command" if transport == "stdio" else "url"
    if getattr(fields, required) is None:
        raise diag.error(config.path, f'a {transport} client needs "{required}"')
    warn_ignored_fields(config, fields, transport)
    options = build_options(inherited, _client_option_values(client, global_tokens), transport=transport)
    return make_server(name, transport, fields, options, disabled=bool(client.read("disabled", as_bool)))


def _declared_transport(client: JsonObject) -> Transport:
    declared = client.read("type", as_string)
    transport = transport_named(declared) if declared else None
    if transport is None:
        raise client.diag.error(client.path_of("type"), 'expected "stdio", "sse" or "streamable-http"')
    return transport


def _client_option_values(client: JsonObject, global_tokens: tuple[TokenScope, ...]) -> OptionValues:
    values: OptionValues = {}
    for key, field_name in (("panicIfInvalid", "panic_if_invalid"), ("logEnabled", "log_enabled")):
        flag = client.read(key, as_bool)
        if flag is not None:
            values[field_name] = flag
    own = client.read("authTokens", as_auth_tokens) or ()
    own_tokens = {scope.token for scope in own}
    tokens = own + tuple(scope for scope in global_tokens if scope.token not in own_tokens)
    if tokens:
        values["auth_tokens"] = tokens
    return values
