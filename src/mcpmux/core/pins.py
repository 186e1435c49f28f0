"""Pinned catalog definitions (pure): canonical hashes, the lock document, diffs and per-tool verdicts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..config.model import PinningMode

__all__ = [
    "KINDS",
    "Change",
    "Lock",
    "Pin",
    "ServerPins",
    "ServerVerdict",
    "approve",
    "canonical",
    "diff_locks",
    "diff_server",
    "digest",
    "evaluate",
    "format_changes",
    "lock_from_json",
    "lock_to_json",
    "pin_of",
    "server_pins",
]

LOCK_VERSION = 1
PINS_CHANGED = "pins"  # the catalog listeners' `why` when only a verdict changed (approval, new lock file)
KINDS = ("tools", "prompts", "resourceTemplates")
# What makes up an item's definition (hashed together); annotations are hashed on their own.
DEFINITION_FIELDS = {
    "tools": ("name", "title", "description", "inputSchema", "outputSchema"),
    "prompts": ("name", "title", "description", "arguments"),
    "resourceTemplates": ("uriTemplate", "name", "title", "description", "mimeType"),
}
KEY_FIELD = {"tools": "name", "prompts": "name", "resourceTemplates": "uriTemplate"}
SINGULAR = {"tools": "tool", "prompts": "prompt", "resourceTemplates": "resource template"}
SHORT_HASH = 16  # hex digits kept per field: enough to say which field changed


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 (NaN and infinities refused)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(value)).hexdigest()


@dataclass(frozen=True, slots=True)
class Pin:
    """One item's hashes: the whole definition, its annotations, and each definition field (short)."""

    definition: str
    annotations: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


def _definition(kind: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    return {name: entry[name] for name in DEFINITION_FIELDS[kind] if entry.get(name) is not None}


def pin_of(kind: str, entry: Mapping[str, Any]) -> Pin:
    definition = _definition(kind, entry)
    annotations = entry.get("annotations")
    return Pin(
        definition=digest(definition),
        annotations=digest(annotations) if annotations is not None else None,
        fields={name: digest(value)[7 : 7 + SHORT_HASH] for name, value in definition.items()},
    )


def matches(pin: Pin, kind: str, entry: Mapping[str, Any]) -> bool:
    """Whether `entry` is what `pin` pinned (definition and annotations; no per-field hashes needed)."""
    if digest(_definition(kind, entry)) != pin.definition:
        return False
    annotations = entry.get("annotations")
    return pin.annotations == (digest(annotations) if annotations is not None else None)


@dataclass(frozen=True, slots=True)
class ServerPins:
    """What one server published: its instructions' hash and a pin per tool, prompt and template."""

    instructions: str | None = None
    items: Mapping[str, Mapping[str, Pin]] = field(default_factory=dict)  # kind -> key -> pin

    def of(self, kind: str) -> Mapping[str, Pin]:
        return self.items.get(kind, {})


def server_pins(catalog: Mapping[str, Sequence[Mapping[str, Any]]], instructions: Any) -> ServerPins:
    """Pins of a catalog: `{"tools": [...], "prompts": [...], "resourceTemplates": [...]}` as listed."""
    items: dict[str, dict[str, Pin]] = {}
    for kind in KINDS:
        key = KEY_FIELD[kind]
        items[kind] = {
            str(entry[key]): pin_of(kind, entry)
            for entry in catalog.get(kind, ())
            if isinstance(entry, Mapping) and isinstance(entry.get(key), str)
        }
    hashed = digest(instructions) if isinstance(instructions, str) and instructions else None
    return ServerPins(hashed, items)


@dataclass(frozen=True, slots=True)
class Lock:
    """The lock file's content: server name -> its pins."""

    servers: Mapping[str, ServerPins] = field(default_factory=dict)


# -- the lock document ----------------------------------------------------------------------------


def lock_to_json(lock: Lock) -> dict[str, Any]:
    """The lock as a JSON document (written with sorted keys, so that diffs of it stay small)."""
    servers: dict[str, Any] = {}
    for name, pins in sorted(lock.servers.items()):
        entry: dict[str, Any] = {"instructions": pins.instructions}
        for kind in KINDS:
            entry[kind] = {key: _pin_json(pin) for key, pin in sorted(pins.of(kind).items())}
        servers[name] = entry
    return {"version": LOCK_VERSION, "servers": servers}


def _pin_json(pin: Pin) -> dict[str, Any]:
    out: dict[str, Any] = {"hash": pin.definition, "fields": dict(sorted(pin.fields.items()))}
    if pin.annotations is not None:
        out["annotations"] = pin.annotations
    return out


def lock_from_json(document: Any) -> Lock:
    """Parse a lock document; ValueError names the JSON path of what is wrong."""
    if not isinstance(document, dict):
        raise ValueError("$: expected an object")
    if document.get("version") != LOCK_VERSION:
        raise ValueError(f"$.version: expected {LOCK_VERSION}, got {document.get('version')!r}")
    servers = document.get("servers")
    if not isinstance(servers, dict):
        raise ValueError("$.servers: expected an object")
    return Lock({name: _server_from_json(f"$.servers.{name}", value) for name, value in servers.items()})


def _server_from_json(path: str, value: Any) -> ServerPins:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object")
    instructions = value.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ValueError(f"{path}.instructions: expected a hash string or null")
    items: dict[str, dict[str, Pin]] = {}
    for kind in KINDS:
        listed = value.get(kind, {})
        if not isinstance(listed, dict):
            raise ValueError(f"{path}.{kind}: expected an object")
        items[kind] = {key: _pin_from_json(f"{path}.{kind}.{key}", pin) for key, pin in listed.items()}
    return ServerPins(instructions, items)


def _pin_from_json(path: str, value: Any) -> Pin:
    if not isinstance(value, dict) or not isinstance(value.get("hash"), str):
        raise ValueError(f'{path}: expected an object with a "hash" string')
    annotations = value.get("annotations")
    fields = value.get("fields") or {}
    if annotations is not None and not isinstance(annotations, str):
        raise ValueError(f"{path}.annotations: expected a hash string")
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ValueError(f"{path}.fields: expected an object of hash strings")
    return Pin(value["hash"], annotations, fields)


# -- differences ----------------------------------------------------------------------------------

ChangeKind = Literal["added", "removed", "changed", "annotations"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the lock and what a server publishes now."""

    server: str
    kind: str  # a KINDS entry, "instructions" or "server"
    name: str
    change: ChangeKind
    fields: tuple[str, ...] = ()  # for "changed": the definition fields that differ (when known)

    def describe(self) -> str:
        what = SINGULAR.get(self.kind, self.kind)
        if self.kind == "server":
            return f"server {self.server!r} is {'not in the lock file' if self.change == 'added' else 'gone'}"
        if self.kind == "instructions":
            return f"server {self.server!r}: instructions {self.change}"
        if self.change == "changed":
            detail = f" ({', '.join(self.fields)})" if self.fields else ""
            return f"{what} {self.name!r} of server {self.server!r} changed{detail}"
        if self.change == "annotations":
            return f"{what} {self.name!r} of server {self.server!r}: annotations changed"
        verb = "is new (not in the lock file)" if self.change == "added" else "was removed"
        return f"{what} {self.name!r} of server {self.server!r} {verb}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server": self.server,
            "kind": self.kind,
            "name": self.name,
            "change": self.change,
        }
        if self.fields:
            out["fields"] = list(self.fields)
        return out


def compare(server: str, kind: str, name: str, locked: Pin | None, current: Pin | None) -> Change | None:
    """How one item differs from its pin (None: it does not)."""
    if locked is None and current is None:
        return None
    if locked is None:
        return Change(server, kind, name, "added")
    if current is None:
        return Change(server, kind, name, "removed")
    if locked.definition != current.definition:
        changed = sorted(
            k for k in {*locked.fields, *current.fields} if locked.fields.get(k) != current.fields.get(k)
        )
        return Change(server, kind, name, "changed", tuple(changed))
    if locked.annotations != current.annotations:
        return Change(server, kind, name, "annotations")
    return None


def diff_server(server: str, locked: ServerPins | None, current: ServerPins) -> list[Change]:
    """Every difference of one server, in a stable order (kind, then name)."""
    base = locked or ServerPins()
    changes: list[Change] = []
    if base.instructions != current.instructions:
        verb: ChangeKind = (
            "added" if base.instructions is None else "removed" if current.instructions is None else "changed"
        )
        changes.append(Change(server, "instructions", "", verb))
    for kind in KINDS:
        old, new = base.of(kind), current.of(kind)
        for name in sorted({*old, *new}):
            found = compare(server, kind, name, old.get(name), new.get(name))
            if found is not None:
                changes.append(found)
    return changes


def diff_locks(locked: Lock, current: Lock, servers: Iterable[str] | None = None) -> list[Change]:
    """Differences for `servers` (default: every server of either side)."""
    names = sorted(servers if servers is not None else {*locked.servers, *current.servers})
    changes: list[Change] = []
    for name in names:
        if name not in current.servers:
            if name in locked.servers:
                changes.append(Change(name, "server", name, "removed"))
            continue
        if name not in locked.servers:
            changes.append(Change(name, "server", name, "added"))
        changes += diff_server(name, locked.servers.get(name), current.servers[name])
    return changes


def format_changes(changes: Sequence[Change]) -> str:
    """A readable diff: one line per change, `+` new, `-` removed, `~` changed."""
    marks = {"added": "+", "removed": "-", "changed": "~", "annotations": "~"}
    return "\n".join(f"{marks[c.change]} {c.describe()}" for c in changes)


def approve(lock: Lock, server: str, current: ServerPins, tool: str | None = None) -> Lock:
    """The lock with `server`'s current catalog approved: all of it, or only the tool `tool`."""
    if tool is None:
        return Lock({**lock.servers, server: current})
    base = lock.servers.get(server) or ServerPins()
    tools = dict(base.of("tools"))
    pin = current.of("tools").get(tool)
    if pin is None:
        tools.pop(tool, None)  # gone upstream: approving its removal
    else:
        tools[tool] = pin
    return Lock({**lock.servers, server: replace(base, items={**base.items, "tools": tools})})


# -- run-time verdicts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerVerdict:
    """What pinning decides for one server's current catalog (immutable; replaced on every change).

    In `enforce` mode a tool is served only when its current definition and annotations match its
    pin; `refusal` says why one is not. `warn` and `off` never withhold anything.
    """

    server: str
    mode: PinningMode = "off"
    locked: ServerPins | None = None
    changes: tuple[Change, ...] = ()
    tool_changes: Mapping[str, Change] = field(default_factory=dict)  # current tool name -> its change
    pending: bool = False  # the server has not published a catalog yet: enforce serves nothing

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"

    def shows(self, entry: Mapping[str, Any]) -> bool:
        """Whether a live `tools/list` entry may be listed (its own hashes are checked, not the name)."""
        if not self.enforcing:
            return True
        if self.pending:
            return False
        name = entry.get("name")
        pinned = (
            self.locked.of("tools").get(name) if self.locked is not None and isinstance(name, str) else None
        )
        return pinned is not None and matches(pinned, "tools", entry)

    def refusal(self, tool: str) -> str | None:
        """Why a call to `tool` is refused (None: allowed). Only in enforce mode."""
        if not self.enforcing:
            return None
        if self.pending:
            return f"the catalog of server {self.server!r} has not been checked against the lock file yet"
        change = self.tool_changes.get(tool)
        if change is not None:
            return f"{change.describe()}; approve it with `mcpmux pins approve {self.server} {tool}`"
        if self.locked is None or tool not in self.locked.of("tools"):
            return f"tool {tool!r} of server {self.server!r} is not in the lock file (pinning: enforce)"
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "locked": self.locked is not None,
            "changes": [c.as_json() | {"description": c.describe()} for c in self.changes],
            "withheld": sorted(self.tool_changes) if self.enforcing else [],
        }


def evaluate(
    server: str, mode: PinningMode, locked: ServerPins | None, current: ServerPins | None
) -> ServerVerdict:
    """The verdict for a server's current catalog against its pins (a server not in the lock: all new;
    no catalog yet: pending)."""
    if mode == "off":
        return ServerVerdict(server)
    if current is None:
        return ServerVerdict(server, mode, locked, pending=True)
    changes = tuple(diff_server(server, locked, current))
    tool_changes = {c.name: c for c in changes if c.kind == "tools" and c.change != "removed"}
    return ServerVerdict(server, mode, locked, changes, tool_changes)
