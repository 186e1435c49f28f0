"""One upstream OAuth token refresh for the whole cluster: a Redis lock, the new tokens shared encrypted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from cryptography.fernet import Fernet, InvalidToken

from .values import BoundedValues

log = logging.getLogger("mcpmux.cluster")

LOCK_MS = 30_000  # a refresh holding the lock longer than this lets another replica try
WAIT_SECONDS = 2 * LOCK_MS / 1000  # the longest wait for the lock before refreshing anyway
POLL_SECONDS = 0.05
SHARED_MIN_SECONDS = 5.0  # a shared token expiring sooner than this is not taken
MAX_SHARED_BYTES = 256 * 1024  # shared tokens above this (encrypted) are neither written nor read
# compare-and-delete: only the holder (its random token) releases the lock
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

Renew = Callable[[], Awaitable[dict[str, Any]]]


def adoptable(shared: dict[str, Any] | None, stale: str | None, now: float) -> bool:
    """Tokens another replica got: taken when they differ from ours and do not expire within seconds."""
    if not shared or not shared.get("access_token") or shared.get("access_token") == stale:
        return False
    expiry = shared.get("expires_at")
    return expiry is None or float(expiry) - SHARED_MIN_SECONDS > now


class RefreshLock:
    """`renew(server, stale, renew)`: `renew()` under the cluster lock, or the tokens another replica got.

    Keys name a server by a hash of its name (a name may hold a path token); the shared tokens are
    Fernet-encrypted with a key derived from the cluster secret and expire with the access token.
    """

    def __init__(self, redis: Any, secret: str) -> None:
        self.redis = redis
        key = hmac.new(secret.encode(), b"mcpmux oauth tokens", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._release = redis.register_script(RELEASE)
        self._values = BoundedValues(redis, MAX_SHARED_BYTES)

    @staticmethod
    def _keys(server: str) -> tuple[str, str]:
        tag = hashlib.sha256(server.encode()).hexdigest()[:32]
        return f"mcpmux:oauth-lock:{tag}", f"mcpmux:oauth-tokens:{tag}"

    async def renew(self, server: str, stale: str | None, renew: Renew) -> tuple[dict[str, Any], bool]:
        """(tokens, whether they came from another replica). Without Redis: `renew()` here."""
        lock, shared_key = self._keys(server)
        holder = secrets.token_hex(16)
        try:
            acquired = await self._acquire(lock, holder)
            shared = await self._shared(shared_key)
        except Exception as exc:  # Redis down: refreshing here beats not refreshing
            log.warning(
                "%s: cluster refresh lock unavailable (%s); refreshing here", server, type(exc).__name__
            )
            return await renew(), False
        try:
            if adoptable(shared, stale, time.time()):
                assert shared is not None
                return shared, True
            if not acquired:
                log.warning(
                    "%s: cluster refresh lock still held after %.0f s; refreshing here", server, WAIT_SECONDS
                )
            tokens = await renew()
            await self._publish(shared_key, tokens)
            return tokens, False
        finally:
            if acquired:
                with anyio.CancelScope(shield=True):
                    await self._unlock(lock, holder)

    async def _acquire(self, lock: str, holder: str) -> bool:
        """SET NX PX, polled until taken or WAIT_SECONDS passed."""
        with anyio.move_on_after(WAIT_SECONDS):
            for _ in range(int(WAIT_SECONDS / POLL_SECONDS) + 1):
                if await self.redis.set(lock, holder, nx=True, px=LOCK_MS):
                    return True
                await anyio.sleep(POLL_SECONDS)
        return False

    async def _unlock(self, lock: str, holder: str) -> None:
        try:
            await self._release(keys=[lock], args=[holder])
        except Exception as exc:  # it expires on its own
            log.warning("cluster refresh lock not released (%s)", type(exc).__name__)

    async def _shared(self, key: str) -> dict[str, Any] | None:
        raw = await self._values.one(key)
        if raw is None:
            return None
        try:
            value = orjson.loads(self._fernet.decrypt(raw))
        except (InvalidToken, orjson.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None

    async def _publish(self, key: str, tokens: dict[str, Any]) -> None:
        expiry = tokens.get("expires_at")
        ttl_ms = None if expiry is None else max(1, int((float(expiry) - time.time()) * 1000))
        sealed = self._fernet.encrypt(orjson.dumps(tokens))
        if len(sealed) > MAX_SHARED_BYTES:  # the others would not read them
            log.warning("cluster: new OAuth tokens not shared (above %d bytes)", MAX_SHARED_BYTES)
            return
        try:
            await self.redis.set(key, sealed, px=ttl_ms)
        except Exception as exc:  # the others refresh themselves
            log.warning("cluster: new OAuth tokens not shared (%s)", type(exc).__name__)
