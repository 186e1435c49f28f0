"""Health probes of an upstream: a ping on a timer, and the verdict after consecutive failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config.model import HealthCheck
from ..core.clock import SYSTEM_CLOCK, Clock
from ..jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT
from .session import UpstreamSession

__all__ = ["HealthTracker", "ping", "watch_health"]

# Only these mean "no answer"; any other error (say -32601 from a server without ping) is an answer.
_UNANSWERED = (REQUEST_TIMEOUT, CONNECTION_CLOSED)


@dataclass(slots=True)
class HealthTracker:
    """Counts consecutive failed probes; `record` says whether the threshold has just been reached."""

    failure_threshold: int
    failures: int = 0
    last_error: str | None = None

    def record(self, error: str | None) -> bool:
        if error is None:
            self.failures = 0
            self.last_error = None
            return False
        self.failures += 1
        self.last_error = error
        return self.failures >= self.failure_threshold

    @property
    def healthy(self) -> bool:
        return self.failures == 0


async def ping(session: UpstreamSession, timeout_seconds: float) -> str | None:
    """Ping the upstream; None when it answered (with anything), else why not."""
    response = await session.request({"jsonrpc": "2.0", "id": 0, "method": "ping"}, None, timeout_seconds)
    error = response.get("error")
    if isinstance(error, dict) and error.get("code") in _UNANSWERED:
        return str(error.get("message"))
    return None


async def watch_health(
    session: UpstreamSession,
    check: HealthCheck,
    on_result: Callable[[HealthTracker], None],
    clock: Clock = SYSTEM_CLOCK,
) -> HealthTracker:
    """Probe every `check.interval_seconds` until `failure_threshold` probes in a row failed.

    `on_result` sees the tracker after each probe (to report state changes). Returns the tracker of
    the verdict; never returns while the upstream keeps answering.
    """
    tracker = HealthTracker(check.failure_threshold)
    while True:
        await clock.sleep(check.interval_seconds)
        unhealthy = tracker.record(await ping(session, check.timeout_seconds))
        on_result(tracker)
        if unhealthy:
            return tracker
