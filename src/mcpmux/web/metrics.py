"""`GET /metrics`: Prometheus text built at scrape time from the proxy's own counters and state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ..core.counters import KINDS
from .asgi import Receive, RequestHeaders, Scope, Send, send_bytes
from .operator import authorized
from .telemetry import Telemetry, route_label

if TYPE_CHECKING:
    from .state import ProxyState

REQUEST_LABELS = ["route", "server", "method", "tool"]
STATES = ("idle", "connecting", "ready", "unhealthy", "restarting", "failed", "stopped")
# A server-to-client request arrives from the upstream as a request; name it for what it is.
RECEIVED_KINDS = ("server_request", "notification", "response")


class ProxyCollector(Collector):
    """Reads `Telemetry.stats`, the routes' sessions and the runtimes' state on every scrape."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app  # its `state` read at each scrape: a reload replaces it
        self.telemetry = telemetry

    def _current(self) -> ProxyState:
        state: ProxyState = self.app.state
        return state

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        proxy = self._current()
        yield from self._routes(proxy)
        yield from self._upstreams(proxy)
        yield from self._pinning(proxy)

    def _requests(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("mcpmux_requests", "JSON-RPC requests answered", labels=REQUEST_LABELS)
        errors = CounterMetricFamily(
            "mcpmux_request_errors", "JSON-RPC requests answered with an error", labels=REQUEST_LABELS
        )
        latency = HistogramMetricFamily(
            "mcpmux_request_duration_seconds", "Time to answer a JSON-RPC request", labels=REQUEST_LABELS
        )
        for stats in list(self.telemetry.stats.values()):
            labels = [stats.route, stats.server, stats.method, stats.tool]
            calls.add_metric(labels, stats.calls)
            errors.add_metric(labels, stats.errors)
            buckets = [(_bound(b), n) for b, n in stats.cumulative_buckets()]
            latency.add_metric(labels, buckets, stats.seconds)
        yield from (calls, errors, latency)

    def _routes(self, proxy: ProxyState) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            "mcpmux_sessions_active", "Downstream client sessions open", labels=["route"]
        )
        in_flight = GaugeMetricFamily(
            "mcpmux_requests_in_flight", "Downstream requests being answered", labels=["route"]
        )
        active: dict[str, int] = {}
        for stats in list(self.telemetry.stats.values()):
            active[stats.route] = active.get(stats.route, 0) + stats.active
        for route in list(proxy.routes.values()):
            label = route_label(route)
            sessions.add_metric([label], len(route.sessions))
            in_flight.add_metric([label], active.get(label, 0))
        yield from (sessions, in_flight)

    def _upstreams(self, proxy: ProxyState) -> Iterator[Metric]:
        families = UpstreamFamilies()
        for name, runtime in list(proxy.runtimes.items()):
            families.add(name, runtime, _pending(runtime, proxy))
        yield from families.all()

    @staticmethod
    def _pinning(proxy: ProxyState) -> Iterator[Metric]:
        detected = CounterMetricFamily(
            "mcpmux_pin_changes",
            "Changes of pinned definitions seen (each counted once), by server and change",
            labels=["server", "change"],
        )
        withheld = GaugeMetricFamily(
            "mcpmux_pin_withheld_tools", "Tools pinning withholds now (enforce mode)", labels=["server"]
        )
        for (server, change), count in sorted(proxy.pins.detected.items()):
            detected.add_metric([server, change], count)
        for name, runtime in list(proxy.runtimes.items()):
            verdict = runtime.pin_verdict
            if verdict is not None:
                withheld.add_metric([name], len(verdict.tool_changes) if verdict.enforcing else 0)
        yield from (detected, withheld)


class UpstreamFamilies:
    """The per-server families of one scrape."""

    def __init__(self) -> None:
        server = ["server"]
        self.up = GaugeMetricFamily("mcpmux_upstream_up", "1 when the server is connected", labels=server)
        self.state = GaugeMetricFamily(
            "mcpmux_upstream_state", "1 for the server's current state", labels=["server", "state"]
        )
        self.restarts = CounterMetricFamily(
            "mcpmux_upstream_restarts", "Times the server's connection was restarted", labels=server
        )
        self.tools = GaugeMetricFamily("mcpmux_upstream_tools", "Tools the server lists", labels=server)
        self.uptime = GaugeMetricFamily(
            "mcpmux_upstream_uptime_seconds", "Seconds since the server connected, 0 if down", labels=server
        )
        self.pending = GaugeMetricFamily(
            "mcpmux_upstream_requests_in_flight", "Requests sent upstream, not yet answered", labels=server
        )
        self.messages = CounterMetricFamily(
            "mcpmux_messages",
            "Messages relayed over upstream connections, by direction and kind",
            labels=["server", "direction", "kind"],
        )

    def add(self, name: str, runtime: Any, pending: int) -> None:
        self.up.add_metric([name], 1 if runtime.ready else 0)
        for known in (*STATES, *(() if runtime.state in STATES else (runtime.state,))):
            self.state.add_metric([name, known], 1 if runtime.state == known else 0)
        self.restarts.add_metric([name], runtime.restarts)
        self.tools.add_metric([name], len(runtime.tools))
        connected_at = runtime.connected_at
        up_seconds = runtime.clock.now() - connected_at if connected_at and runtime.ready else 0.0
        self.uptime.add_metric([name], up_seconds)
        self.pending.add_metric([name], pending)
        traffic = getattr(runtime, "traffic", None)
        if traffic is not None:
            for kind, count in zip(KINDS, traffic.sent, strict=True):
                self.messages.add_metric([name, "to_upstream", kind], count)
            for kind, count in zip(RECEIVED_KINDS, traffic.received, strict=True):
                self.messages.add_metric([name, "from_upstream", kind], count)

    def all(self) -> tuple[Metric, ...]:
        return (self.up, self.state, self.restarts, self.tools, self.uptime, self.pending, self.messages)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _pending(runtime: Any, proxy: ProxyState) -> int:
    """Requests waiting on the shared session and on every client's private session of this server."""
    count = len(runtime.session.pending) if runtime.session is not None else 0
    for route in list(proxy.routes.values()):
        for client in list(route.sessions.values()):
            private = client.upstreams.get(runtime.name)
            if private is not None:
                count += len(private.pending)
    return count


class MetricsEndpoint:
    """`GET /metrics` on a registry of its own (never the process-global one)."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProxyCollector(app, telemetry))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        if not await authorized(self.app.state.config, headers, send):
            return
        body = self.app.redactor(self.render().decode()).encode()  # route names may hold path tokens
        await send_bytes(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
