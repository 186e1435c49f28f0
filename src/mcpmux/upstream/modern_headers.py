"""The HTTP headers of a request to a 2026-07-28 upstream: routing headers, and `Mcp-Param-*` for the
tool arguments the upstream's schemas mark with `x-mcp-header` (learnt from its tools/list answers)."""

from __future__ import annotations

from typing import Any

from ..jsonrpc import Message
from ..protocol.constants import (
    METHOD_HEADER,
    MODERN_VERSION,
    NAME_BEARING_METHODS,
    NAME_HEADER,
    PROTOCOL_VERSION_HEADER,
    TOOLS_CALL,
)
from ..protocol.era import encode_header_value, mcp_param_headers, x_mcp_header_map

ServerKey = tuple[str, str]  # (server name, url)
# server -> tool name -> the arguments its calls mirror in `Mcp-Param-*` headers (from the latest
# tools/list of any of the server's connections; only tools that have some)
_PARAM_HEADERS: dict[ServerKey, dict[str, dict[tuple[str, ...], str]]] = {}
# Bounds (an upstream renaming its tools at every list must not grow them for ever): beyond them the
# map starts afresh and is learnt again from the next tools/list.
MAX_LEARNT_TOOLS = 4096  # annotated tools remembered per server
MAX_LEARNT_SERVERS = 1024  # (name, url) pairs remembered (reloads may change urls)


def learn_param_headers(server: ServerKey, tools: Any) -> None:
    """Remember which arguments of each listed tool travel as `Mcp-Param-*` headers."""
    if server not in _PARAM_HEADERS and len(_PARAM_HEADERS) >= MAX_LEARNT_SERVERS:
        _PARAM_HEADERS.clear()
    maps = _PARAM_HEADERS.setdefault(server, {})
    for tool in tools if isinstance(tools, list) else []:
        if not (isinstance(tool, dict) and isinstance(tool.get("name"), str)):
            continue
        found = x_mcp_header_map(tool.get("inputSchema"))
        if not found:
            maps.pop(tool["name"], None)
            continue
        if tool["name"] not in maps and len(maps) >= MAX_LEARNT_TOOLS:
            maps.clear()
        maps[tool["name"]] = found


def request_headers(server: ServerKey, msg: Message) -> bytes | None:
    """The request headers of `msg` (None when its method cannot be sent in a header)."""
    method = msg["method"]
    if not (method.isascii() and method.isprintable()):
        return None
    lines = [
        "accept: application/json, text/event-stream",
        "content-type: application/json",
        f"{PROTOCOL_VERSION_HEADER}: {MODERN_VERSION}",
        f"{METHOD_HEADER}: {method}",
    ]
    params = msg.get("params") or {}
    key = NAME_BEARING_METHODS.get(method)
    name = params.get(key) if key else None
    if isinstance(name, str):
        lines.append(f"{NAME_HEADER}: {encode_header_value(name)}")
        header_map = _PARAM_HEADERS.get(server, {}).get(name) if method == TOOLS_CALL else None
        if header_map:
            mirrored = mcp_param_headers(header_map, params.get("arguments"))
            lines.extend(f"{header}: {value}" for header, value in mirrored.items())
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")
