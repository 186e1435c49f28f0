"""Resumable POST answers: a request's SSE events in a Redis stream, replayed from `Last-Event-ID` anywhere.

The owner replica gives each event of a POST's event-stream answer the id `p.<tag>.<n>` and writes it to
`mcpmux:post:<session>:<tag>` before sending it (each entry with the digest of the session's token; a
last one marks the answer's end). When the connection drops (the client's, or a relaying replica's),
the request goes on and its events still reach Redis; the client's GET with that `Last-Event-ID`, on any
replica, gets the events after it and then the answer, and the stream ends there (2025-06-18
resumability). Bounded: at most STREAM_MAXLEN events, gone an hour after the last write, five minutes
after the answer.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..web.asgi import SSE_HEADERS, Headers, Receive, Send, send_error, watch_disconnect
from .forward import while_connected
from .pieces import MAX_MESSAGE_BYTES, READ_COUNT, Assembler, pieces
from .streams import KEEPALIVE_ROUNDS, READ_BLOCK_MS, STREAM_MAXLEN, STREAM_TTL_SECONDS

log = logging.getLogger("mcpmux.cluster")

POST_ID = re.compile(r"p\.([0-9a-f]{16})\.(\d{1,12})")
ANSWERED_TTL_SECONDS = 300  # an answered request's events stay this long (for a late reconnect)


def post_key(session_id: str, tag: str) -> str:
    return f"mcpmux:post:{session_id}:{tag}"


def with_id(event: bytes, tag: str, seq: int) -> bytes:
    return b"id: p." + tag.encode() + b"." + str(seq).encode() + b"\n" + event


def events_of(body: bytes) -> list[bytes]:
    """The SSE events in a body (each with its blank line); comments and empty parts are left out."""
    parts = [part for part in body.split(b"\n\n") if part]
    return [part + b"\n\n" for part in parts if b"data:" in part]


def is_event_stream(headers: Any) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers)


class RecordedSend:
    """The ASGI `send` of a POST to a session of this replica: an event-stream answer's events get ids and
    go to Redis before the client; anything else passes through (and so does the early JSON path)."""

    def __init__(self, redis: Any, send: Send, session_id: str, digest: str) -> None:
        self.redis = redis
        self.inner = send
        self.session_id = session_id
        self.digest = digest
        self.tag: str | None = None  # set once the answer is an event stream that Redis keeps
        self.seq = 0  # the last event's number

    def respond_now(self, status: int, headers: Headers, body: bytes) -> bool:
        respond = getattr(self.inner, "respond_now", None)
        return respond is not None and bool(respond(status, headers, body))

    def watch_disconnect(self, callback: Callable[[], None] | None) -> bool:
        return watch_disconnect(self.inner, callback)  # a 2026 request's cancel on close (web/modern.py)

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if is_event_stream(message.get("headers") or []):
                self.tag = secrets.token_hex(8)
        elif self.tag is not None and message["type"] == "http.response.body":
            message = await self._recorded(message)
        await self.inner(message)

    async def _recorded(self, message: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        assert self.tag is not None
        events = events_of(message.get("body", b""))
        done = not message.get("more_body", False)
        if not events and not done:
            return message
        tag, pipe = self.tag, self.redis.pipeline(transaction=False)
        key = post_key(self.session_id, tag)
        ids = [self._add(pipe, key, event) for event in events]
        if done:
            self.seq += 1
            pipe.xadd(key, {"t": self.digest, "e": b"1"}, id=f"0-{self.seq}")
        pipe.expire(key, ANSWERED_TTL_SECONDS if done else STREAM_TTL_SECONDS)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis down: this answer goes on without ids (not resumable)
            log.warning("Cluster: a POST's event stream is not resumable: %s", type(exc).__name__)
            self.tag = None
            return message
        body = b"".join(
            event if seq is None else with_id(event, tag, seq) for event, seq in zip(events, ids, strict=True)
        )
        return {**message, "body": body}

    def _add(self, pipe: Any, key: str, event: bytes) -> int | None:
        """Queue an event's entries (its pieces) on `pipe`: its id (its last entry's number), or None
        for an event too big to keep (sent on without an id)."""
        if len(event) > MAX_MESSAGE_BYTES:  # its readers would skip it
            log.warning("Cluster: a POST stream event of %d bytes not kept (too big)", len(event))
            return None
        for entry in pieces(event, {"t": self.digest.encode()}):
            self.seq += 1
            pipe.xadd(key, entry, id=f"0-{self.seq}", maxlen=STREAM_MAXLEN, approximate=True)
        return self.seq


async def replay(
    redis: Any,
    session_id: str,
    last_event_id: str,
    digest: str,
    receive: Receive,
    send: Send,
    alive: Callable[[], Awaitable[bool]],
) -> None:
    """A GET resuming a POST's answer: its events after `last_event_id`, then the answer; 404 when that
    stream is unknown (expired, another session's) or another token's."""
    found = POST_ID.fullmatch(last_event_id)
    assert found is not None
    tag, seq = found.group(1), int(found.group(2))
    key = post_key(session_id, tag)
    last = await redis.xrevrange(key, count=1)
    owner_digest = last[0][1].get(b"t", b"") if last else b""
    if not hmac.compare_digest(bytes(owner_digest), digest.encode()):
        await send_error(send, 404, "Not Found: no such stream in this session")
        return
    headers = [*SSE_HEADERS, (b"mcp-session-id", session_id.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def relay() -> None:
        try:
            await _relay(redis, key, tag, seq, send, alive)
        except Exception as exc:  # task boundary: Redis gone; the client may try again
            log.warning("Cluster: a resumed POST stream ended: %s", type(exc).__name__)

    await while_connected(receive, send, relay)


async def _relay(
    redis: Any, key: str, tag: str, seq: int, send: Send, alive: Callable[[], Awaitable[bool]]
) -> None:
    quiet, assembler = 0, Assembler("POST")
    while True:
        answer = await redis.xread({key: f"0-{seq}"}, count=READ_COUNT, block=READ_BLOCK_MS)
        entries = answer[0][1] if answer else []
        if not entries:
            if not await alive():
                return  # the owner (or the session) is gone: the answer will not come
            quiet += 1
            if quiet >= KEEPALIVE_ROUNDS:
                quiet = 0
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
            continue
        body, seq, done = post_batch(entries, tag, assembler)
        quiet = 0
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if done:
            return


def post_batch(entries: list[Any], tag: str, assembler: Assembler) -> tuple[bytes, int, bool]:
    """What one read of a POST's stream sends: the events its `entries` complete, ids stamped (an
    event's id is its last entry's number); the number of the last entry read; whether the answer's
    end was reached. Entries are checked as on GET streams (cluster/pieces.py)."""
    parts: list[bytes] = []
    last = 0
    for entry_id, fields in entries:
        last = int(entry_id.split(b"-")[1])
        if isinstance(fields, dict) and b"e" in fields:
            return b"".join(parts), last, True
        event = assembler.feed(fields)
        if event is not None:
            parts.append(with_id(event, tag, last))
    return b"".join(parts), last, False
