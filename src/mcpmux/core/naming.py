"""The names of tools and prompts published on merged endpoints: `<server><sep><name>`, sanitized."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = [
    "MAX_NAME_LENGTH",
    "NameEntry",
    "NameTable",
    "build_name_table",
    "claim_name",
    "is_valid_published_name",
    "published_name",
    "server_labels",
]

MAX_NAME_LENGTH = 64
_HASH_LENGTH = 8
_SUFFIXED_PREFIX_LENGTH = MAX_NAME_LENGTH - 1 - _HASH_LENGTH
_VALID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_.-]")


def is_valid_published_name(name: str) -> bool:
    """Whether `name` matches `^[A-Za-z0-9_.-]{1,64}$` (what MCP clients accept as a tool name)."""
    return _VALID.fullmatch(name) is not None


def _short_hash(server: str, name: str, salt: int = 0) -> str:
    """8 hex chars of sha256 over the original pair; salt > 0 gives further distinct hashes."""
    text = f"{server}\0{name}" if salt == 0 else f"{server}\0{name}\0{salt}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LENGTH]


def _with_suffix(base: str, suffix: str) -> str:
    """`base-suffix`, cutting `base` so that the result fits in MAX_NAME_LENGTH."""
    return f"{base[:_SUFFIXED_PREFIX_LENGTH]}-{suffix}"


def published_name(server: str, name: str, separator: str = "__") -> str:
    """The name `server`'s tool (or prompt) `name` gets, before collisions are resolved.

    Characters outside `[A-Za-z0-9_.-]` become `_`; a result longer than 64 keeps a prefix and ends
    with `-` and 8 hex chars of sha256 over the original `server + "\\0" + name`.
    """
    joined = f"{server}{separator}{name}"
    if _VALID.fullmatch(joined) is not None:
        return joined
    sanitized = _INVALID_CHAR.sub("_", joined)
    if len(sanitized) > MAX_NAME_LENGTH:
        return _with_suffix(sanitized, _short_hash(server, name))
    return sanitized or _short_hash(server, name)


def _label_of(server: str) -> str:
    # A `/` in a server key is the "token in the path" trick (`fetch/<token>`): only the part before
    # it is shown, so that merged names never reveal the token.
    label = _INVALID_CHAR.sub("_", server.split("/", 1)[0])[:_SUFFIXED_PREFIX_LENGTH]
    return label or _short_hash(server, "")


def server_labels(servers: Iterable[str]) -> dict[str, str]:
    """The namespace of each server on one merged endpoint: unique, `[A-Za-z0-9_.-]`, no path tokens.

    A server's label is its name up to the first `/`, sanitized; servers whose labels coincide (such as
    `fetch/a` and `fetch/b`) all get `<label>-<hash8>`, so that no label depends on the input order.
    """
    unique = sorted(set(servers))
    natural = {server: _label_of(server) for server in unique}
    counts: dict[str, int] = {}
    for label in natural.values():
        counts[label] = counts.get(label, 0) + 1
    taken = {label for label, count in counts.items() if count == 1}
    labels: dict[str, str] = {}
    for server in unique:
        label = natural[server]
        if counts[label] > 1:
            label = _resolve_collision(server, "", label, taken)
            taken.add(label)
        labels[server] = label
    return labels


class NameEntry(NamedTuple):
    """One published name and the (server, upstream name) pair behind it."""

    published: str
    server: str
    name: str


class NameTable:
    """An immutable two-way mapping between published names and (server, upstream name) pairs.

    Build it with `build_name_table`, which guarantees that published names are unique.
    """

    __slots__ = ("_by_pair", "_by_published", "_entries")

    def __init__(self, entries: Iterable[NameEntry]) -> None:
        self._entries: tuple[NameEntry, ...] = tuple(sorted(entries, key=lambda e: (e.server, e.name)))
        self._by_pair: dict[tuple[str, str], str] = {(e.server, e.name): e.published for e in self._entries}
        self._by_published: dict[str, tuple[str, str]] = {
            e.published: (e.server, e.name) for e in self._entries
        }

    def publish(self, server: str, name: str) -> str:
        """The published name of `server`'s `name`; KeyError when the pair is not in the table."""
        return self._by_pair[server, name]

    def resolve(self, published: str) -> tuple[str, str] | None:
        """The (server, upstream name) behind a published name, or None when it is unknown."""
        return self._by_published.get(published)

    def __contains__(self, published: object) -> bool:
        return published in self._by_published

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[NameEntry]:
        """Entries ordered by (server, upstream name)."""
        return iter(self._entries)


def _resolve_collision(server: str, name: str, natural: str, taken: set[str]) -> str:
    """A free name for a pair that lost its natural name: `natural-<hash8>`, salted until free."""
    salt = 0
    while True:
        candidate = _with_suffix(natural, _short_hash(server, name, salt))
        if candidate not in taken:
            return candidate
        salt += 1


def build_name_table(entries: Iterable[tuple[str, str]], separator: str = "__") -> NameTable:
    """Publish every (server, upstream name) pair under a unique name, whatever the input order.

    A pair whose natural name (`published_name`) is unique keeps it. Among pairs that share one,
    the first by (server, name) keeps it and the others get a `-<hash8>` suffix; natural names are
    never taken away by a suffixed one, so adding a pair renames at most its own collision group.
    """
    pairs = sorted(set(entries))
    natural = {pair: published_name(pair[0], pair[1], separator) for pair in pairs}
    owner: dict[str, tuple[str, str]] = {}
    for pair in pairs:
        owner.setdefault(natural[pair], pair)
    taken = set(owner)
    result = [NameEntry(published, *pair) for published, pair in owner.items()]
    for pair in pairs:
        if owner[natural[pair]] != pair:
            published = _resolve_collision(pair[0], pair[1], natural[pair], taken)
            taken.add(published)
            result.append(NameEntry(published, *pair))
    return NameTable(result)


def claim_name(base: str, taken: set[str], separator: str = "-") -> str:
    """`base`, or `base<sep>2`, `base<sep>3`, ... : the first not in `taken`, which it is added to."""
    name, counter = base, 1
    while name in taken:
        counter += 1
        name = f"{base}{separator}{counter}"
    taken.add(name)
    return name
