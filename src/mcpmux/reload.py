"""Hot reload: what changed between two configs (pure), and noticing that the config file changed."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio

from .config.loader import is_url
from .config.model import ProxyConfig

__all__ = ["ConfigDiff", "diff_configs", "file_signature", "watch_file", "watchable"]

WATCH_INTERVAL_SECONDS = 0.5
SETTLE_SECONDS = 0.1  # a change must hold this long, so a half-written file is not read

# Settings of `mcpProxy` that only take effect when the process starts.
_STARTUP_ONLY = {"addr": "mcpProxy.addr", "cluster": "mcpProxy.cluster"}


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """Enabled servers by fate; a disabled server counts as absent."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    startup_only: tuple[str, ...] = ()  # changed settings that need a restart of mcpmux

    @property
    def servers_changed(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (("added", self.added), ("changed", self.changed), ("removed", self.removed))
            if names
        ]
        return "; ".join(parts) or "no server changed"


def diff_configs(old: ProxyConfig, new: ProxyConfig) -> ConfigDiff:
    """Which servers to start, stop, restart or leave alone (a server is compared by its whole config)."""
    before, after = old.enabled_servers, new.enabled_servers
    changed, unchanged = _compare_kept(before, after)
    return ConfigDiff(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=changed,
        unchanged=unchanged,
        startup_only=tuple(
            key for attr, key in _STARTUP_ONLY.items() if getattr(old, attr) != getattr(new, attr)
        ),
    )


def _compare_kept(
    before: Mapping[str, object], after: Mapping[str, object]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The servers in both configs, in the new order: (those whose config changed, those unchanged)."""
    changed: list[str] = []
    unchanged: list[str] = []
    for name, server in after.items():
        if name in before:
            (unchanged if before[name] == server else changed).append(name)
    return tuple(changed), tuple(unchanged)


def file_signature(path: str) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced (mtime, size, inode); None if it is missing."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def watchable(source: str) -> bool:
    return not is_url(source)


async def watch_file(
    path: str,
    on_change: Callable[[], Awaitable[None]],
    *,
    interval_seconds: float = WATCH_INTERVAL_SECONDS,
    settle_seconds: float = SETTLE_SECONDS,
    baseline: tuple[int, int, int] | None = None,
) -> None:
    """Call `on_change` each time the file at `path` is rewritten or replaced, until cancelled.

    Polls the file's signature: no thread, works for editors that replace the file, symlink swaps
    (Kubernetes ConfigMaps) and network filesystems alike.
    """
    last = baseline if baseline is not None else file_signature(path)
    while True:
        await anyio.sleep(interval_seconds)
        current = file_signature(path)
        if current is None or current == last:
            continue
        await anyio.sleep(settle_seconds)
        settled = file_signature(path)
        if settled != current:
            continue  # still being written: look again next time
        last = current
        await on_change()
