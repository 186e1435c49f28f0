"""2026-07-28 cache hints (`ttlMs`, `cacheScope`) carried from an upstream to the clients that may use them.

A 2026 upstream's hints travel through the handshake-era side of mcpmux in the result's
`_meta[HINT_META]`, and come out for a 2026 client only as far as they are safe: never on `input_required`
or after a multi round-trip retry, never `public` where the client presented a token (what a token sees
may differ from what another sees), a merged result takes the shortest ttl and the most private scope of
its parts, and a part without hints makes the whole `0`/`private`.

The carried hint is a tuple, which no JSON parser makes: an upstream that writes `HINT_META` itself is
never taken at its word. It is put only on results for 2026 clients (never for handshake-era ones), and
taken off before they leave mcpmux.
"""

from __future__ import annotations

from typing import Any

HINT_META = "dev.mcpmux/cacheHint"  # where a result carries its upstream's hints inside mcpmux
PUBLIC = "public"
PRIVATE = "private"
NO_CACHE: tuple[int, str] = (0, PRIVATE)
MAX_TTL_MS = 2**53 - 1  # JSON's exact integers: anything larger is not a ttl we pass on

Hint = tuple[int, str]
# `server/discover` of a handshake-era upstream: what it describes (versions, capabilities, instructions,
# identity) changes only when the upstream restarts or mcpmux reloads; a minute bounds how long a client
# may go on with an old description. Lists are not part of it: they have their own hints and list_changed.
HANDSHAKE_DISCOVER_HINT: Hint = (60_000, PUBLIC)


def read_hint(ttl_ms: Any, scope: Any) -> Hint | None:
    """A valid (ttlMs, cacheScope) pair, or None (a missing, negative or non-integer ttl, another scope)."""
    if type(ttl_ms) is not int or not 0 <= ttl_ms <= MAX_TTL_MS or scope not in (PUBLIC, PRIVATE):
        return None
    return ttl_ms, scope


def combine(hints: list[Hint | None]) -> Hint:
    """The hint of a result made of parts: the shortest ttl, `private` if any part is; no parts, or a
    part without hints, means not cacheable (`0`, `private`)."""
    if not hints or any(hint is None for hint in hints):
        return NO_CACHE
    known = [hint for hint in hints if hint is not None]
    ttl = min(ttl for ttl, _ in known)
    scope = PRIVATE if any(scope == PRIVATE for _, scope in known) else PUBLIC
    return ttl, scope


def for_client(hint: Hint | None, shareable: bool) -> Hint:
    """What a client is told: the upstream's hint, `private` when the result may differ by client
    (`shareable` false: the request came with a token); none: `0`, `private`."""
    if hint is None:
        return NO_CACHE
    ttl, scope = hint
    return (ttl, scope) if shareable or scope == PRIVATE else (ttl, PRIVATE)


def discover_hint(init: dict[str, Any] | None) -> Hint | None:
    """The hint for `server/discover` of an upstream known by its `initialize` result (as mcpmux's
    session has it): a 2026 upstream's own discover hint, else `HANDSHAKE_DISCOVER_HINT`; None when the
    upstream is not initialized (what it will say is not known yet)."""
    if init is None:
        return None
    return carried_hint(init) or HANDSHAKE_DISCOVER_HINT


def carry_hint(result: dict[str, Any], hint: Hint) -> None:
    """Put `hint` into `result` for the way through mcpmux (`result` is mcpmux's own copy)."""
    meta = result.get("_meta")
    result["_meta"] = {**meta, HINT_META: tuple(hint)} if isinstance(meta, dict) else {HINT_META: tuple(hint)}


def carried_hint(result: dict[str, Any]) -> Hint | None:
    """The hint `carry_hint` put into `result`, if any (read only; a forged one, from JSON, is none)."""
    meta = result.get("_meta")
    carried = meta.get(HINT_META) if type(meta) is dict else None
    if type(carried) is not tuple or len(carried) != 2:
        return None
    return read_hint(carried[0], carried[1])


def take_carried(result: dict[str, Any]) -> Hint | None:
    """The hint `carry_hint` put into `result`, removed from it (the key goes, forged or not).
    `result` is mcpmux's own copy."""
    meta = result.get("_meta")
    if type(meta) is not dict or HINT_META not in meta:
        return None
    hint = carried_hint(result)
    rest = {k: v for k, v in meta.items() if k != HINT_META}
    if rest:
        result["_meta"] = rest
    else:
        del result["_meta"]
    return hint


def recarry(result: dict[str, Any], hint: Hint | None) -> None:
    """`result` (mcpmux's own copy) carrying `hint` instead of what it carried (None: nothing)."""
    take_carried(result)
    if hint is not None:
        carry_hint(result, hint)


def take_hint(result: dict[str, Any]) -> Hint | None:
    """The hint a result carries (removed from it): mcpmux's `_meta` entry, else `ttlMs`/`cacheScope`
    an upstream put there itself. `result` is mcpmux's own copy."""
    meta = result.get("_meta")
    if type(meta) is dict and HINT_META in meta:
        return take_carried(result)
    return read_hint(result.pop("ttlMs", None), result.pop("cacheScope", None))
