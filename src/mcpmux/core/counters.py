"""Plain counters for the hot path (attribute increments, no locks), read when metrics are scraped."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Upper bounds (seconds) of the latency histogram buckets; the last one catches everything.
LATENCY_BUCKETS_SECONDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    float("inf"),
)  # fmt: skip

# What crosses an upstream connection, by kind: a message with `method` and `id` is a request, with only
# `method` a notification, without `method` a response. Upstream-to-proxy requests are server-to-client.
KINDS = ("request", "notification", "response")
REQUEST, NOTIFICATION, RESPONSE = range(3)


class RequestStats:
    """Calls, errors, in-flight count and a latency histogram for one (route, method, tool)."""

    __slots__ = ("active", "buckets", "calls", "errors", "method", "route", "seconds", "server", "tool")

    def __init__(self, route: str, server: str, method: str, tool: str) -> None:
        self.route = route
        self.server = server
        self.method = method
        self.tool = tool
        self.calls = 0
        self.errors = 0
        self.active = 0
        self.seconds = 0.0
        self.buckets = [0] * len(LATENCY_BUCKETS_SECONDS)

    def finish(self, seconds: float, failed: bool) -> None:
        """One request ended after `seconds`; `failed` when it was answered with an error (or none)."""
        self.active -= 1
        self.calls += 1
        if failed:
            self.errors += 1
        self.seconds += seconds
        self.buckets[bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1

    def cumulative_buckets(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs, as Prometheus histograms expose them."""
        total, out = 0, []
        for bound, count in zip(LATENCY_BUCKETS_SECONDS, self.buckets, strict=True):
            total += count
            out.append((bound, total))
        return out


def kind_of(msg: dict[str, Any]) -> int:
    if "method" in msg:
        return REQUEST if "id" in msg else NOTIFICATION
    return RESPONSE


class Traffic:
    """Messages one server's connections carried, by direction and kind."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.sent = [0, 0, 0]  # proxy -> upstream, indexed by REQUEST/NOTIFICATION/RESPONSE (the sessions')
        self.received = [0, 0, 0]  # upstream -> proxy (counted by the connection's `Link`)
