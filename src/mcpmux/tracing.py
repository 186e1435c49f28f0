"""Optional OpenTelemetry tracing: a span per relayed request, W3C trace context carried upstream.

Off by default. When off nothing here is imported by the data path beyond one `is None` check, and the
OpenTelemetry packages are never imported. When on (`mcpProxy.tracing` or `--otel`), every JSON-RPC
request a client sends gets a span; the client's own `params._meta.traceparent` (if any) is its parent,
and the span's context replaces it in `params._meta` (`traceparent`, `tracestate`) of the message sent
upstream, and in the HTTP headers for HTTP upstreams.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from . import __version__
from .core.redact import redact_running

if TYPE_CHECKING:
    from .config.model import ProxyConfig, TracingConfig
    from .core.counters import RequestStats

log = logging.getLogger("mcpmux")

# Read by the HTTP upstream transports (one global check per POST): copy `_meta` trace context to headers.
active = False
TRACE_KEYS = ("traceparent", "tracestate")


def http_headers(msg: dict[str, Any]) -> dict[str, str]:
    """The W3C trace context headers for an upstream HTTP POST of `msg` (from its `params._meta`)."""
    params = msg.get("params")
    meta = params.get("_meta") if type(params) is dict else None
    if type(meta) is not dict:
        return {}
    return {key: meta[key] for key in TRACE_KEYS if type(meta.get(key)) is str}


class Tracing:
    """Starts and ends request spans; injects their context into the forwarded message."""

    def __init__(self, tracer: Any, propagator: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        self.tracer = tracer
        self.propagator = propagator
        self._kind = SpanKind.SERVER
        self._status = Status
        self._error = StatusCode.ERROR
        self._in_context = set_span_in_context

    def start(self, msg: dict[str, Any], stats: RequestStats, session: str) -> Any:
        """A started span for the request `msg`; `msg.params._meta` now carries its trace context."""
        params = msg.get("params")
        if params is None:
            params = {}
        meta = params.get("_meta") if type(params) is dict else None
        parent = self.propagator.extract(meta) if type(meta) is dict and "traceparent" in meta else None
        name = f"{stats.method} {stats.tool}" if stats.tool else stats.method
        attributes = _span_attributes(msg, stats, session)
        span = self.tracer.start_span(name, context=parent, kind=self._kind, attributes=attributes)
        if type(params) is dict:
            self._inject(msg, params, meta, span)
        return span

    def _inject(self, msg: dict[str, Any], params: dict[str, Any], meta: Any, span: Any) -> None:
        """`msg.params._meta` carries `span`'s context in place of the client's trace keys."""
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=self._in_context(span))
        if carrier:
            kept = {k: v for k, v in (meta or {}).items() if k not in TRACE_KEYS}
            msg["params"] = {**params, "_meta": {**kept, **carrier}}

    def end(self, span: Any, response: dict[str, Any] | None) -> None:
        if response is None:
            span.set_status(self._status(self._error, "no response (cancelled or failed)"))
        else:
            error = response.get("error")
            if error is not None:
                code = error.get("code") if type(error) is dict else None
                message = error.get("message") if type(error) is dict else None
                span.set_attribute("rpc.jsonrpc.error_code", code if type(code) is int else -1)
                span.set_status(self._status(self._error, str(message)))
        span.end()


def _span_attributes(msg: dict[str, Any], stats: RequestStats, session: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "mcp.method.name": stats.method,
        "mcp.session.id": session,
        "jsonrpc.request.id": str(msg.get("id")),
        "mcpmux.route": redact_running(stats.route),  # a `name/<token>` route shows no token
    }
    if stats.tool:
        attributes["gen_ai.tool.name"] = stats.tool
    if stats.server:
        attributes["mcpmux.server"] = redact_running(stats.server)
    return attributes


def open_tracing(config: ProxyConfig) -> Tracing | None:
    """The tracer for this proxy, or None when tracing is off (or OpenTelemetry is not installed)."""
    settings: TracingConfig | None = getattr(config, "tracing", None)
    if settings is None or not settings.enabled:
        return None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("Tracing is configured but OTEL_SDK_DISABLED=true: tracing is off")
        return None
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        log.warning("Tracing is on but OpenTelemetry is not installed: pip install 'mcpmux[otel]'")
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):  # nobody configured one: set up the SDK's
        provider = _sdk_provider(settings)
        if provider is None:
            return None
        trace.set_tracer_provider(provider)
    global active
    active = True
    log.info("Tracing on (exporter %s)", settings.exporter)
    return Tracing(provider.get_tracer("mcpmux", __version__), propagate.get_global_textmap())


def _sdk_provider(settings: TracingConfig) -> Any:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("Tracing is on but opentelemetry-sdk is not installed: pip install 'mcpmux[otel]'")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    exporter: Any = None
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    elif settings.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "Tracing: no OTLP exporter installed (pip install 'mcpmux[otel]'); spans are not exported"
            )
        else:
            exporter = OTLPSpanExporter()  # endpoint and headers from OTEL_EXPORTER_OTLP_* variables
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
