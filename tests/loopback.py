"""The sending half of an upstream connection that records what is sent, for in-process session tests."""

from __future__ import annotations

import asyncio
from typing import Any


class Recorder:
    """Records sent messages; `event` is set by the first one (the session under test is the real one)."""

    name = "up"
    closed = False

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.event = asyncio.Event()

    async def send(self, msg: dict[str, Any], related: Any = None) -> None:
        self.sent.append(msg)
        self.event.set()
