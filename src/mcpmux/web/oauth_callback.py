"""`{basePath}/_oauth/callback`: where an upstream's authorization server sends the browser after a login."""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..core.redact import redact_running
from .asgi import Receive, RequestHeaders, Scope, Send, send_bytes

if TYPE_CHECKING:
    from .state import StateSource

log = logging.getLogger("mcpmux.oauth")

CALLBACK_PATH = "/_oauth/callback"
PAGE = "<!doctype html><meta charset=utf-8><title>mcpmux login</title><p>{}</p>"
HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),  # the code must not leak through a Referer
]


def callback_paths(source: StateSource, base: str) -> dict[str, Any]:
    """The callback route when any server logs in with OAuth; nothing otherwise."""
    if not any(rt.oauth is not None for rt in source.state.runtimes.values()):
        return {}
    return {f"{base}{CALLBACK_PATH}": OAuthCallback(source)}


class OAuthCallback:
    """Finishes the pending login whose `state` the redirect carries (started by `mcpmux auth login`)."""

    def __init__(self, source: StateSource) -> None:
        self.source = source  # its runtimes read per request: a reload replaces them

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        if scope["method"] != "GET":
            await send_bytes(
                send, 405, PAGE.format("Method Not Allowed").encode(), [*HEADERS, (b"allow", b"GET")]
            )
            return
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
        status, message = await self.finish(query)  # names a server (path tokens) and the AS's errors:
        page = PAGE.format(html.escape(redact_running(message)))  # redacted like any error to a client
        await send_bytes(send, status, page.encode(), HEADERS)

    async def finish(self, query: dict[str, str]) -> tuple[int, str]:
        from ..oauth.flow import FlowError

        if "error" in query:
            return 400, f"The authorization server refused the login: {query['error'][:100]}"
        code, state = query.get("code"), query.get("state")
        if not code or not state:
            return 400, "Missing code or state."
        for runtime in self.source.state.runtimes.values():
            auth = runtime.oauth
            if auth is None or not await auth.has_pending(state):
                continue
            try:
                await auth.finish_login(code, state, query.get("iss"))
            except FlowError as exc:
                log.warning("%s: OAuth login failed: %s", auth.name, exc, extra={"server": auth.name})
                return 400, f"The login to {auth.name} failed: {exc}"
            log.info("%s: OAuth login completed", auth.name, extra={"server": auth.name})
            return 200, f"Logged in to {auth.name}. You can close this window."
        return 400, "No pending login matches this request; start one with: mcpmux auth login <server>"
