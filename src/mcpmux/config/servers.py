"""One upstream server entry: its transport fields, the transport choice, and the rules for route names."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from mcpmux.config.fields import (
    Diagnostics,
    JsonObject,
    as_bool,
    as_duration,
    as_env_map,
    as_object,
    as_string,
    as_string_list,
    as_string_map,
)
from mcpmux.config.model import ServerConfig, ServerOptions, Transport
from mcpmux.config.options import OPTION_KEYS, OptionValues, build_options, read_option_values
from mcpmux.config.upstream_oauth import read_upstream_oauth

TRANSPORT_FIELD_KEYS = ("command", "args", "env", "cwd", "url", "headers", "timeout")
# `type` is what Claude Desktop/Code configs call transportType; accepting it lets their entries be pasted.
SERVER_KEYS = (*TRANSPORT_FIELD_KEYS, "transportType", "type", "options", "disabled", "oauth")

_TRANSPORT_NAMES: dict[str, Transport] = {
    "stdio": "stdio",
    "sse": "sse",
    "streamable-http": "streamable-http",
    "streamablehttp": "streamable-http",
    "streamable_http": "streamable-http",
    "http": "streamable-http",
}
TRANSPORT_EXPECTED = 'expected "stdio", "sse" or "streamable-http" (or its alias "http")'
_STDIO_ONLY = ("args", "env", "cwd")
_HTTP_ONLY = ("headers",)


def transport_named(name: str) -> Transport | None:
    """`stdio`, `sse` or `streamable-http` (aliases `http`, `streamableHttp`), any case; else None."""
    return _TRANSPORT_NAMES.get(name.strip().lower())


@dataclass(slots=True)
class TransportFields:
    """The transport fields of one entry as written, before the transport is chosen."""

    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    given: tuple[str, ...] = ()  # the keys that were present, for "ignored" warnings


def read_transport_fields(entry: JsonObject) -> TransportFields:
    url = entry.read("url", as_http_url) or None
    timeout = entry.read("timeout", as_duration)
    return TransportFields(
        command=entry.read("command", as_string) or None,
        args=entry.read("args", as_string_list) or (),
        env=entry.read("env", as_env_map) or {},
        cwd=entry.read("cwd", as_string) or None,
        url=url,
        headers=entry.read("headers", as_string_map) or {},
        # 0 is Go's zero Duration, i.e. "no timeout set".
        timeout_seconds=timeout or None,
        given=tuple(key for key in TRANSPORT_FIELD_KEYS if entry.has(key)),
    )


def as_http_url(diag: Diagnostics, path: str, value: Any) -> str:
    url = as_string(diag, path, value)
    parts = urlsplit(url)
    if url and (parts.scheme.lower() not in ("http", "https") or not parts.netloc):
        raise diag.error(path, 'expected an http(s) URL like "https://example.com/mcp"')
    return url


def choose_transport(entry: JsonObject, fields: TransportFields) -> Transport:
    """The original's rule: `command` (or transportType stdio) is stdio; else `url` is streamable HTTP
    only when asked for, SSE otherwise; an entry with neither is an error. Unlike the original, an unknown
    transportType is an error too (it silently meant SSE there)."""
    type_key = "transportType" if entry.has("transportType") else "type"
    declared_text = entry.read(type_key, as_string)
    declared = transport_named(declared_text) if declared_text else None
    if declared_text and declared is None:
        raise entry.diag.error(entry.path_of(type_key), TRANSPORT_EXPECTED)
    if fields.command or declared == "stdio":
        if not fields.command:
            raise entry.diag.error(entry.path, 'transportType "stdio" needs "command"')
        return "stdio"
    if not fields.url:
        raise entry.diag.error(entry.path, 'needs "command" or "url"')
    return "streamable-http" if declared == "streamable-http" else "sse"


def warn_ignored_fields(entry: JsonObject, fields: TransportFields, transport: Transport) -> None:
    ignored = (*_HTTP_ONLY, "url") if transport == "stdio" else (*_STDIO_ONLY, "command")
    for key in ignored:
        if key in fields.given:
            entry.diag.warn(entry.path_of(key), f"ignored for a {transport} server")


def make_server(
    name: str, transport: Transport, fields: TransportFields, options: ServerOptions, *, disabled: bool
) -> ServerConfig:
    stdio = transport == "stdio"
    return ServerConfig(
        name=name,
        transport=transport,
        options=options,
        command=fields.command if stdio else None,
        args=fields.args if stdio else (),
        env=fields.env if stdio else {},
        cwd=fields.cwd if stdio else None,
        url=None if stdio else fields.url,
        headers={} if stdio else fields.headers,
        timeout_seconds=fields.timeout_seconds,
        disabled=disabled,
    )


def parse_server(
    diag: Diagnostics, path: str, name: str, value: Any, inherited: OptionValues
) -> ServerConfig | None:
    """One `mcpServers` entry, with its options inherited from `mcpProxy.options`; None when it has
    errors (they are recorded, each one: its options are still read for theirs)."""
    check_route_name(diag, path, name)
    entry = as_object(diag, path, value, SERVER_KEYS, {"options": OPTION_KEYS})
    errors_before = diag.error_count
    fields = read_transport_fields(entry)
    # After an invalid transport field, the choice of transport would only repeat that error.
    transport = diag.attempt(choose_transport, entry, fields) if diag.error_count == errors_before else None
    options_object = entry.object("options", OPTION_KEYS)
    own = read_option_values(options_object, per_server=True)
    disabled = is_disabled(entry, options_object)
    if transport is None or diag.error_count > errors_before:
        return None
    warn_ignored_fields(entry, fields, transport)
    if transport == "sse" and own.get("protocol") == "2026-07-28" and options_object is not None:
        why = 'legacy HTTP+SSE has no 2026-07-28 form: expected "legacy" or "auto" (which means legacy here)'
        raise diag.error(options_object.path_of("protocol"), why)
    options = build_options(inherited, own, transport=transport)
    server = make_server(name, transport, fields, options, disabled=disabled)
    oauth = diag.attempt(read_upstream_oauth, entry, transport)
    return server if oauth is None else replace(server, oauth=oauth)


def is_disabled(entry: JsonObject, options: JsonObject | None) -> bool:
    """`options.disabled` (the original's place for it) or a top-level `disabled`: either one disables."""
    own = options.read("disabled", as_bool) if options is not None else None
    return bool(own or entry.read("disabled", as_bool))


def parse_servers(
    diag: Diagnostics, path: str, section: Any, inherited: OptionValues
) -> dict[str, ServerConfig]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        diag.report(path, "expected an object of servers")
        return {}
    return diag.attempt_each(path, section, parse_server, inherited)


def check_route_name(diag: Diagnostics, path: str, name: str) -> None:
    """A server or group name becomes the route prefix `/<name>/`; `fetch/<token>` must keep working."""
    if not name.strip():
        raise diag.error(path, "expected a non-empty name")
    if name.startswith("/") or name.endswith("/"):
        raise diag.error(path, 'a name must not start or end with "/"')
    if name.startswith("_"):
        raise diag.error(path, 'a name must not start with "_" (reserved for built-in routes like /_healthz)')
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise diag.error(path, 'a name must not contain empty, "." or ".." path segments')
    if any(char in "?#" or ord(char) < 32 for char in name):
        raise diag.error(path, 'a name must not contain "?", "#" or control characters')
