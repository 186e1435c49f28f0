"""Pinning at run time: each server's catalog checked against the lock file whenever either changes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..core.pins import PINS_CHANGED, Change, Lock, ServerVerdict, approve, diff_locks, evaluate
from ..reload import file_signature, watch_file
from ..upstream.runtime import ServerRuntime
from .collect import runtime_pins
from .lockfile import LockFileError, read_lock, write_lock

log = logging.getLogger("mcpmux.pins")


class PinGuard:
    """Holds the lock, gives every runtime with `pinning` on its `pin_verdict`, and counts changes.

    A verdict is recomputed when the runtime (re)loads its catalog (it listens first, before the
    routes, which then tell their clients) and when the lock file changes on disk.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock: Lock | None = None
        self.error: str | None = None  # why the lock file could not be read (the previous lock is kept)
        self.runtimes: dict[str, ServerRuntime] = {}
        self.detected: dict[tuple[str, str], int] = {}  # (server, change kind) -> changes seen, for /metrics
        self._reported: set[tuple[str, Change]] = set()  # logged and counted once while they last
        self._warned: set[str] = set()  # servers told there is no lock file
        self._baseline = file_signature(path)
        self._load()

    # -- the lock --------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            self.lock, self.error = read_lock(self.path), None
        except LockFileError as exc:
            self.error = str(exc)
            log.error("Pinning: %s; keeping the previous lock", exc)

    async def watch(self) -> None:
        """Until cancelled: re-read the lock file when it changes (an approval from the command line)."""
        await watch_file(self.path, self._reload, baseline=self._baseline)

    async def _reload(self) -> None:
        log.info("Pinning: %s changed, checking the catalogs again", self.path)
        self._load()
        for runtime in list(self.runtimes.values()):
            self.check(runtime, announce=True)

    # -- runtimes --------------------------------------------------------------------------------

    def set_runtimes(self, runtimes: Iterable[ServerRuntime]) -> None:
        """Watch these runtimes (at start and after a reload); each is checked at once."""
        self.runtimes = {}
        for runtime in runtimes:
            self.runtimes[runtime.name] = runtime
            if self._on_catalog not in runtime.catalog_listeners:
                runtime.catalog_listeners.insert(0, self._on_catalog)
            self.check(runtime)

    def _on_catalog(self, runtime: ServerRuntime, why: str) -> None:
        if why in ("connected", "refreshed"):
            self.check(runtime)

    def check(self, runtime: ServerRuntime, *, announce: bool = False) -> None:
        """Recompute the runtime's verdict; log and count what is new; tell the routes when asked."""
        mode = runtime.options.pinning
        if mode == "off":
            runtime.pin_verdict = None
            return
        locked = self.lock.servers.get(runtime.name) if self.lock is not None else None
        before = runtime.pin_verdict
        current = runtime_pins(runtime) if runtime.connected_at is not None else None  # None: not yet
        verdict = evaluate(runtime.name, mode, locked, current)
        runtime.pin_verdict = verdict
        if not verdict.pending:
            self._report(runtime.name, verdict)
        if announce and (before is None or before.tool_changes.keys() != verdict.tool_changes.keys()):
            for listener in list(runtime.catalog_listeners):
                if listener != self._on_catalog:
                    listener(runtime, PINS_CHANGED)

    def _report(self, server: str, verdict: ServerVerdict) -> None:
        current = set(verdict.changes)
        self._reported = {seen for seen in self._reported if seen[0] != server or seen[1] in current}
        if self.lock is None and server not in self._warned:
            self._warned.add(server)
            log.warning(
                "%s Pinning is %s but there is no lock file at %s (mcpmux pins record writes it)",
                server,
                verdict.mode,
                self.path,
                extra={"server": server},
            )
        for change in verdict.changes:
            if (server, change) in self._reported:
                continue
            self._reported.add((server, change))
            key = (server, change.change)
            self.detected[key] = self.detected.get(key, 0) + 1
            action = "withheld" if verdict.enforcing and change.name in verdict.tool_changes else "served"
            log.warning(
                "%s Pinning: %s (%s)",
                server,
                change.describe(),
                action,
                extra={"server": server, "tool": change.name, "pin_change": change.change},
            )

    # -- approving -------------------------------------------------------------------------------

    def approve(self, server: str, tool: str | None) -> list[Change]:
        """Accept a running server's current catalog (or one tool of it): write the lock, re-check."""
        runtime = self.runtimes.get(server)
        if runtime is None:
            raise KeyError(server)
        base = self.lock or Lock()
        updated = approve(base, server, runtime_pins(runtime), tool)
        changes = diff_locks(base, updated, [server])
        write_lock(self.path, updated)
        self.lock = updated
        self.check(runtime, announce=True)
        log.info("Pinning: approved %d change(s) of %s", len(changes), server, extra={"server": server})
        return changes

    def status(self) -> dict[str, Any]:
        return {
            "lockFile": self.path,
            "lockError": self.error,
            "servers": {
                name: rt.pin_verdict.as_json()
                for name, rt in self.runtimes.items()
                if rt.pin_verdict is not None
            },
        }
