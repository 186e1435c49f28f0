"""Tracing: off by default, spans for requests, trace context into `_meta` and HTTP headers."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.propagate import get_global_textmap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcpmux.config.model import TracingConfig
from mcpmux.config.parse import parse_config
from mcpmux.core.counters import RequestStats
from mcpmux.core.redact import Redactor, use_redactor
from mcpmux.tracing import Tracing, http_headers, open_tracing

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ECHO = RequestStats("fx", "fx", "tools/call", "echo")


def tracer() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider.get_tracer("test"), get_global_textmap()), exporter


def test_tracing_is_off_unless_configured() -> None:
    class Config:
        tracing = TracingConfig()

    assert open_tracing(Config()) is None  # type: ignore[arg-type]


def test_otel_sdk_disabled_wins_over_the_config(monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")

    class Config:
        tracing = TracingConfig(enabled=True)

    assert open_tracing(Config()) is None  # type: ignore[arg-type]


def test_a_span_takes_the_clients_context_as_parent_and_replaces_it_in_meta() -> None:
    traced, exporter = tracer()
    msg: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "echo", "_meta": {"traceparent": PARENT, "progressToken": 5}},
    }
    original_params = msg["params"]
    span = traced.start(msg, ECHO, "session-1")
    traced.end(span, {"jsonrpc": "2.0", "id": 3, "result": {}})
    (finished,) = exporter.get_finished_spans()
    context = finished.get_span_context()
    assert finished.name == "tools/call echo"
    assert finished.parent is not None and finished.parent.span_id == 0x00F067AA0BA902B7
    assert msg["params"]["_meta"]["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    assert msg["params"]["_meta"]["progressToken"] == 5
    assert original_params["_meta"]["traceparent"] == PARENT  # the client's dict is not edited in place
    assert finished.attributes == {
        "mcp.method.name": "tools/call",
        "mcp.session.id": "session-1",
        "jsonrpc.request.id": "3",
        "mcpmux.route": "fx",
        "gen_ai.tool.name": "echo",
        "mcpmux.server": "fx",
    }


def test_a_request_without_params_gets_params_with_the_trace_context() -> None:
    traced, exporter = tracer()
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    traced.end(traced.start(msg, RequestStats("fx", "fx", "tools/list", ""), "s"), None)
    assert set(msg["params"]["_meta"]) == {"traceparent"}
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "tools/list" and finished.parent is None
    assert not finished.status.is_ok


def test_an_error_response_marks_the_span_with_its_code() -> None:
    traced, exporter = tracer()
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}
    span = traced.start(msg, ECHO, "s")
    traced.end(span, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32099, "message": "boom"}})
    (finished,) = exporter.get_finished_spans()
    assert finished.status.description == "boom"
    assert finished.attributes is not None and finished.attributes["rpc.jsonrpc.error_code"] == -32099


def test_http_headers_copy_only_string_trace_context_from_meta() -> None:
    meta = {"traceparent": PARENT, "tracestate": "a=1", "other": "x"}
    assert http_headers({"params": {"_meta": meta}}) == {"traceparent": PARENT, "tracestate": "a=1"}
    assert http_headers({"params": {"_meta": {"traceparent": 5}}}) == {}
    assert http_headers({"params": [1, 2]}) == {}
    assert http_headers({"method": "x"}) == {}


def test_a_path_token_in_a_route_name_never_reaches_a_span() -> None:
    document = {"mcpProxy": {}, "mcpServers": {"fetch/path-token-123": {"command": "x"}}}
    config, _ = parse_config(json.dumps(document), "t", environ={}, expand_env=False)
    traced, exporter = tracer()
    stats = RequestStats("fetch/path-token-123", "fetch/path-token-123", "tools/list", "")
    use_redactor(Redactor.for_config(config))
    try:
        traced.end(traced.start({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, stats, "s"), None)
    finally:
        use_redactor(Redactor())  # the process-wide redactor back to URLs only
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert (finished.attributes["mcpmux.route"], finished.attributes["mcpmux.server"]) == (
        "fetch/***",
        "fetch/***",
    )
