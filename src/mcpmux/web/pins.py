"""`/_pins` (what pinning sees, JSON) and `POST /_pins/approve` (an operator approves a server's changes)."""

from __future__ import annotations

from typing import Any

import orjson

from ..core.auth import token_from_authorization
from ..core.redact import redact_tree
from .asgi import (
    BodyTooLargeError,
    ClientDisconnectedError,
    Receive,
    RequestHeaders,
    Scope,
    Send,
    read_body,
    send_error,
    send_json,
)
from .operator import UNAUTHORIZED_HEADERS, authorized, operator_tokens

MAX_BODY_BYTES = 4096
NO_STORE = [(b"cache-control", b"no-store")]


class PinsEndpoints:
    """Reads `app.state.pins` (the `PinGuard`) per request: a reload keeps the guard."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def table(self, base: str) -> dict[str, Any]:
        """Under the baseURL's path, like the status page that calls them, and at the root as before."""
        paths = {"/_pins": self.view, "/_pins/approve": self.approve}
        return {f"{prefix}{path}": handler for prefix in ("", base) for path, handler in paths.items()}

    async def view(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        state = self.app.state
        if not await authorized(state.config, headers, send):
            return
        await send_json(send, 200, redact_tree(state.pins.status(), self.app.redactor), NO_STORE)

    async def approve(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        """`POST {"server": ..., "tool": ...}` (tool optional) with an operator token, never without one."""
        state = self.app.state
        if scope["method"] != "POST":
            await send_error(send, 405, "Method Not Allowed", [(b"allow", b"POST")])
            return
        tokens = operator_tokens(state.config)
        if not tokens.enabled:
            await send_error(
                send, 403, "Forbidden: approving needs an operator token (mcpProxy.options.authTokens)"
            )
            return
        if tokens.match(token_from_authorization(headers.authorization)) is None:
            await send_error(send, 401, "Unauthorized", UNAUTHORIZED_HEADERS)
            return
        request = await self._request(receive, send)
        if request is None:
            return
        server, tool = request
        try:
            changes = state.pins.approve(server, tool)
        except KeyError:
            await send_error(send, 404, f"Unknown server: {server!r} is not running")
            return
        except OSError as exc:
            await send_error(send, 500, f"Could not write the lock file: {exc}")
            return
        await send_json(
            send, 200, {"approved": [c.as_json() | {"description": c.describe()} for c in changes]}
        )

    @staticmethod
    async def _request(receive: Receive, send: Send) -> tuple[str, str | None] | None:
        try:
            body = orjson.loads(await read_body(receive, MAX_BODY_BYTES))
        except (BodyTooLargeError, orjson.JSONDecodeError):
            body = None
        except ClientDisconnectedError:
            return None
        server = body.get("server") if isinstance(body, dict) else None
        tool = body.get("tool") if isinstance(body, dict) else None
        if not isinstance(server, str) or not (tool is None or isinstance(tool, str)):
            await send_error(send, 400, 'Bad Request: expected JSON {"server": "<name>", "tool": "<name>"?}')
            return None
        return server, tool
