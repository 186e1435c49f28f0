"""Reloads cluster-wide: a replica that reloaded announces it on a Redis channel; the others reload too
(coalesced: a flood of announcements makes at most one reload after the running one)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

log = logging.getLogger("mcpmux.cluster")

RELOAD_CHANNEL = "mcpmux:reload"
REPLICA_SHOWN = 32  # characters of a sender's id in a log line (it comes from Redis: bounded)
RETRY_SECONDS = 3.0


async def announce_reload(redis: Any, replica: str) -> None:
    """After a reload that started on `replica`: every other replica reloads too (from its own source)."""
    try:
        await redis.publish(RELOAD_CHANNEL, replica)
    except Exception as exc:  # Redis down: the others keep their config (and say nothing)
        log.warning("Cluster: could not tell the other replicas to reload: %s", type(exc).__name__)


class ReloadQueue:
    """Reload requests, coalesced: while a reload runs, any number of further requests make one
    follow-up reload (with the latest reason), never one each (a flood on the channel must not
    become a flood of reloads)."""

    def __init__(self) -> None:
        self.pending: str | None = None
        self.wake = anyio.Event()

    def request(self, why: str) -> None:
        self.pending = why
        self.wake.set()

    async def run(self, on_reload: Callable[[str], Awaitable[None]]) -> None:
        """Reload for what was requested, one at a time, until cancelled."""
        while True:
            await self.wake.wait()
            self.wake = anyio.Event()  # what is requested from now on wakes the next round
            why, self.pending = self.pending, None
            if why is None:
                continue
            try:
                await on_reload(why)
            except Exception as exc:  # task boundary: the next request reloads again
                log.warning("Cluster: reload failed: %s", type(exc).__name__)


async def listen_reloads(redis: Any, replica: str, on_reload: Callable[[str], Awaitable[None]]) -> None:
    """Reload when another replica did (coalesced: ReloadQueue); a lost Redis connection is retried
    every few seconds."""
    queue = ReloadQueue()
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.run, on_reload)
        await _read_reloads(redis, replica, queue)


async def _read_reloads(redis: Any, replica: str, queue: ReloadQueue) -> None:
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(RELOAD_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    data = message.get("data") if message else None
                    sender = data.decode(errors="replace") if isinstance(data, bytes) else replica
                    if sender != replica:
                        queue.request(f"replica {sender[:REPLICA_SHOWN]} reloaded its config")
        except Exception as exc:  # task boundary: keep listening once Redis is back
            log.warning("Cluster: reload channel lost (%s); retrying", type(exc).__name__)
            await anyio.sleep(RETRY_SECONDS)
