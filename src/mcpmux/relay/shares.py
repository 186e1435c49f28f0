"""Per-caller shares of a 2026 carrier's bounded places (listen streams, suspended calls)."""

from __future__ import annotations

from collections.abc import Iterable

# Without auth, every 2026 client of a route shares one carrier (they have no token to tell them apart),
# so its places are counted per client address: each address gets what a token gets, and all
# anonymous clients of a route together at most this many times that (the bound on memory stays).
ANONYMOUS_SHARE = 8


def caller_key(anonymous: bool, peer: str) -> str:
    """Who a carrier's place is counted for: the client address on a carrier without a token; on a
    token's carrier the token itself (one key: all its places count together)."""
    return peer if anonymous else ""


def share_refusal(holders: Iterable[str], caller: str, each: int, anonymous: bool, what: str) -> str | None:
    """Why `caller` may not take one more place of `what` (None: it may). `holders`: the caller key of
    each place held on the carrier now."""
    held = list(holders)
    if not anonymous:
        return f"at most {each} {what} per token" if len(held) >= each else None
    if held.count(caller) >= each:
        return f"at most {each} {what} per client address without a token"
    if len(held) >= each * ANONYMOUS_SHARE:
        return f"at most {each * ANONYMOUS_SHARE} {what} for all clients without a token"
    return None
