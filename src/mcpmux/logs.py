"""Logging setup: one stderr handler, a greppable text format or one JSON object per line."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

from .core.redact import Redactor, redact_running, use_redactor

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
# Keys a caller may pass with `extra={...}` that the JSON format writes out as fields.
EXTRA_FIELDS = (
    "server",
    "session",
    "request_id",
    "method",
    "tool",
    "status",
    "duration_ms",
    "route",
    "client",
    "error",
    "attempt",
    "state",
    "transport",
    "error_code",
    "trace_id",
)
ACCESS_LOG = logging.getLogger("mcpmux.access")
NOISY_LOGGERS = ("httpx2", "httpx", "httpcore", "mcp")
_LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def utc_timestamp(created: float) -> str:
    """`2026-11-23T20:40:36.123Z` for a `time.time()` value."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created * 1000) % 1000:03d}Z"


def _one_entry(message: str) -> str:
    """A message's later lines indented, CR shown as `\\r`: text a client chose (a method, a request id,
    a tool name) cannot start a line that looks like another log entry (CWE-117)."""
    if "\n" not in message and "\r" not in message:
        return message
    return message.replace("\r", "\\r").replace("\n", "\n    ")


class TextFormatter(logging.Formatter):
    """`<timestamp> INFO  <message>`: messages stay verbatim (later lines indented), users grep for them."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelname, record.levelname)
        line = f"{utc_timestamp(record.created)} {level:<5} {_one_entry(record.getMessage())}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and the known `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def parse_level(level: str) -> int:
    """`debug|info|warning|error` (any case, `warn` too) -> a logging level; ValueError otherwise."""
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(f'unknown log level "{level}" (expected debug, info, warning or error)') from None


class RedactingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler whose every formatted line (message, fields, traceback) has no secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_running(super().format(record))


def set_redactor(redactor: Redactor) -> None:
    """What every log line (and every upstream error) is passed through from now on."""
    use_redactor(redactor)


def setup_logging(level: str = "info", fmt: str = "text", *, stream: TextIO | None = None) -> None:
    """Configure the root logger on stderr (or `stream`); calling it again replaces the previous setup."""
    if fmt not in ("text", "json"):
        raise ValueError(f'unknown log format "{fmt}" (expected text or json)')
    numeric_level = parse_level(level)
    handler = RedactingHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # At debug everything shows; otherwise third-party chatter (per-request lines) is cut to warnings.
    noisy_level = logging.NOTSET if numeric_level <= logging.DEBUG else max(logging.WARNING, numeric_level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy_level)


def _access_fields(stats: Any, session: str, request_id: Any, duration_ms: float) -> dict[str, Any]:
    """The JSON fields of an access line that answered "ok" (`log_request` adds an error's)."""
    return {
        "route": stats.route,
        "server": stats.server or None,
        "session": session,
        "request_id": request_id,
        "method": stats.method,
        "tool": stats.tool or None,
        "status": "ok",
        "duration_ms": round(duration_ms, 3),
    }


def log_request(
    stats: Any,
    session: str,
    request_id: Any,
    response: dict[str, Any] | None,
    seconds: float,
    span: Any = None,
) -> None:
    """The access line of one JSON-RPC request (only for routes with `logEnabled`).

    Text: `<route> <method> [<tool> ]id=<id> ok|error <code> <ms>ms session=<id>`; JSON adds the fields.
    `stats` is the request's `RequestStats` (route, server, method and tool labels).
    """
    if not ACCESS_LOG.isEnabledFor(logging.INFO):
        return
    error = response.get("error") if response is not None else {"code": "(no response)"}
    code = error.get("code") if isinstance(error, dict) else None
    outcome = "ok" if error is None else f"error {code}"
    duration_ms = seconds * 1000
    extra = _access_fields(stats, session, request_id, duration_ms)
    if error is not None:
        extra["status"] = "error"
        if response is not None:
            extra["error_code"] = code
    if span is not None:
        extra["trace_id"] = format(span.get_span_context().trace_id, "032x")
    tool = f"{stats.tool} " if stats.tool else ""
    ACCESS_LOG.info(
        "%s %s %sid=%s %s %.1fms session=%s",
        stats.route, stats.method, tool, request_id, outcome, duration_ms, session, extra=extra,
    )  # fmt: skip
