"""OpenTelemetry tracing: a span per relayed request, its W3C context in the upstream's `_meta` and headers.

The proxy runs in this process (real HTTP on a socket bound here, real upstream subprocesses) so that its
spans land in an in-memory exporter.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from harness import bound_socket, fixture_server, mcp_client
from mcpmux.config.parse import parse_config
from mcpmux.serve import serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from everything.launch import running_http_fixture

pytestmark = pytest.mark.anyio

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once: OpenTelemetry refuses to replace it) and its spans."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


class _Ready(logging.Handler):
    def __init__(self, event: anyio.Event) -> None:
        super().__init__(logging.INFO)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "All clients initialized":
            self.event.set()


@asynccontextmanager
async def serving(document: dict[str, Any]) -> AsyncIterator[str]:
    """Run the proxy in this event loop until every server has started; yields its base URL."""
    sock = bound_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    document["mcpProxy"].update(addr=base.removeprefix("http://"), baseURL=base)
    config, _ = parse_config(json.dumps(document), "test", environ={}, expand_env=False)
    logger = logging.getLogger("mcpmux")
    ready = anyio.Event()
    handler, level = _Ready(ready), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: serve(config, listen_fd=sock.detach()))
            await ready.wait()
            yield base
            tg.cancel_scope.cancel()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def traced(server: dict[str, Any]) -> dict[str, Any]:
    return {
        "mcpProxy": {"name": "traced", "tracing": {"enabled": True, "exporter": "none"}},
        "mcpServers": {"fx": server},
    }


def finished(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [span for span in spans.get_finished_spans() if span.name == name]
    assert len(found) == 1, [span.name for span in spans.get_finished_spans()]
    return found[0]


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def test_a_relayed_call_gets_a_span_whose_context_reaches_the_upstream_in_meta(spans):
    async with serving(traced(fixture_server())) as base:
        async with mcp_client(f"{base}/fx/mcp") as session:
            with anyio.fail_after(20):
                # The SDK client traces too: its span's context rides the request's _meta to the proxy.
                with trace.get_tracer("test").start_as_current_span("client operation") as operation:
                    result = await session.call_tool("echo_meta", {}, meta={"com.example/keep": "yes"})

    span = finished(spans, "tools/call echo_meta")
    client_span = finished(spans, "MCP send tools/call echo_meta")
    assert span.kind == SpanKind.SERVER
    assert span.parent is not None and span.parent.span_id == client_span.context.span_id
    assert span.context.trace_id == operation.get_span_context().trace_id
    assert span.attributes is not None
    assert span.attributes["mcp.method.name"] == "tools/call"
    assert span.attributes["gen_ai.tool.name"] == "echo_meta"
    assert span.attributes["mcpmux.server"] == "fx"
    assert span.attributes["mcpmux.route"] == "fx"
    assert span.status.is_ok

    received = result.structured_content
    assert received["meta"]["traceparent"] == traceparent_of(span)
    assert received["meta"]["com.example/keep"] == "yes"  # the client's other _meta survives
    assert received["headers"] == {}  # stdio: no HTTP headers
    initialize = finished(spans, "initialize")
    assert initialize.attributes is not None and initialize.attributes["mcpmux.server"] == "fx"


async def test_a_traceparent_sent_by_any_client_becomes_the_parent_of_the_proxys_span(spans):
    async with serving(traced(fixture_server())) as base, httpx2.AsyncClient() as http:
        url = f"{base}/fx/mcp"
        accept = {"accept": "application/json, text/event-stream"}
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        }
        response = await http.post(url, json=jsonrpc(1, "initialize", init), headers=accept)
        session = {**accept, "mcp-session-id": response.headers["mcp-session-id"]}
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        meta = {"traceparent": CLIENT_TRACEPARENT, "tracestate": "vendor=1"}
        params = {"name": "echo_meta", "arguments": {}, "_meta": meta}
        answer = (await http.post(url, json=jsonrpc(2, "tools/call", params), headers=session)).json()

    span = finished(spans, "tools/call echo_meta")
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CLIENT_SPAN_ID
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE_ID
    received = answer["result"]["structuredContent"]["meta"]
    assert received["traceparent"] == traceparent_of(span)
    assert received["tracestate"] == "vendor=1"


def jsonrpc(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


async def test_an_http_upstream_also_gets_the_trace_context_as_headers_and_errors_mark_the_span(spans):
    with running_http_fixture("streamable-http") as upstream:
        async with serving(traced({"type": "streamable-http", "url": upstream.url})) as base:
            async with mcp_client(f"{base}/mcp") as session:
                with anyio.fail_after(20):
                    result = await session.call_tool("fx__echo_meta", {})
                    with pytest.raises(Exception, match="boom"):
                        await session.call_tool("fx__fail", {})

    span = finished(spans, "tools/call fx__echo_meta")
    assert span.attributes is not None and span.attributes["mcpmux.server"] == "fx"
    assert span.attributes["mcpmux.route"] == "_merged"
    received = result.structured_content
    assert received["meta"]["traceparent"] == traceparent_of(span)
    assert received["headers"]["traceparent"] == traceparent_of(span)

    failed = finished(spans, "tools/call fx__fail")
    assert not failed.status.is_ok
    assert failed.attributes is not None and failed.attributes["rpc.jsonrpc.error_code"] == -32099
