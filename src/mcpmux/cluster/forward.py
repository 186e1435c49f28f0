"""Relaying one HTTP request to the replica that owns its session, the response streamed back as it comes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2

from ..web.asgi import Receive, Scope, Send, send_bytes

# Not relayed in either direction: connection-level headers, and the length (recomputed per hop).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
        b"content-length",
        b"x-mcpmux-forwarded",
    }
)
STREAM_TYPE = b"text/event-stream"


class OwnerUnreachableError(Exception):
    """The owner refused or dropped the connection before answering: it is gone."""


def relayed_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in headers if k.lower() not in HOP_BY_HOP]


async def forward(
    client: httpx2.AsyncClient,
    url: str,
    scope: Scope,
    body: bytes,
    receive: Receive,
    send: Send,
    extra: list[tuple[bytes, bytes]],
) -> None:
    """Send the request to `url`; answer the caller with the owner's status, headers and body.

    A JSON answer goes back in one piece; an event stream is relayed chunk by chunk until either side
    ends it (the caller disconnecting closes the connection to the owner).
    """
    headers = [*relayed_headers(scope["headers"]), *extra]
    response = await _send(client, client.build_request(scope["method"], url, headers=headers, content=body))
    try:
        answer = relayed_headers(response.headers.raw)
        if STREAM_TYPE not in response.headers.get("content-type", "").encode():
            try:
                content = await response.aread()
            except httpx2.TransportError as exc:
                raise OwnerUnreachableError(str(exc)) from exc
            await send_bytes(send, response.status_code, content, answer)
            return
        await send({"type": "http.response.start", "status": response.status_code, "headers": answer})
        await relay_stream(response, receive, send)
    finally:
        await response.aclose()


async def _send(client: httpx2.AsyncClient, request: httpx2.Request) -> httpx2.Response:
    """Send; once more on a failure (a pooled connection the owner had closed), then it is gone."""
    for attempt in range(2):
        try:
            return await client.send(request, stream=True)
        except httpx2.TransportError as exc:
            if attempt:
                raise OwnerUnreachableError(str(exc) or type(exc).__name__) from exc
    raise AssertionError("unreachable")


async def relay_stream(response: httpx2.Response, receive: Receive, send: Send) -> None:
    """Relay an open response's body as it comes, until either side ends it."""

    async def pump() -> None:
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx2.TransportError:
            pass  # the owner went away mid-stream: the client sees the stream end and reconnects

    await while_connected(receive, send, pump)


async def while_connected(receive: Receive, send: Send, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` (writing a streamed response) until it returns or the caller goes; then end the body."""

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        tg.cancel_scope.cancel()

    async def run() -> None:
        await work()
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_disconnect)
        tg.start_soon(run)
    with anyio.CancelScope(shield=True):
        await send({"type": "http.response.body", "body": b""})
