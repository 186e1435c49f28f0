"""Access to the operator views (status data, metrics): the proxy's default tokens, when any are set."""

from __future__ import annotations

from ..config.model import ProxyConfig
from ..core.auth import TokenSet, token_from_authorization
from .asgi import RequestHeaders, Send, send_error

UNAUTHORIZED_HEADERS = [(b"www-authenticate", b'Bearer realm="mcpmux"')]


def operator_tokens(config: ProxyConfig) -> TokenSet:
    """`mcpProxy.options.authTokens`: empty (auth off) when none are configured."""
    return TokenSet(config.defaults.auth_tokens)


async def authorized(config: ProxyConfig, headers: RequestHeaders, send: Send) -> bool:
    """True when the request may see operator data; otherwise answer 401 and return False."""
    tokens = operator_tokens(config)
    if not tokens.enabled or tokens.match(token_from_authorization(headers.authorization)) is not None:
        return True
    await send_error(send, 401, "Unauthorized", UNAUTHORIZED_HEADERS)
    return False
