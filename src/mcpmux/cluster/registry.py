"""The replica registry in Valkey/Redis: each replica's advertised URL under a key that expires."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson

from .values import BoundedValues

log = logging.getLogger("mcpmux.cluster")

KEY_PREFIX = "mcpmux:replica:"
TTL_SECONDS = 15  # a replica that stops heartbeating is forgotten after this
HEARTBEAT_SECONDS = 5.0
CACHE_SECONDS = 5.0  # how long a looked-up address is reused (a dead owner is also found by its refusal)
CACHE_LIMIT = 4096
LATE_SECONDS = 2 * HEARTBEAT_SECONDS  # a heartbeat older than this: the replica is late (busy, or dying)
MAX_ENTRY_BYTES = 8192  # a registry entry above this is not read (nor written: `register` refuses it)


class Registry:
    """Registers this replica (heartbeat with a TTL) and looks the others' addresses up, cached briefly."""

    def __init__(
        self,
        redis: Any,
        replica: str,
        advertise: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.replica = replica
        self.advertise = advertise
        self.clock = clock
        self.wall = wall  # heartbeats carry the wall-clock time: the view shows how old each one is
        self.stats: Callable[[], dict[str, Any]] = dict  # published with each heartbeat (the cluster view)
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._values = BoundedValues(redis, MAX_ENTRY_BYTES)

    async def register(self) -> None:
        entry = orjson.dumps({"url": self.advertise, "stats": self.stats(), "at": self.wall()})
        if len(entry) > MAX_ENTRY_BYTES:  # the others would not read it
            raise ValueError(f"the registry entry is above {MAX_ENTRY_BYTES} bytes (advertise URL too long?)")
        await self.redis.set(KEY_PREFIX + self.replica, entry, ex=TTL_SECONDS)

    async def heartbeat(self) -> None:
        """Renew the key until cancelled; a failed renewal is logged and retried (Redis may come back)."""
        failing = False
        while True:
            await anyio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.register()
            except Exception as exc:  # task boundary: a Redis outage must not stop this replica
                if not failing:
                    log.warning("Cluster: cannot renew this replica in Redis: %s", type(exc).__name__)
                failing = True
                continue
            if failing:
                log.info("Cluster: Redis reachable again")
            failing = False

    async def leave(self) -> None:
        """Unregister (at shutdown); with Redis gone the entry expires by itself, the exit stays clean."""
        try:
            await self.redis.delete(KEY_PREFIX + self.replica)
        except Exception as exc:  # shutdown boundary: nothing to retry
            log.warning(
                "Cluster: could not unregister this replica (its entry expires): %s", type(exc).__name__
            )

    async def address(self, replica: str) -> str | None:
        """The replica's advertised URL, or None if it is not registered (stopped, or dead past its TTL)."""
        now = self.clock()
        cached = self._cache.get(replica)
        if cached is not None and cached[1] > now:
            return cached[0]
        url = entry_url(await self._values.one(KEY_PREFIX + replica))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[replica] = (url, now + CACHE_SECONDS)
        return url

    async def members(self) -> list[dict[str, Any]]:
        """Every registered replica (at most CACHE_LIMIT): id, URL and the stats of its last heartbeat."""
        keys = []
        async for key in self.redis.scan_iter(match=KEY_PREFIX + "*", count=100):
            keys.append(key)
            if len(keys) >= CACHE_LIMIT:
                break
        values = await self._values.many(keys)
        members = []
        now = self.wall()
        for key, raw in zip(keys, values, strict=True):
            entry = parse_entry(raw)
            if entry is not None:
                replica = (key.decode() if isinstance(key, bytes) else key)[len(KEY_PREFIX) :]
                member = {"replica": replica, "self": replica == self.replica, **entry}
                members.append(with_health(member, now))
        return sorted(members, key=lambda m: str(m["replica"]))

    def forget(self, replica: str) -> None:
        """Drop a cached address (its replica refused a connection)."""
        self._cache.pop(replica, None)


def parse_entry(raw: Any) -> dict[str, Any] | None:
    """A registry value (written by another replica: checked, not trusted); None if unusable."""
    try:
        entry = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        return None
    stats, at = entry.get("stats"), entry.get("at")
    return {
        "url": entry["url"],
        "stats": stats if isinstance(stats, dict) else {},
        "at": float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None,
    }


def with_health(member: dict[str, Any], now: float) -> dict[str, Any]:
    """The member with `heartbeatSeconds` (age of its last heartbeat) and `health`: `ready`, `not ready`
    (its servers are not all available), `late` (no heartbeat for a while) or `unknown` (no time sent)."""
    at = member.pop("at", None)
    if at is None:
        return {**member, "heartbeatSeconds": None, "health": "unknown"}
    age = round(max(0.0, now - at), 1)
    if age > LATE_SECONDS:
        health = "late"
    else:
        health = "ready" if member["stats"].get("ready", True) is True else "not ready"
    return {**member, "heartbeatSeconds": age, "health": health}


def entry_url(raw: Any) -> str | None:
    """A registered replica's URL, when it is one requests can be relayed to (http or https, with a
    host and a valid port); None otherwise (Redis content is checked, not trusted)."""
    entry = parse_entry(raw)
    url = None if entry is None else str(entry["url"])
    try:
        parts = urlsplit(url) if url is not None else None
        usable = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        _port = parts.port if parts is not None else None  # raises for a port out of range
    except ValueError:
        return None
    return url if usable else None
