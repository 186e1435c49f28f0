"""The one seam through which supervision, health checks and idle sessions read time and wait.

`Clock` is what they need: `now()` (monotonic seconds), `sleep(seconds)` and `move_on_after(seconds)`
(a cancel scope that ends its block at a deadline). `SYSTEM_CLOCK` is the real one (anyio and
`time.monotonic`); `ManualClock` is moved by hand, so tests drive backoff, health checks and idle expiry
without waiting: `advance()` wakes every sleep and ends every block whose deadline it passes, and
`next_sleep()` waits until the code under test has gone to sleep again (returning for how long).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import count
from typing import Protocol

import anyio
from anyio.lowlevel import checkpoint

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Monotonic time and waiting, as the code that must be testable without real time uses them."""

    def now(self) -> float:
        """Seconds on a monotonic clock (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a checkpoint at least, for 0 or less)."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope ending its block after `seconds`; `cancelled_caught` tells whether it did."""
        ...


class SystemClock:
    """The real clock: `time.monotonic` (what `ClientSession.last_active` and the status views use) and
    anyio's own sleeping and deadlines."""

    now = staticmethod(time.monotonic)  # a C call on the request path, no Python frame

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def move_on_after(self, seconds: float) -> anyio.CancelScope:
        return anyio.move_on_after(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that stands still until a test calls `advance`; for component tests, not for production.

    Sleeps and `move_on_after` deadlines are timers; `advance` moves the time and fires the timers it
    passes, earliest first. Every sleep is logged, so a test can wait for the code under test to reach
    its next sleep (`next_sleep`) before moving on: no real time passes, and nothing depends on timing.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = count()
        self.sleeps: list[float] = []  # every sleep's duration, in the order they began
        self._seen = 0  # how many of `sleeps` next_sleep has returned
        self._slept: anyio.Event | None = None  # set when a sleep begins

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await checkpoint()
            return
        woken = anyio.Event()
        timer = self._start_timer(seconds, woken.set)
        self.sleeps.append(seconds)
        if self._slept is not None:
            self._slept.set()
            self._slept = None
        try:
            await woken.wait()
        finally:
            self._timers.pop(timer, None)

    @contextmanager
    def move_on_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            timer = self._start_timer(seconds, scope.cancel)
            try:
                yield scope
            finally:
                self._timers.pop(timer, None)

    def advance(self, seconds: float) -> None:
        """Move the time on by `seconds`, firing (earliest first) every timer due by then."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self._now += seconds
        due = sorted((deadline, key) for key, (deadline, _) in self._timers.items() if deadline <= self._now)
        for _, key in due:
            fire = self._timers.pop(key, None)
            if fire is not None:
                fire[1]()

    async def next_sleep(self) -> float:
        """The duration of the next sleep not yet returned here; waits (unbounded: bound it in the test)
        until the code under test begins one."""
        while len(self.sleeps) <= self._seen:
            if self._slept is None:
                self._slept = anyio.Event()
            await self._slept.wait()
        self._seen += 1
        return self.sleeps[self._seen - 1]

    @property
    def pending(self) -> int:
        """Timers (sleeps and deadlines) not yet fired."""
        return len(self._timers)

    def _start_timer(self, seconds: float, fire: Callable[[], None]) -> int:
        key = next(self._ids)
        self._timers[key] = (self._now + seconds if seconds < math.inf else math.inf, fire)
        return key
