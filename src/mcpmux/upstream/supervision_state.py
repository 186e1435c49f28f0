"""What a server's supervision reports (state, last error, attempts, health) and the events waited on."""

from __future__ import annotations

import logging
import time

import anyio

from ..config.model import ServerOptions
from ..core.backoff import Backoff
from ..core.clock import SYSTEM_CLOCK, Clock
from .health import HealthTracker

log = logging.getLogger("mcpmux.server")


class SupervisionState:
    """The base of `Supervisor`: the state the status views, metrics and `/_readyz` read, how it changes
    (each change logged once, waiters woken), and the events of lazyStart and stopping."""

    def __init__(self, name: str, options: ServerOptions) -> None:
        self.name = name
        self.options = options
        self.clock: Clock = SYSTEM_CLOCK  # backoff, deadlines, health checks (tests put a ManualClock)
        self.state = "stopped"  # until run()
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # wall clock, for the status views
        self.restarts = 0
        self.attempt = 0  # restarts since the upstream last stayed up long enough (the backoff step)
        self.crash_loop = False
        self.retry_at: float | None = None  # monotonic time of the next connection attempt
        self.health_failures = 0
        self.stderr_tail: list[str] = []  # a stdio server's last stderr lines when its process ended
        self.connected_at: float | None = None
        self._stopped: anyio.Event | None = None
        self._stop_reason: str | None = None
        self._wanted: anyio.Event | None = None  # lazyStart: set on first use
        self._changed: anyio.Event | None = None  # set (and replaced) when readiness may have changed

    @property
    def stopping(self) -> bool:
        """stop() was called (a shutdown or a reload), as opposed to a failure."""
        return self._stop_reason is not None

    def _note_backoff(self, backoff: Backoff, delay: float, connected: bool) -> None:
        """An attempt ended: its backoff step and the time of the next one recorded, logged (and the
        start of a crash loop once, as an error)."""
        entering_crash_loop = backoff.in_crash_loop and not self.crash_loop
        self.attempt = backoff.attempt
        self.crash_loop = backoff.in_crash_loop
        self.retry_at = self.clock.now() + delay
        self._set_state("restarting" if connected else "failed")
        extra = {"server": self.name, "attempt": self.attempt, "state": self.state}
        verb = "restarting" if connected else "retrying"
        log.warning(
            "%s %s in %.2fs (attempt %d%s): %s",
            self.name,
            verb,
            delay,
            self.attempt,
            ", crash loop" if self.crash_loop else "",
            self.last_error,
            extra=extra,
        )
        if entering_crash_loop:
            log.error(
                "%s is in a crash loop: %d attempts in a row failed or did not stay up; "
                "backing off up to %gs between attempts",
                self.name,
                self.attempt,
                self.options.restart.max_seconds,
                extra=extra,
            )

    def _record_error(self, error: str | None) -> None:
        if error:
            self.last_error = error
            self.last_error_at = time.time()

    def _on_probe(self, tracker: HealthTracker) -> None:
        """After each health probe: unhealthy from the first failure on, ready again after an answer."""
        was = self.health_failures
        self.health_failures = tracker.failures
        if tracker.failures and self.state == "ready":
            self._set_state("unhealthy")
        if tracker.failures:
            log.warning(
                "%s health check failed (%d of %d): %s",
                self.name,
                tracker.failures,
                tracker.failure_threshold,
                tracker.last_error,
                extra={"server": self.name, "state": "unhealthy"},
            )
        elif was and self.state == "unhealthy":
            self._set_state("ready")
            log.info("%s is healthy again", self.name, extra={"server": self.name, "state": "ready"})

    def _set_state(self, state: str) -> None:
        """The new state; wakes whoever waits for readiness to change (and for the stop)."""
        self.state = state
        if state == "stopped" and self._stopped is not None:
            self._stopped.set()
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _has_stopped(self) -> bool:
        """run() ran and ended (a runtime not yet started is "stopped" too, but may still start)."""
        return self._stopped is not None and self._stopped.is_set()

    def _changed_event(self) -> anyio.Event:
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def _want_event(self) -> anyio.Event:
        if self._wanted is None:
            self._wanted = anyio.Event()
        return self._wanted
