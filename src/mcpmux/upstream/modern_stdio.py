"""A stdio upstream spoken to in the 2026-07-28 era (`options.protocol`): requests with the envelope on
the one channel, listen notifications told apart by their subscription id; `auto` probes first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import Message, notification, request
from ..protocol.constants import (
    CANCELLED,
    MODERN_VERSION,
    SUBSCRIPTION_ID_META,
    SUBSCRIPTIONS_ACKNOWLEDGED,
    SUBSCRIPTIONS_LISTEN,
)
from ..protocol.translate import with_envelope, without_subscription_id
from .connection import Connection, Receiver
from .era_memory import EraMemory
from .modern_base import ModernTranslation, wire_ids
from .stdio import StdioConnection, open_stdio_connection
from .tasks import released

log = logging.getLogger("mcpmux.upstream")

PROBE_ID = "mcpmux-probe"


def subscription_of(msg: Message) -> Any:
    """The `subscriptionId` a notification's `_meta` carries (None without one)."""
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(SUBSCRIPTION_ID_META) if isinstance(meta, dict) else None


class ModernStdioConnection(ModernTranslation):
    """One 2026-07-28 stdio upstream, presented as a handshake-era session (or, after an `auto` probe
    found the handshake era, passing every message through unchanged)."""

    def __init__(self, name: str, receiver: Receiver, tg: Any) -> None:
        super().__init__()
        self.name, self.receiver, self.tg = name, receiver, tg
        self.stdio: StdioConnection | None = None
        self.waiting: dict[Any, asyncio.Future[Message]] = {}  # our wire id -> the upstream's answer
        self.listen_ids: dict[str, str | None] = {}  # a listen request's id -> its key in `listens`
        self.unacknowledged: dict[str, anyio.Event] = {}  # listen requests not acknowledged yet
        self.passthrough = False

    @property
    def closed(self) -> bool:
        return self.stdio is None or self.stdio.closed

    async def wait_closed(self) -> str:
        assert self.stdio is not None
        return await self.stdio.wait_closed()

    def stderr_tail(self) -> list[str]:
        return self.stdio.stderr_tail() if self.stdio is not None else []

    def on_message(self, msg: Message, related: Any) -> None:
        """What the child writes: answers to our exchanges, listen notifications, the rest as is."""
        if "method" not in msg:
            if self._took_response(msg):
                return
        elif not self.passthrough and self._took_notification(msg):
            return
        self.receiver(msg, related)

    def _took_response(self, msg: Message) -> bool:
        """A response that is ours (an exchange's answer, a listen stream's end) or unusable: taken here."""
        rid = msg.get("id")
        if not isinstance(rid, (str, int)) or (rid == PROBE_ID and self.passthrough):
            return True
        future = self.waiting.pop(rid, None)
        if future is not None:
            if not future.done():
                future.set_result(msg)
            return True
        self._acknowledged(rid)  # ended: nobody waits for it any more
        if self.listen_ids.pop(rid, None) is not None:  # type: ignore[arg-type]
            log.debug("%s ended a subscriptions/listen stream", self.name)
            return True
        return False

    def _took_notification(self, msg: Message) -> bool:
        """A notification on one of our listen streams: acknowledged, or passed on without its id."""
        subscription = subscription_of(msg)
        if not isinstance(subscription, str) or subscription not in self.listen_ids:
            return False
        if msg["method"] == SUBSCRIPTIONS_ACKNOWLEDGED:
            self._acknowledged(subscription)
        else:
            self.receiver(without_subscription_id(msg), None)
        return True

    async def _exchange(self, msg: Message, related: Any) -> Message:
        stdio = self.stdio
        if stdio is None or stdio.closed:
            raise self.unavailable("process has exited")
        rid = msg["id"]
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = future
        try:
            await stdio.send(self.enveloped(msg, related, self.log_level))
            await asyncio.wait((future, stdio.protocol.exited), return_when=asyncio.FIRST_COMPLETED)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):  # 2026-07-28 on stdio still cancels by notification
                await self._send_quietly(notification(CANCELLED, {"requestId": rid}))
            raise
        finally:
            self.waiting.pop(rid, None)
        if not future.done():
            raise self.unavailable("process has exited")
        return future.result()

    def _listen(self, key: str | None, wanted: dict[str, Any]) -> anyio.Event:
        rid = f"mcpmux-listen-{next(wire_ids)}"
        self.listens[key] = rid
        self.listen_ids[rid] = key
        acknowledged = self.unacknowledged[rid] = anyio.Event()
        msg = request(rid, SUBSCRIPTIONS_LISTEN, {"notifications": wanted})
        enveloped = with_envelope(msg, self.capabilities, self.client_info, None)
        self.tg.start_soon(released, self._send_quietly, enveloped)
        return acknowledged

    def _acknowledged(self, rid: Any) -> None:
        event = self.unacknowledged.pop(rid, None) if isinstance(rid, str) else None
        if event is not None:
            event.set()

    def _unlisten(self, key: str) -> None:
        rid = self.listens.pop(key)
        self.listen_ids.pop(rid, None)
        self._acknowledged(rid)
        self.tg.start_soon(released, self._send_quietly, notification(CANCELLED, {"requestId": rid}))

    async def _send_quietly(self, msg: Message) -> None:
        if self.stdio is not None:
            with contextlib.suppress(UpstreamUnavailableError):
                await self.stdio.send(msg)

    async def probe(self, within_seconds: float) -> bool:
        """`auto`: whether the child answers `server/discover` listing 2026-07-28. No answer in time, an
        error, or a child that exits on it: the handshake era (the spec's fallback for stdio)."""
        try:
            with anyio.move_on_after(within_seconds):
                result = (await self.discover(PROBE_ID)).get("result")
                versions = result.get("supportedVersions") if isinstance(result, dict) else None
                return isinstance(versions, list) and MODERN_VERSION in versions
        except UpstreamUnavailableError:
            pass
        return False


@asynccontextmanager
async def open_modern_stdio_connection(
    server: ServerConfig, receiver: Receiver, era: EraMemory | None = None
) -> AsyncIterator[Connection]:
    """Start the server's command and speak 2026-07-28 to it; with `era` (`protocol: auto`), probe once
    per runtime first and, when the child speaks only the handshake era, pass its messages through."""
    async with anyio.create_task_group() as tg:
        conn = ModernStdioConnection(server.name, receiver, tg)
        try:
            async with open_stdio_connection(server, conn.on_message) as stdio:
                conn.stdio = stdio
                if era is not None:
                    conn.passthrough = not await era.settle(
                        lambda: conn.probe(server.options.connect_timeout_seconds)
                    )
                yield stdio if conn.passthrough else conn
        finally:
            tg.cancel_scope.cancel()
