"""`mcpProxy.http`: the HTTP server's limits (head size, timeouts, connection and pipelining caps)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mcpmux.config.fields import Diagnostics, JsonObject, Reader, as_duration, as_positive_int
from mcpmux.config.model import HttpLimits


def as_positive_duration(diag: Diagnostics, path: str, value: Any) -> float:
    """A duration above zero (a limit of 0 s would refuse everything)."""
    seconds = as_duration(diag, path, value)
    if seconds <= 0:
        raise diag.error(path, 'expected a duration above zero, like "30s"')
    return seconds


# config key -> (HttpLimits field, converter); every key is optional and falls back to the field's default
HTTP_KEYS: dict[str, tuple[str, Reader]] = {
    "maxHeadBytes": ("max_head_bytes", as_positive_int),
    "headTimeout": ("head_timeout_seconds", as_positive_duration),
    "bodyTimeout": ("body_timeout_seconds", as_positive_duration),
    "writeTimeout": ("write_timeout_seconds", as_positive_duration),
    "keepAliveTimeout": ("keep_alive_timeout_seconds", as_positive_duration),
    "maxConnections": ("max_connections", as_positive_int),
    "maxPipelined": ("max_pipelined", as_positive_int),
}


def parse_http_limits(proxy: JsonObject) -> HttpLimits:
    """`mcpProxy.http` -> HttpLimits; durations as everywhere else ("30s", "200ms", seconds) and > 0.

    A bad value is reported (the whole config is then refused with every error found) and read as absent.
    """
    section = proxy.object("http", tuple(HTTP_KEYS))
    return HttpLimits() if section is None else replace(HttpLimits(), **section.read_given(HTTP_KEYS))
