"""Cluster reads from a real redis-server are bounded in bytes: a session's big messages (GET streams) and a
POST's big events, written by the replica's own writers, come back in reads of at most READ_BYTES of
entries each, and every message reaches the client whole and in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import orjson
import pytest
from cluster_kit import SECRET, running_redis

from mcpmux.cluster.post_streams import RecordedSend, post_key
from mcpmux.cluster.post_streams import _relay as relay_post
from mcpmux.cluster.streams import SessionStreams, record_key, stream_key
from mcpmux.web.asgi import SSE_HEADERS

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 60
MESSAGES = 12
MESSAGE_BYTES = 1024 * 1024  # each about a MiB: the old reads took 16 (GET) or 100 (POST) of them at once
READ_LIMIT = 1024 * 1024 + 64 * 1024  # READ_BYTES of messages, plus ids, field names and digests
SESSION = "aaaaaaaaaaaa.0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef"


class Recorded:
    """The real Redis client, with the bytes of each stream read's reply noted."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.reads: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        answer = await self.redis.xread(*args, **kwargs)
        self.reads.append(sum(_entry_bytes(fields) for _, entries in answer or [] for _, fields in entries))
        return answer

    async def xrevrange(self, *args: Any, **kwargs: Any) -> Any:
        answer = await self.redis.xrevrange(*args, **kwargs)
        self.reads.append(sum(_entry_bytes(fields) for _, fields in answer))
        return answer


def _entry_bytes(fields: dict[bytes, bytes]) -> int:
    return sum(len(k) + len(v) for k, v in fields.items())


@pytest.fixture
async def redis() -> AsyncIterator[Recorded]:
    from redis.asyncio import Redis

    with running_redis() as url:
        client = Redis.from_url(url, socket_timeout=BOUND_SECONDS)
        try:
            yield Recorded(client)
        finally:
            await client.aclose()


def big_message(n: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"n": n, "data": "x" * MESSAGE_BYTES},
    }


def collector(expected: int) -> tuple[list[bytes], Callable[..., Any], Callable[[], Any]]:
    """What a stream sends (its bodies), and an `alive` that ends it once `expected` events came."""
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        bodies.append(message.get("body", b""))

    async def alive() -> bool:
        return b"".join(bodies).count(b"\ndata: ") < expected

    return bodies, send, alive


def events(bodies: list[bytes]) -> list[tuple[str, bytes]]:
    out = []
    for event in b"".join(bodies).split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in event.split(b"\n") if b": " in line)
        if b"data" in lines:
            out.append((lines[b"id"].decode(), lines[b"data"]))
    return out


async def test_a_get_streams_reads_of_big_messages_are_bounded_in_bytes(redis: Recorded) -> None:
    streams = SessionStreams(redis, SECRET)
    sent = [big_message(n) for n in range(MESSAGES)]
    bodies, send, alive = collector(MESSAGES)
    with anyio.fail_after(BOUND_SECONDS):
        await streams._append(stream_key(SESSION), record_key(SESSION), sent)
        await streams._relay(SESSION, "0-0", send, alive, None)
    got = events(bodies)
    assert [orjson.loads(data) for _, data in got] == sent  # whole, in order
    assert max(redis.reads) <= READ_LIMIT, redis.reads  # the first read brought 16 MiB before
    resumed_bodies, send, alive = collector(MESSAGES - 5)
    with anyio.fail_after(BOUND_SECONDS):  # Last-Event-ID: the fifth message's id
        await streams._relay(SESSION, got[4][0], send, alive, None)
    assert [orjson.loads(data) for _, data in events(resumed_bodies)] == sent[5:]


async def test_a_post_streams_reads_of_big_events_are_bounded_in_bytes(redis: Recorded) -> None:
    bodies: list[bytes] = []

    async def client(message: dict[str, Any]) -> None:
        bodies.append(message.get("body", b""))

    recorded = RecordedSend(redis, client, SESSION, "d" * 64)
    sent = [big_message(n) for n in range(MESSAGES)]
    with anyio.fail_after(BOUND_SECONDS):
        await recorded({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for message in sent:
            body = b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"
            await recorded({"type": "http.response.body", "body": body, "more_body": True})
        await recorded({"type": "http.response.body", "body": b"", "more_body": False})
    live = events(bodies)
    assert [orjson.loads(data) for _, data in live] == sent
    assert recorded.tag is not None
    replayed, send, alive = collector(MESSAGES)
    with anyio.fail_after(BOUND_SECONDS):
        await relay_post(redis, post_key(SESSION, recorded.tag), recorded.tag, 0, send, alive)
    assert events(replayed) == live  # the same ids and events as the live answer
    assert max(redis.reads) <= READ_LIMIT, redis.reads  # one read brought all 12 MiB before


async def test_registry_entries_and_shared_tokens_above_their_bound_are_never_read(redis: Recorded) -> None:
    from mcpmux.cluster.oauth_lock import MAX_SHARED_BYTES, RefreshLock
    from mcpmux.cluster.registry import KEY_PREFIX, MAX_ENTRY_BYTES, Registry

    registry = Registry(redis, "aaaaaaaaaaaa", "http://127.0.0.1:1")
    padded = {"url": "http://10.0.0.9:1", "stats": {"pad": "x" * (MAX_ENTRY_BYTES + 1)}, "at": 1.0}
    lock = RefreshLock(redis, SECRET)
    tokens_key = lock._keys("up")[1]
    with anyio.fail_after(BOUND_SECONDS):
        await registry.register()
        await redis.set(KEY_PREFIX + "bbbbbbbbbbbb", orjson.dumps(padded))  # not written by a replica
        await redis.set(KEY_PREFIX + "cccccccccccc", orjson.dumps({**padded, "stats": {}}))
        await redis.lpush(KEY_PREFIX + "dddddddddddd", b"a list, not an entry")
        members = {m["replica"] for m in await registry.members()}
        big, small = await registry.address("bbbbbbbbbbbb"), await registry.address("cccccccccccc")
        await redis.set(tokens_key, b"x" * (MAX_SHARED_BYTES + 1))
        shared = await lock._shared(tokens_key)
    assert members == {"aaaaaaaaaaaa", "cccccccccccc"}  # the padded entry was read and listed before
    assert (big, small) == (None, "http://10.0.0.9:1")
    assert shared is None


async def test_a_replica_whose_registry_entry_would_be_too_big_does_not_start() -> None:
    from mcpmux.cluster.node import Cluster, ClusterError
    from mcpmux.config.model import ClusterConfig

    with running_redis() as url:
        cluster = Cluster(ClusterConfig(url, SECRET), "http://10.0.0.9:1/" + "a" * 9000, 1024)
        try:
            with anyio.fail_after(BOUND_SECONDS), pytest.raises(ClusterError, match="above 8192 bytes"):
                await cluster.connect()  # it said "cannot reach Redis: ValueError"
        finally:
            await cluster.redis.aclose()
