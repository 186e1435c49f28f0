"""The cluster's relay hook, contained: a failure in it is a clean 502, never a 500 or a traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..core.redact import redact_running
from ..jsonrpc import INTERNAL_ERROR, error_response
from ..relay.route import Route
from .asgi import Receive, RecordingSend, Send, send_json

log = logging.getLogger("mcpmux.cluster")

FAILED = "Bad Gateway: the cluster could not serve this request"


async def intercepted(
    hook: Callable[[Send], Awaitable[tuple[Receive, Send] | None]], route: Route, method: str, send: Send
) -> tuple[Receive, Send] | None:
    """`hook(send)`, the cluster's `intercept` (cluster/node.py) for a `method` request on `route`: None
    when it answered, else the `receive` and `send` to serve the request with. An unexpected failure in
    it is logged (its kind and the route: no path, which may hold a path token) and answered with a 502
    JSON-RPC error when nothing was sent yet (a started response is ended); the connection goes on."""
    recording = RecordingSend(send)
    try:
        served = await hook(recording)
    except Exception as exc:  # task boundary: the hook's failure must not become a 500 or a traceback
        where = redact_running(route.name or "/mcp")  # a path-token server's name holds its token
        log.error("Cluster: relaying a %s on %s failed: %s", method, where, type(exc).__name__)
        if not recording.status:
            await send_json(send, 502, error_response(None, INTERNAL_ERROR, FAILED))
        else:
            with contextlib.suppress(Exception):  # the response may have ended already
                await send({"type": "http.response.body", "body": b""})
        return None
    if served is not None and served[1] is recording:
        return served[0], send
    return served
