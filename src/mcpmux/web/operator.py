"""Who may see operator views (status data, metrics, readiness details): the operator tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config.model import ProxyConfig
from ..core.auth import TokenSet, token_from_authorization
from ..core.hostcheck import is_loopback_listener
from .asgi import RequestHeaders, Send, send_error

UNAUTHORIZED_HEADERS = [(b"www-authenticate", b'Bearer realm="mcpmux"')]
OFF_MESSAGE = "Forbidden: operator views are off (set mcpProxy.operatorTokens)"
Mode = Literal["token", "open", "off"]


@dataclass(frozen=True, slots=True)
class Operator:
    """A caller allowed to see operator views; `token` is the one it presented (None when open)."""

    token: str | None


def operator_tokens(config: ProxyConfig) -> TokenSet:
    """The operator tokens (`operatorTokens`, else the unscoped default tokens); empty when none."""
    return TokenSet(config.operator_token_scopes)


def uses_auth(config: ProxyConfig) -> bool:
    """Whether any route of the config asks for a token (a static one or an OAuth access token)."""
    merged = config.merged
    return (
        any(s.options.auth_tokens or s.options.oauth for s in config.enabled_servers.values())
        or bool(merged.enabled and (merged.auth_tokens or merged.oauth))
        or any(g.auth_tokens or g.oauth for g in config.groups.values())
        or config.defaults.oauth is not None
    )


def operator_mode(config: ProxyConfig) -> Mode:
    """`token`: an operator token is needed; `open`: anyone (loopback listener, no token configured
    anywhere, so nothing is shown that every route does not already serve to anyone); `off`."""
    if config.operator_token_scopes:
        return "token"
    if config.operator_tokens is None and is_loopback_listener(config.addr) and not uses_auth(config):
        return "open"
    return "off"


def operator_of(config: ProxyConfig, headers: RequestHeaders) -> Operator | None:
    """The operator making this request, or None when it may not see operator views."""
    mode = operator_mode(config)
    if mode == "open":
        return Operator(None)
    if mode == "off":
        return None
    presented = token_from_authorization(headers.authorization)
    scope = operator_tokens(config).match(presented)
    return Operator(scope.token) if scope is not None else None


async def require_operator(config: ProxyConfig, headers: RequestHeaders, send: Send) -> Operator | None:
    """The operator making this request; otherwise answer 401 (or 403 when operator views are off)."""
    operator = operator_of(config, headers)
    if operator is None:
        if operator_mode(config) == "off":
            await send_error(send, 403, OFF_MESSAGE)
        else:
            await send_error(send, 401, "Unauthorized", UNAUTHORIZED_HEADERS)
    return operator


async def authorized(config: ProxyConfig, headers: RequestHeaders, send: Send) -> bool:
    """True when the request may see operator data; otherwise answer 401/403 and return False."""
    return await require_operator(config, headers, send) is not None
