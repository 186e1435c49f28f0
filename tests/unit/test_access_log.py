"""The per-request access line: a readable text line, and the fields the JSON format writes."""

from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace

from mcpmux.core.counters import RequestStats
from mcpmux.logs import log_request, setup_logging

ECHO = RequestStats("fx", "fx", "tools/call", "echo")
LIST = RequestStats("_merged", "", "tools/list", "")


def test_text_access_lines_name_route_method_tool_id_outcome_duration_and_session(
    stderr: io.StringIO,
) -> None:
    setup_logging("info", "text", stream=stderr)
    log_request(ECHO, "abc", 7, {"jsonrpc": "2.0", "id": 7, "result": {}}, 0.0123)
    log_request(LIST, "def", "x", {"jsonrpc": "2.0", "id": "x", "error": {"code": -32601}}, 0.5)
    first, second = stderr.getvalue().splitlines()
    assert re.fullmatch(r"\S+Z INFO  fx tools/call echo id=7 ok 12\.3ms session=abc", first)
    assert second.endswith("INFO  _merged tools/list id=x error -32601 500.0ms session=def")


def test_json_access_lines_carry_every_request_field(stderr: io.StringIO) -> None:
    setup_logging("info", "json", stream=stderr)
    log_request(
        ECHO, "abc", 7, {"jsonrpc": "2.0", "id": 7, "error": {"code": -32099, "message": "boom"}}, 0.002
    )
    entry = json.loads(stderr.getvalue())
    assert entry["logger"] == "mcpmux.access"
    fields = {k: entry[k] for k in ("route", "server", "session", "request_id", "method", "tool", "status")}
    assert fields == {
        "route": "fx",
        "server": "fx",
        "session": "abc",
        "request_id": 7,
        "method": "tools/call",
        "tool": "echo",
        "status": "error",
    }
    assert entry["error_code"] == -32099
    assert entry["duration_ms"] == 2.0


def test_a_request_without_a_response_is_logged_as_an_error(stderr: io.StringIO) -> None:
    setup_logging("info", "json", stream=stderr)
    span = SimpleNamespace(get_span_context=lambda: SimpleNamespace(trace_id=0xABC))
    log_request(LIST, "s", 1, None, 0.001, span)
    entry = json.loads(stderr.getvalue())
    assert (entry["status"], entry["server"], entry["tool"]) == ("error", None, None)
    assert entry["trace_id"] == f"{0xABC:032x}"


def test_nothing_is_formatted_when_the_access_logger_is_off(stderr: io.StringIO) -> None:
    setup_logging("warning", "text", stream=stderr)
    log_request(ECHO, "abc", 7, {"result": {}}, 0.001)
    assert stderr.getvalue() == ""
