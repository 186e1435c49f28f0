"""What the faces call for every JSON-RPC request: counts and latency, the access log, the optional span."""

from __future__ import annotations

import logging
from bisect import bisect_left
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..core.counters import LATENCY_BUCKETS_SECONDS, RequestStats
from ..jsonrpc import INTERNAL_ERROR, error_response
from ..logs import log_request
from ..relay.toolsearch import CALL_TOOL

if TYPE_CHECKING:
    from ..relay.client import ClientSession
    from ..relay.route import Route
    from ..tracing import Tracing

log = logging.getLogger("mcpmux.http")

MERGED_ROUTE_LABEL = "_merged"  # route names never start with "_"
OTHER_LABEL = "_other"
MAX_SERIES = 2000  # distinct (route, method, tool) keys; past it new ones share one series


def route_label(route: Route) -> str:
    return route.name or MERGED_ROUTE_LABEL


def server_of(route: Any, method: str, tool: str) -> str:
    """The server a route sends this request to, when one server is known ("" for fan-out/local)."""
    runtime = getattr(route, "runtime", None)
    if runtime is not None:
        return str(runtime.name)
    if method == "tools/call":
        tools = getattr(getattr(route, "catalog", None), "tools", None)  # a merged route's published tools
        target = tools.get(tool) if isinstance(tools, dict) else None
        if target is not None:
            return str(target.server)
    return ""


def called_tool(route: Any, params: Any) -> str:
    """The tool a `tools/call` runs: its `name`, or in search mode (`route.search`) the tool that the
    `call_tool` meta-tool names, so logs and metrics carry the real tool ("" when there is none)."""
    if type(params) is not dict:
        return ""
    name = params.get("name")
    if type(name) is not str:
        return ""
    if name == CALL_TOOL and getattr(route, "search", None) is not None:
        arguments = params.get("arguments")
        inner = arguments.get("name") if type(arguments) is dict else None
        return inner if type(inner) is str else name
    return name


def tool_count(route: Any) -> int:
    """How many tools a merged route publishes."""
    tools = getattr(getattr(route, "catalog", None), "tools", None)
    return len(tools) if isinstance(tools, dict) else 0


class Telemetry:
    """Per-request instrumentation shared by every route; `stats` is what /metrics exposes."""

    def __init__(self, tracing: Tracing | None = None) -> None:
        self.stats: dict[tuple[str, str, str], RequestStats] = {}
        self.tracing = tracing

    def stats_for(self, route: Route, method: str, tool: str) -> RequestStats:
        key = (route.name, method, tool)
        stats = self.stats.get(key)
        if stats is None:
            stats = self._new_stats(route, key)
        return stats

    def _new_stats(self, route: Route, key: tuple[str, str, str]) -> RequestStats:
        if len(self.stats) >= MAX_SERIES:  # clients choose methods and tool names: bound the series
            key = (route.name, OTHER_LABEL, "")
            stats = self.stats.get(key)
            if stats is not None:
                return stats
        _, method, tool = key
        stats = RequestStats(route_label(route), server_of(route, method, tool), method, tool)
        self.stats[key] = stats
        return stats

    async def relay(
        self, route: Route, client: ClientSession, msg: dict[str, Any], exchange: Any
    ) -> dict[str, Any]:
        """`route.handle_request`, measured: the response it returns, or this request's JSON-RPC error for
        a bug anywhere below (the traceback goes to the log only): the request gets exactly one answer.

        The faces await this directly (no containing coroutine in between: one frame less on every
        resume of the request).
        """
        method = msg["method"]
        tool = called_tool(route, msg.get("params")) if method == "tools/call" else ""
        key = (route.name, method, tool)
        stats = self.stats.get(key) or self._new_stats(route, key)
        if self.tracing is not None:
            try:
                return await self._relay_traced(route, client, msg, exchange, stats)
            except Exception as exc:  # task boundary: one request's failure must not become an HTTP 500
                return failed(route, msg, exc)
        stats.active += 1
        started = perf_counter()
        try:
            response = await route.handle_request(client, msg, exchange)
        except Exception as exc:  # task boundary, as above
            stats.finish(perf_counter() - started, True)
            return failed(route, msg, exc)
        except BaseException:
            stats.finish(perf_counter() - started, True)
            raise
        seconds = perf_counter() - started
        # RequestStats.finish, inlined: this runs for every request
        stats.active -= 1
        stats.calls += 1
        if "error" in response:
            stats.errors += 1
        stats.seconds += seconds
        stats.buckets[bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
        if route.log_enabled:
            log_request(stats, client.id, msg.get("id"), response, seconds)
        return response

    async def _relay_traced(
        self, route: Route, client: ClientSession, msg: dict[str, Any], exchange: Any, stats: RequestStats
    ) -> dict[str, Any]:
        assert self.tracing is not None
        span = self.tracing.start(msg, stats, client.id)
        stats.active += 1
        started = perf_counter()
        response: dict[str, Any] | None = None
        try:
            response = await route.handle_request(client, msg, exchange)
        finally:
            seconds = perf_counter() - started
            stats.finish(seconds, response is None or "error" in response)
            self.tracing.end(span, response)
        if route.log_enabled:
            log_request(stats, client.id, msg.get("id"), response, seconds, span)
        return response


def failed(route: Route, msg: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The JSON-RPC error answering a request whose handling raised `exc` (logged with its traceback)."""
    log.error("%s: request %s failed", route.name or "mcp", msg.get("method"), exc_info=exc)
    return error_response(msg["id"], INTERNAL_ERROR, f"mcpmux internal error: {type(exc).__name__}")
