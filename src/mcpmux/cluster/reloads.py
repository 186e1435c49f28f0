"""Reloads cluster-wide: a replica that reloaded announces it on a Redis channel; the others reload too."""

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


async def listen_reloads(redis: Any, replica: str, on_reload: Callable[[str], Awaitable[None]]) -> None:
    """Reload when another replica did; a lost Redis connection is retried every few seconds."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(RELOAD_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    data = message.get("data") if message else None
                    sender = data.decode(errors="replace") if isinstance(data, bytes) else replica
                    if sender != replica:
                        await on_reload(f"replica {sender[:REPLICA_SHOWN]} reloaded its config")
        except Exception as exc:  # task boundary: keep listening once Redis is back
            log.warning("Cluster: reload channel lost (%s); retrying", type(exc).__name__)
            await anyio.sleep(RETRY_SECONDS)
