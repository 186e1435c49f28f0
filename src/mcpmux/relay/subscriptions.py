"""Resource subscriptions on a shared upstream session, counted per URI and used by every route.

Clients of a shared session may subscribe to the same URI: the upstream gets one `resources/subscribe`
for the first holder and one `resources/unsubscribe` after the last. The counts live in the server's
dispatch (`relay.dispatch.Dispatch.subscribers`, re-sent after a restart); these functions are the only
ones changing them.
"""

from __future__ import annotations


def hold(counts: dict[str, int], uri: str) -> bool:
    """Count one more holder of `uri`; True for the first (the one to subscribe upstream)."""
    held = counts.get(uri, 0) + 1
    counts[uri] = held
    return held == 1


def drop(counts: dict[str, int], uri: str) -> bool:
    """Count one holder less; True when it was the last (unsubscribe upstream), also for an unknown URI."""
    left = counts.get(uri, 1) - 1
    if left > 0:
        counts[uri] = left
        return False
    counts.pop(uri, None)
    return True


def held(counts: dict[str, int], uri: str) -> bool:
    """Whether some client holds `uri` already (so the upstream is subscribed)."""
    return counts.get(uri, 0) > 0


__all__ = ["drop", "held", "hold"]
