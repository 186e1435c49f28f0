"""The delays between restarts of an upstream: exponential, capped, jittered, slower in a crash loop."""

from __future__ import annotations

import random
from collections.abc import Callable

from ..config.model import BackoffPolicy

__all__ = ["CRASH_LOOP_ATTEMPTS", "Backoff"]

CRASH_LOOP_ATTEMPTS = 3


class Backoff:
    """Hands out `initial * multiplier**attempt` (capped at max), jittered by +/- `policy.jitter`.

    `rand` returns a float in [0, 1); inject a fixed one to make delays predictable in tests.
    """

    __slots__ = ("_next_base_seconds", "_rand", "attempt", "policy")

    def __init__(self, policy: BackoffPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
        self.attempt = 0  # delays handed out since the last reset
        self._next_base_seconds = policy.initial_seconds

    def next_delay(self) -> float:
        """The delay to wait before the next attempt, in seconds (never negative)."""
        policy = self.policy
        base = min(self._next_base_seconds, policy.max_seconds)
        # Grown step by step rather than as a power, so a long outage can never overflow a float.
        self._next_base_seconds = min(base * policy.multiplier, policy.max_seconds)
        self.attempt += 1
        spread = policy.jitter * (2.0 * self._rand() - 1.0)
        return max(0.0, base * (1.0 + spread))

    def reset(self) -> None:
        """Start again from the initial delay."""
        self.attempt = 0
        self._next_base_seconds = self.policy.initial_seconds

    def mark_healthy(self, uptime_seconds: float, stable_after_seconds: float = 10.0) -> None:
        """Reset only if the upstream stayed up long enough, so a crash loop keeps slowing down."""
        if uptime_seconds >= stable_after_seconds:
            self.reset()

    @property
    def in_crash_loop(self) -> bool:
        """Whether several restarts followed each other without a stable period in between."""
        return self.attempt >= CRASH_LOOP_ATTEMPTS
