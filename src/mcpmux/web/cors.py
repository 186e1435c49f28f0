"""CORS for browser MCP clients: preflight answers and the headers an allowed Origin's responses carry."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from .asgi import Headers, Scope, Send

__all__ = ["ALLOWED_HEADERS", "CorsSend", "preflight_headers", "requested_headers", "response_headers"]

# What a browser client may send: credentials, the session and the 2026-07-28 routing headers
# (`Mcp-Param-*` are named one by one: CORS has no prefix wildcard, so requested ones are echoed).
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
)
EXPOSED_HEADERS = b"Mcp-Session-Id, WWW-Authenticate"
METHODS = {"mcp": b"GET, POST, DELETE, OPTIONS", "sse": b"GET, OPTIONS", "message": b"POST, OPTIONS"}
MAX_AGE_SECONDS = b"600"
MAX_PARAM_HEADERS = 64  # requested Mcp-Param-* names echoed at most (a preflight is a few hundred bytes)
_PARAM_HEADER = re.compile(r"mcp-param-[a-z0-9!#$%&'*+.^_`|~-]{1,100}")
_REQUEST_HEADERS = b"access-control-request-headers"


def requested_headers(scope: Scope) -> str:
    """The preflight's `Access-Control-Request-Headers` (joined when repeated; "" when absent)."""
    values = [value for name, value in scope["headers"] if name.lower() == _REQUEST_HEADERS]
    return ",".join(value.decode("latin-1") for value in values)


def _param_headers(requested: str) -> list[str]:
    """The `Mcp-Param-*` names among the requested headers (well-formed ones, at most 64)."""
    names = (name.strip().lower() for name in requested.split(","))
    found = [name for name in names if _PARAM_HEADER.fullmatch(name)]
    return list(dict.fromkeys(found))[:MAX_PARAM_HEADERS]


def response_headers(origin: str) -> Headers:
    """What every response to an allowed Origin carries, so the browser lets the client read it."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSED_HEADERS),
        (b"vary", b"Origin"),
    ]


def preflight_headers(origin: str | None, kind: str, requested: str) -> Headers:
    """The answer to `OPTIONS` on an MCP route: `Allow`, and for a browser's (allowed) Origin the CORS
    headers: its methods, the MCP headers and the requested `Mcp-Param-*` ones, a 10-minute cache."""
    methods = METHODS[kind]
    headers: Headers = [(b"allow", methods)]
    if origin is None:
        return headers
    allowed = ", ".join([*ALLOWED_HEADERS, *_param_headers(requested)])
    return [
        *headers,
        *response_headers(origin),
        (b"access-control-allow-methods", methods),
        (b"access-control-allow-headers", allowed.encode("latin-1")),
        (b"access-control-max-age", MAX_AGE_SECONDS),
    ]


class CorsSend:
    """Wraps a `send` and adds the CORS response headers; keeps the early path if the server offers it."""

    __slots__ = ("extra", "inner")

    def __init__(self, inner: Send, origin: str) -> None:
        self.inner = inner
        self.extra = response_headers(origin)

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *self.extra]}
        await self.inner(message)

    def respond_now(self, status: int, headers: Headers, body: bytes) -> bool:
        respond = getattr(self.inner, "respond_now", None)
        return respond is not None and bool(respond(status, [*headers, *self.extra], body))
