"""Small raw-ASGI building blocks: request headers, bounded bodies (a POSTed message), plain responses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import unquote_plus

import orjson

from ..jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, Message, MessageError, error_response, parse_message

log = logging.getLogger("mcpmux.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class RequestHeaders:
    """The request headers mcpmux looks at, picked out of the ASGI list in one pass."""

    __slots__ = (
        "_client",
        "_peer",
        "accept",
        "authorization",
        "content_length",
        "content_type",
        "host",
        "last_event_id",
        "mcp_method",
        "mcp_name",
        "origin",
        "protocol_version",
        "raw",
        "repeated",
        "session_id",
    )

    def __init__(self, raw: list[tuple[bytes, bytes]], peer: str = "", client: Any = None) -> None:
        self._peer = peer  # the client's address (not a header: from the connection), "" when unknown
        self._client = client  # or the ASGI scope's `client`, made `peer` only if asked (rarely)
        self.authorization: str | None = None
        self.host: str | None = None
        # a header that must come once and came again (Host, Authorization, Origin, the session and
        # routing headers): 400, never a guess a front proxy might make the other way (RFC 9110 5.3)
        self.repeated: str | None = None
        self.origin: str | None = None
        self.session_id: str | None = None
        self.content_type: bytes = b""
        self.accept: bytes = b""
        self.protocol_version: str | None = None
        self.content_length: int | None = None
        self.last_event_id: str | None = None
        self.mcp_method: str | None = None  # 2026-07-28 routing headers, checked against the body
        self.mcp_name: str | None = None
        self.raw = raw  # all of them, for what only rare requests read (Mcp-Param-* of 2026 tool calls)
        seen = 0  # the bits of the once-only headers met so far
        # branches and operators, not a call per header: this runs for every request
        for name, value in raw:
            if name in _ONCE:
                attr, label, bit = _ONCE[name]
                if seen & bit:
                    self.repeated = label
                seen |= bit
                setattr(self, attr, value.decode("latin-1"))  # (cheaper than a table lookup by value)
            elif name == b"content-type":
                self.content_type = value
            elif name == b"accept":
                self.accept = value
            elif name == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None

    @property
    def peer(self) -> str:
        """The client's address ("" when the server does not know it)."""
        client = self._client
        return str(client[0]) if client else self._peer


# Headers that must come once (attribute, name in the 400): a second one marks the request `repeated`
# (RFC 9110 5.3: never a guess a front proxy might make the other way)
_ONCE: dict[bytes, tuple[str, str, int]] = {
    name: (attr, label, 1 << bit)
    for bit, (name, attr, label) in enumerate(
        [
            (b"authorization", "authorization", "Authorization"),
            (b"host", "host", "Host"),
            (b"origin", "origin", "Origin"),
            (b"mcp-session-id", "session_id", "Mcp-Session-Id"),
            (b"mcp-protocol-version", "protocol_version", "MCP-Protocol-Version"),
            (b"last-event-id", "last_event_id", "Last-Event-ID"),
            (b"mcp-method", "mcp_method", "Mcp-Method"),
            (b"mcp-name", "mcp_name", "Mcp-Name"),
        ]
    )
}


class BodyTooLargeError(Exception):
    pass


class ClientDisconnectedError(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnectedError
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise BodyTooLargeError
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def read_posted(
    receive: Receive, send: Send, limit: int, headers: RequestHeaders | None = None
) -> Message | None:
    """A POSTed body read within `limit` bytes and parsed as one message; None once refused (or gone).

    Given the request's `headers` (streamable HTTP), refused before it is read for a Content-Type
    without JSON (415) or a Content-Length past `limit` (413); then 413 past `limit`, 400 unparsable.
    """
    try:
        if headers is not None:
            if b"json" not in headers.content_type:
                await send_error(send, 415, "Unsupported Media Type: Content-Type must be application/json")
                return None
            if headers.content_length is not None and headers.content_length > limit:
                raise BodyTooLargeError
        return parse_message(await read_body(receive, limit))
    except BodyTooLargeError:
        await send_error(send, 413, f"Request body larger than {limit} bytes")
    except ClientDisconnectedError:
        pass
    except MessageError as exc:
        await send_error(send, 400, str(exc), code=exc.code)
    return None


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers) -> None:
    if respond_now(send, status, body, headers):
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class EarlySend(Protocol):
    """An ASGI `send` that can also write a whole response synchronously: the early response path.

    mcpmux's HTTP server passes one (`web/exchange.py` `Exchange`), so an upstream's reader can answer a
    client from its callback without waking the request's task. Whatever wraps `send` (access logging)
    must offer `respond_now` too, or the path silently closes; a plain ASGI server's `send` has none and
    every response goes through `send`.
    """

    def __call__(self, message: MutableMapping[str, Any]) -> Awaitable[None]: ...

    def respond_now(self, status: int, headers: Headers, body: bytes) -> bool:
        """Write status, headers (with Content-Length) and body now; False when it cannot be done now."""
        ...


def respond_now(send: Send, status: int, body: bytes, headers: Headers) -> bool:
    """Write a whole response synchronously when `send` is an `EarlySend` that can now; else False."""
    respond = getattr(send, "respond_now", None)
    if respond is None:
        return False
    return bool(respond(status, [*headers, (b"content-length", str(len(body)).encode())], body))


def watch_disconnect(send: Send, callback: Callable[[], None] | None) -> bool:
    """Have `callback` called when the client's connection goes before the response is complete (None
    stops watching); False when `send` cannot tell (not mcpmux's own server, or a wrapper without it)."""
    watch = getattr(send, "watch_disconnect", None)
    return watch is not None and bool(watch(callback))


class RecordingSend:
    """Wraps a `send` and records the response status, keeping the early path if the server offers it."""

    __slots__ = ("inner", "status", "task", "watch_disconnect")

    def __init__(self, inner: Send) -> None:
        self.inner = inner
        self.status = 0
        self.task: Any = getattr(inner, "task", None)  # the task running the request, if known (`Exchange`)
        # the inner send's own disconnect watch, bound once (None: it cannot tell); no call in between
        self.watch_disconnect: Callable[[Callable[[], None] | None], bool] | None = getattr(
            inner, "watch_disconnect", None
        )

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.inner(message)

    def respond_now(self, status: int, headers: Headers, body: bytes) -> bool:
        respond = getattr(self.inner, "respond_now", None)
        if respond is None or not respond(status, headers, body):
            return False
        self.status = status
        return True


async def send_json(send: Send, status: int, payload: Any, headers: Headers | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(payload), [JSON_TYPE, *(headers or ())])


async def send_error(
    send: Send, status: int, message: str, headers: Headers | None = None, *, code: int = INVALID_REQUEST
) -> None:
    """An HTTP error whose body is a JSON-RPC error (id null), as MCP clients expect from an endpoint.

    The code is -32600 (Invalid Request) unless told otherwise, as the SDK's own server answers.
    """
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    await send_json(send, status, body, headers)


def query_param(query: bytes, *names: str) -> str:
    """The first value of the first of `names` present in a query string ("" if none), decoded.

    What `parse_qs(...)[name][0]` gives, without building a dict of lists on every request.
    """
    text = query.decode("latin-1")
    for name in names:
        prefix = name + "="
        for pair in text.split("&"):
            if pair.startswith(prefix):
                value = pair[len(prefix) :]
                return unquote_plus(value) if "%" in value or "+" in value else value
    return ""


def encode(msg: Any) -> bytes:
    """A response as JSON; one that cannot be written (nested deeper than 254 levels) becomes an error."""
    try:
        return orjson.dumps(msg)
    except orjson.JSONEncodeError as exc:
        log.warning("a response for a client could not be encoded: %s", exc)
        request_id = msg.get("id") if isinstance(msg, dict) else None
        error = error_response(request_id, INTERNAL_ERROR, f"mcpmux: cannot encode the response ({exc})")
        return orjson.dumps(error)


def event_of(msg: Any) -> bytes:
    """One message as an SSE event; a notification or request that cannot be encoded is left out (logged)."""
    if isinstance(msg, dict) and "method" in msg:
        try:
            return sse_event(orjson.dumps(msg))
        except orjson.JSONEncodeError as exc:
            log.warning("a %s message for a client could not be encoded (dropped): %s", msg["method"], exc)
            return b""
    return sse_event(encode(msg))


def sse_event(data: bytes, event: bytes = b"message") -> bytes:
    return b"event: " + event + b"\ndata: " + data + b"\n\n"
