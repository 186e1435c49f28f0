"""Resumable GET streams: a session's standalone messages in a Redis stream whose ids are SSE event ids.

The owner replica drains the session's outbox into the stream (bounded: MAXLEN and a TTL renewed on
each write); any replica serves a GET stream by reading it from the client's `Last-Event-ID` on, or
from what the last stream delivered. A session record beside it binds the stream to the session's
token (an HMAC of it) so a replica that does not hold the session can still check the caller.
A replica serving the stream of a session it does not own keeps a short-lived "listening" key alive;
the owner, which ends idle sessions, counts the session active while that key lives.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson

from ..config.model import TokenScope
from ..relay.client import ClientSession
from ..relay.route import Route, idle_check_seconds
from ..web.asgi import SSE_HEADERS, Receive, Send, encode
from .forward import while_connected
from .pieces import MAX_MESSAGE_BYTES, READ_COUNT, Assembler, pieces

log = logging.getLogger("mcpmux.cluster")

STREAM_MAXLEN = 1000  # entries kept per session (approximately: Redis trims in whole nodes)
STREAM_TTL_SECONDS = 3600  # a stream and its record vanish this long after the last write
READ_BLOCK_MS = 2000  # one blocking read; between them the session is checked (below the socket timeout)
KEEPALIVE_ROUNDS = 12  # an SSE comment after this many empty reads (about 25 s)
EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
LISTEN_TTL_FLOOR_SECONDS = 10.0  # a listening key outlives several refreshes (one per read, at most 2 s)
LISTEN_CHECKS_PER_TTL = 3  # the owner looks at least this often while a listening key lives
QUIET_WAIT_SECONDS = 30.0  # the owner's pump wakes up at least this often


def stream_key(session_id: str) -> str:
    return f"mcpmux:stream:{session_id}"


def record_key(session_id: str) -> str:
    return f"mcpmux:session:{session_id}"


def listen_key(session_id: str) -> str:
    return f"mcpmux:listening:{session_id}"


def listen_check_seconds(route: Route) -> float | None:
    """How often the owner looks for a listener elsewhere; None: the route never ends idle sessions."""
    return None if route.idle_timeout_seconds is None else idle_check_seconds([route])


def listen_ttl_ms(route: Route) -> int:
    """How long a listening key lives after its last refresh: several of the owner's looks."""
    check = listen_check_seconds(route) or 0.0
    return int(max(LISTEN_TTL_FLOOR_SECONDS, LISTEN_CHECKS_PER_TTL * check) * 1000)


def event_bytes(event_id: bytes, data: bytes) -> bytes:
    return b"id: " + event_id + b"\nevent: message\ndata: " + data + b"\n\n"


def take_batch(entries: list[Any], assembler: Assembler) -> tuple[bytes, bytes, bytes | None]:
    """What one read of a GET stream sends: the SSE events of the messages its `entries` (oldest first)
    complete, each with the id of its last entry; the id of the last entry read, and of the last
    message sent (None: none was completed)."""
    parts: list[bytes] = []
    delivered = None
    for event_id, fields in entries:
        message = assembler.feed(fields)
        if message is not None:
            parts.append(event_bytes(event_id, message))
            delivered = event_id
    return b"".join(parts), entries[-1][0], delivered


class SessionStreams:
    """The Redis side of GET streams: writing a session's messages, and serving them from any replica."""

    def __init__(self, redis: Any, secret: str) -> None:
        self.redis = redis
        self._key = hashlib.sha256(b"mcpmux-token\x00" + secret.encode()).digest()

    def token_digest(self, token: TokenScope | None, route: str) -> str:
        """Who may read a session's stream: the token (static, or OAuth principal of an issuer, with its
        grants) that opened it on that route, encoded without ambiguity (a JSON array)."""
        identity: list[Any] = [route]
        if token is not None:
            identity += [token.identity, list(token.servers)]
            if token.oauth is not None:
                identity += [token.oauth.issuer, repr(token.any_of)]
        return hmac.new(self._key, orjson.dumps(identity), hashlib.sha256).hexdigest()

    async def open(self, client: ClientSession) -> None:
        """The session's record: its token's digest, and the last event a stream delivered."""
        key = record_key(client.id)
        digest = self.token_digest(client.scope, client.route.name)
        await self.redis.hset(key, mapping={"token": digest, "cursor": "0-0"})
        await self.redis.expire(key, STREAM_TTL_SECONDS)

    async def pump(self, client: ClientSession) -> None:
        """Owner side: the outbox into the stream until the session ends; then both keys are removed."""
        stream, record = stream_key(client.id), record_key(client.id)
        check = listen_check_seconds(client.route)
        next_look = 0.0
        try:
            while (batch := await client.outbox.take_all(check or QUIET_WAIT_SECONDS)) is not None:
                if batch:
                    await self._append(stream, record, batch)
                if check is not None and time.monotonic() >= next_look:
                    next_look = time.monotonic() + check
                    await self._vouch(client)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                try:
                    await self.redis.delete(stream, record)
                except Exception as exc:  # Redis gone: the keys expire (STREAM_TTL_SECONDS)
                    log.warning(
                        "Cluster: an ended session's stream stays until it expires: %s", type(exc).__name__
                    )

    async def _append(self, stream: str, record: str, batch: list[Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for data in [encode(msg) for msg in batch]:
            if len(data) > MAX_MESSAGE_BYTES:  # its readers would skip it: not worth Redis's memory
                log.warning("Cluster: a GET stream message of %d bytes not relayed (too big)", len(data))
                continue
            for fields in pieces(data):
                pipe.xadd(stream, fields, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.expire(stream, STREAM_TTL_SECONDS)
        pipe.expire(record, STREAM_TTL_SECONDS)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis down: these messages are lost, the session goes on
            log.warning("Cluster: %d message(s) for a GET stream lost: %s", len(batch), type(exc).__name__)

    async def _vouch(self, client: ClientSession) -> None:
        """A replica serving the stream keeps the session active (idle timeout) while its key lives."""
        try:
            left_ms = await self.redis.pttl(listen_key(client.id))
        except Exception as exc:  # Redis down: no listener known; the idle timeout counts as usual
            log.warning("Cluster: cannot look for a GET stream's listener: %s", type(exc).__name__)
            return
        if left_ms > 0:
            client.listened_until = max(client.listened_until, client.route.clock.now() + left_ms / 1000)

    async def reader_allowed(self, session_id: str, token: TokenScope | None, route: str) -> bool | None:
        """None: no record (no stream yet, or the session ended); else whether this token may read it
        on this route."""
        digest = await self.redis.hget(record_key(session_id), "token")
        if digest is None:
            return None
        return hmac.compare_digest(bytes(digest), self.token_digest(token, route).encode())

    async def serve(
        self,
        session_id: str,
        last_event_id: str | None,
        receive: Receive,
        send: Send,
        alive: Callable[[], Awaitable[bool]],
        listen_ms: int | None = None,
    ) -> None:
        """An SSE response from the stream, resuming after `Last-Event-ID` when it is one of ours.

        `listen_ms`: served for another replica's session, whose idle timeout this stream's listening
        key (refreshed at each read, living this long) holds off.
        """
        headers = [*SSE_HEADERS, (b"mcp-session-id", session_id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def relay() -> None:
            # Redis going away ends the stream (logged); the client comes back with Last-Event-ID
            try:
                cursor = last_event_id if last_event_id and EVENT_ID.fullmatch(last_event_id) else None
                if cursor is None:
                    raw = await self.redis.hget(record_key(session_id), "cursor")
                    cursor = raw.decode() if raw else "0-0"
                await self._relay(session_id, cursor, send, alive, listen_ms)
            except Exception as exc:  # task boundary
                log.warning("Cluster: a GET stream ended: %s", type(exc).__name__)

        await while_connected(receive, send, relay)

    async def _relay(
        self,
        session_id: str,
        cursor: str,
        send: Send,
        alive: Callable[[], Awaitable[bool]],
        listen_ms: int | None,
    ) -> None:
        stream, record = stream_key(session_id), record_key(session_id)
        quiet, assembler = 0, Assembler("GET")
        listened = -math.inf
        while True:
            if listen_ms is not None and time.monotonic() - listened >= READ_BLOCK_MS / 1000:
                listened = time.monotonic()
                await self.redis.set(listen_key(session_id), b"1", px=listen_ms)
            answer = await self.redis.xread({stream: cursor}, count=READ_COUNT, block=READ_BLOCK_MS)
            entries = answer[0][1] if answer else []
            if not entries:
                if not await alive():
                    return  # the session ended (or its owner died): the client learns it on its next request
                quiet += 1
                if quiet >= KEEPALIVE_ROUNDS:
                    quiet = 0
                    await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                continue
            body, last, delivered = take_batch(entries, assembler)
            quiet, cursor = 0, bytes(last).decode()
            if delivered is not None:  # a stream opened without Last-Event-ID starts after it: noted
                await self.redis.hset(record, "cursor", delivered)  # before the client can see it
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
