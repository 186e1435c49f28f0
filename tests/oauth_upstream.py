"""An OAuth-protected MCP server (the SDK's own resource-server support) on 127.0.0.1 for the tests:
it accepts only JWTs of the test authorization server issued for its URL, and records every token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import mcp_types as types
from mcp.server import Server
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from harness import bound_socket
from oauth_as import AuthServer, serving


@dataclass
class Protected:
    """What the upstream saw; `required_scopes` of its tools may be raised to test step-up."""

    auth: AuthServer
    url: str = ""
    tokens: list[str] = field(default_factory=list)
    tool_scope: str | None = None  # calling `secret` needs this scope, else 403 insufficient_scope

    async def verify_token(self, token: str) -> AccessToken | None:
        self.tokens.append(token)
        try:
            header = jwt.get_unverified_header(token)
            key = self.auth.keys[header["kid"]]
            claims = jwt.decode(
                token,
                key.private.public_key(),
                algorithms=[key.alg],
                audience=self.url,
                issuer=self.auth.issuer,
            )
        except (jwt.PyJWTError, KeyError):
            return None
        scopes = str(claims.get("scope") or "").split()
        return AccessToken(
            token=token, client_id=str(claims.get("client_id")), scopes=scopes, expires_at=claims["exp"]
        )


def protected_server(state: Protected) -> Any:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        schema = {"type": "object", "properties": {}}
        return types.ListToolsResult(
            tools=[
                types.Tool(name="hello", input_schema=schema),
                types.Tool(name="secret", input_schema=schema),
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=f"{params.name} ok")])

    return Server("protected", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)


@contextmanager
def running_protected(auth: AuthServer, *, required_scopes: list[str] | None = None) -> Iterator[Protected]:
    """The protected server at `<url>` (`/mcp`); stopped on exit."""
    state = Protected(auth)
    sock = bound_socket()
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    settings = AuthSettings(
        issuer_url=auth.issuer, resource_server_url=state.url, required_scopes=required_scopes
    )  # type: ignore[call-arg]
    app = protected_server(state).streamable_http_app(auth=settings, token_verifier=state)
    with serving(app, sock, "the protected upstream", lifespan="auto"):
        yield state
