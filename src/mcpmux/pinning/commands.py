"""`mcpmux pins record|verify|diff|approve`: the lock file from the command line (CI and operators)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import anyio

from ..config.model import ProxyConfig
from ..core.pins import KINDS, Lock, ServerPins, approve, diff_locks, format_changes
from ..errors import CommandError
from .collect import collect_pins
from .lockfile import LockFileError, default_lock_path, read_lock, write_lock

ACTIONS = ("record", "verify", "diff", "approve")
USAGE = (
    "mcpmux [flags] pins record [SERVER]...     write the lock file from the servers' current catalogs\n"
    "mcpmux [flags] pins verify [SERVER]...     exit 1 with a diff when a catalog differs from the lock\n"
    "mcpmux [flags] pins diff [SERVER]...       show the differences, exit 0\n"
    "mcpmux [flags] pins approve SERVER [TOOL]  accept a server's current catalog (or one tool of it)\n"
    "  (-lock PATH chooses the lock file; default mcpmux.lock.json next to the config)"
)


class PinsError(CommandError):
    """A pins command cannot run: bad arguments (status 2) or a server/lock problem (status 1)."""


@dataclass(frozen=True, slots=True)
class PinsCommand:
    action: str
    names: tuple[str, ...]
    lock_path: str


def pins_command(
    config: ProxyConfig, action: str | None, names: Sequence[str], lock: str | None
) -> PinsCommand:
    """Check the action and its server names against the config."""
    if action not in ACTIONS:
        raise PinsError(f"pins: expected one of {', '.join(ACTIONS)}\n{USAGE}", 2)
    if action == "approve" and not 1 <= len(names) <= 2:
        raise PinsError("pins approve: expected SERVER [TOOL]", 2)
    servers = names[:1] if action == "approve" else names
    enabled = config.enabled_servers
    for name in servers:
        if name not in enabled:
            known = ", ".join(enabled) or "none"
            raise PinsError(f'pins {action}: no enabled server "{name}" in the config (servers: {known})', 2)
    return PinsCommand(action, tuple(names), lock or default_lock_path(config.source))


def run_pins(config: ProxyConfig, command: PinsCommand, out: TextIO = sys.stdout) -> int:
    """Run one pins command; the exit status (verify: 1 when anything changed)."""
    logging.getLogger("mcpmux.server").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return anyio.run(_run, config, command, out)
    except (PinsError, LockFileError) as exc:
        print(f"mcpmux: {exc}", file=sys.stderr)
        return exc.status if isinstance(exc, PinsError) else 1


async def _run(config: ProxyConfig, command: PinsCommand, out: TextIO) -> int:
    if command.action == "approve":
        return await _approve(config, command, out)
    names = list(command.names) or list(config.enabled_servers)
    current = await _current(config, names)
    if command.action == "record":
        _record(command, current, out)
        return 0
    return _compare(config, command, names, current, out)


def _record(command: PinsCommand, current: Lock, out: TextIO) -> None:
    """Write the current catalogs to the lock (named servers only: the others' entries are kept)."""
    base = read_lock(command.lock_path) if command.names else None
    lock = Lock({**(base.servers if base else {}), **current.servers})
    write_lock(command.lock_path, lock)
    print(f"Recorded {_summary(current)} to {command.lock_path}", file=out)


def _compare(
    config: ProxyConfig, command: PinsCommand, names: Sequence[str], current: Lock, out: TextIO
) -> int:
    """`diff` and `verify`: the changes against the lock (verify: 1 when there are any)."""
    locked = read_lock(command.lock_path)
    if locked is None:
        raise PinsError(f"{command.lock_path}: no lock file; create it with `mcpmux pins record`")
    # a server still configured but disabled keeps its entry; one no longer configured is reported gone
    gone = [name for name in locked.servers if name not in config.servers]
    scope = command.names or sorted({*names, *gone})
    changes = diff_locks(locked, current, scope)
    if not changes:
        print(f"{command.lock_path}: the catalogs of {len(current.servers)} server(s) match", file=out)
        return 0
    print(format_changes(changes), file=out)
    if command.action == "diff":
        return 0
    print(
        f"{len(changes)} change(s) against {command.lock_path}; review them, then accept with "
        "`mcpmux pins approve SERVER [TOOL]` or `mcpmux pins record`",
        file=sys.stderr,
    )
    return 1


async def _current(config: ProxyConfig, names: Sequence[str]) -> Lock:
    pins, errors = await collect_pins(config, names)
    if errors:
        lines = "; ".join(f"server {name!r}: {why}" for name, why in sorted(errors.items()))
        raise PinsError(f"could not read the catalog of {len(errors)} server(s): {lines}")
    return Lock(pins)


async def _approve(config: ProxyConfig, command: PinsCommand, out: TextIO) -> int:
    server, tool = command.names[0], (command.names[1] if len(command.names) > 1 else None)
    current = (await _current(config, [server])).servers[server]
    locked = read_lock(command.lock_path) or Lock()
    pinned = locked.servers.get(server) or ServerPins()
    if tool is not None and tool not in current.of("tools") and tool not in pinned.of("tools"):
        raise PinsError(f'pins approve: server "{server}" has no tool "{tool}" (and the lock has none)', 2)
    updated = approve(locked, server, current, tool)
    changes = diff_locks(locked, updated, [server])
    write_lock(command.lock_path, updated)
    if changes:
        print(f"Approved in {command.lock_path}:\n{format_changes(changes)}", file=out)
    else:
        print(f"{command.lock_path}: nothing to approve for {server}{'/' + tool if tool else ''}", file=out)
    return 0


def _summary(lock: Lock) -> str:
    counts = {kind: sum(len(p.of(kind)) for p in lock.servers.values()) for kind in KINDS}
    return (
        f"{counts['tools']} tools, {counts['prompts']} prompts, {counts['resourceTemplates']} resource "
        f"templates of {len(lock.servers)} server(s)"
    )
