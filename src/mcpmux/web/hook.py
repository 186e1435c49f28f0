"""The cluster's relay hook, contained: a failure in it is a clean 502, never a 500 or a traceback."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ..jsonrpc import INTERNAL_ERROR, error_response
from ..relay.route import Route
from .asgi import Receive, RecordingSend, RequestHeaders, Scope, Send, send_json

if TYPE_CHECKING:
    from ..config.model import TokenScope

log = logging.getLogger("mcpmux.cluster")

FAILED = "Bad Gateway: the cluster could not serve this request"


async def intercepted(
    cluster: Any,
    route: Route,
    token: TokenScope | None,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: RequestHeaders,
) -> tuple[Receive, Send] | None:
    """`cluster.intercept` (cluster/node.py): None when it answered, else the `receive` and `send` to
    serve the request with. An unexpected failure in it is logged (its kind and the route: no path,
    which may hold a path token) and answered with a 502 JSON-RPC error when nothing was sent yet (a
    started response is ended); the connection goes on."""
    recording = RecordingSend(send)
    try:
        served: tuple[Receive, Send] | None = await cluster.intercept(
            route, token, scope, receive, recording, headers
        )
    except Exception as exc:  # task boundary: the hook's failure must not become a 500 or a traceback
        log.error(
            "Cluster: relaying a %s on %s failed: %s",
            scope["method"],
            route.name or "/mcp",
            type(exc).__name__,
        )
        if not recording.status:
            await send_json(send, 502, error_response(None, INTERNAL_ERROR, FAILED))
        else:
            with contextlib.suppress(Exception):  # the response may have ended already
                await send({"type": "http.response.body", "body": b""})
        return None
    if served is not None and served[1] is recording:
        return served[0], send
    return served
