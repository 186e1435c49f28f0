"""`mcpProxy.http`: the HTTP server's limits (head size, timeouts, connection and pipelining caps)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from mcpmux.config.fields import JsonObject, as_duration, as_positive_int
from mcpmux.config.model import HttpLimits

# config key -> HttpLimits field; every key is optional and falls back to the field's default
HTTP_KEYS = {
    "maxHeadBytes": "max_head_bytes",
    "headTimeout": "head_timeout_seconds",
    "bodyTimeout": "body_timeout_seconds",
    "writeTimeout": "write_timeout_seconds",
    "keepAliveTimeout": "keep_alive_timeout_seconds",
    "maxConnections": "max_connections",
    "maxPipelined": "max_pipelined",
}
_INTEGER_FIELDS = {f.name for f in fields(HttpLimits) if f.type in ("int", int)}


def parse_http_limits(proxy: JsonObject) -> HttpLimits:
    """`mcpProxy.http` -> HttpLimits; durations as everywhere else ("30s", "200ms", seconds) and > 0.

    A bad value is reported (the whole config is then refused with every error found) and read as absent.
    """
    section = proxy.object("http", tuple(HTTP_KEYS))
    if section is None:
        return HttpLimits()
    values: dict[str, Any] = {}
    for key, name in HTTP_KEYS.items():
        number: float | None
        if name in _INTEGER_FIELDS:
            number = section.read(key, as_positive_int)
        else:
            number = section.read(key, as_duration)
            if number is not None and number <= 0:
                section.diag.report(section.path_of(key), 'expected a duration above zero, like "30s"')
                number = None
        if number is not None:
            values[name] = number
    return replace(HttpLimits(), **values)
