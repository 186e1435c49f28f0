"""Per-request telemetry: which series a request lands in, what is counted, and the access log switch."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from mcpmux.web import telemetry as telemetry_module
from mcpmux.web.telemetry import MERGED_ROUTE_LABEL, Telemetry, called_tool, server_of


class FakeRoute:
    """Answers every request with `answer(msg)`; raises it when it is an exception."""

    def __init__(self, name: str = "fx", answer: Any = None, log_enabled: bool = False) -> None:
        self.name = name
        self.runtime = SimpleNamespace(name=name)
        self.log_enabled = log_enabled
        self.answer = answer or (lambda msg: {"jsonrpc": "2.0", "id": msg["id"], "result": {}})

    async def handle_request(self, client: Any, msg: dict[str, Any], exchange: Any) -> dict[str, Any]:
        answer = self.answer(msg)
        if isinstance(answer, BaseException):
            raise answer
        return answer


CLIENT = SimpleNamespace(id="session-1")


def call(name: Any, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name}}


def relay(telemetry: Telemetry, route: Any, msg: dict[str, Any]) -> dict[str, Any]:
    return anyio.run(telemetry.relay, route, CLIENT, msg, None)


def test_each_route_method_and_tool_gets_its_own_series_with_calls_and_errors() -> None:
    telemetry = Telemetry()
    route = FakeRoute(answer=lambda msg: {"id": msg["id"], "error": {"code": -1}} if msg["id"] == 3 else {})
    for request_id in (1, 2, 3):
        relay(telemetry, route, call("echo", request_id))
    relay(telemetry, route, {"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
    echo = telemetry.stats["fx", "tools/call", "echo"]
    assert (echo.route, echo.server, echo.method, echo.tool) == ("fx", "fx", "tools/call", "echo")
    assert (echo.calls, echo.errors, echo.active) == (3, 1, 0)
    assert telemetry.stats["fx", "tools/list", ""].calls == 1


def test_a_request_that_raises_counts_as_an_error_and_gets_an_internal_error_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = Telemetry()
    with caplog.at_level(logging.ERROR, logger="mcpmux.http"):
        answer = relay(telemetry, FakeRoute(answer=lambda msg: RuntimeError("boom")), call("echo", 7))
    assert answer["id"] == 7 and answer["error"]["code"] == -32603
    assert answer["error"]["message"] == "mcpmux internal error: RuntimeError"  # no exception text
    assert "boom" in caplog.text and "tools/call failed" in caplog.text  # the traceback: the log only
    stats = telemetry.stats["fx", "tools/call", "echo"]
    assert (stats.calls, stats.errors, stats.active) == (1, 1, 0)


def test_a_base_exception_such_as_cancellation_still_propagates_and_counts_as_an_error() -> None:
    telemetry = Telemetry()
    with pytest.raises(KeyboardInterrupt):
        relay(telemetry, FakeRoute(answer=lambda msg: KeyboardInterrupt()), call("echo"))
    stats = telemetry.stats["fx", "tools/call", "echo"]
    assert (stats.calls, stats.errors, stats.active) == (1, 1, 0)


def test_odd_tool_names_never_break_the_series_key() -> None:
    telemetry = Telemetry()
    relay(telemetry, FakeRoute(), call({"not": "a string"}))
    relay(telemetry, FakeRoute(), {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]})
    assert telemetry.stats["fx", "tools/call", ""].calls == 2


def test_past_the_series_limit_new_keys_share_one_other_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry_module, "MAX_SERIES", 2)
    telemetry = Telemetry()
    for name in ("a", "b", "c", "d"):
        relay(telemetry, FakeRoute(), call(name))
    assert set(telemetry.stats) == {
        ("fx", "tools/call", "a"),
        ("fx", "tools/call", "b"),
        ("fx", "_other", ""),
    }
    assert telemetry.stats["fx", "_other", ""].calls == 2


def test_merged_routes_label_calls_with_the_server_that_owns_the_published_tool() -> None:
    target = SimpleNamespace(server="github")
    merged = SimpleNamespace(name="", catalog=SimpleNamespace(tools={"github__create_issue": target}))
    assert server_of(merged, "tools/call", "github__create_issue") == "github"
    assert server_of(merged, "tools/call", "unknown") == ""
    assert server_of(merged, "tools/list", "") == ""
    telemetry = Telemetry()
    stats = telemetry.stats_for(merged, "tools/call", "github__create_issue")  # type: ignore[arg-type]
    assert (stats.route, stats.server) == (MERGED_ROUTE_LABEL, "github")


def test_requests_are_logged_only_on_routes_with_log_enabled(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()
    with caplog.at_level(logging.INFO, logger="mcpmux.access"):
        relay(telemetry, FakeRoute(log_enabled=False), call("echo", 1))
        relay(telemetry, FakeRoute(log_enabled=True), call("echo", 2))
    assert [record.request_id for record in caplog.records] == [2]  # type: ignore[attr-defined]


def test_call_tool_of_a_search_mode_route_is_labelled_with_the_tool_it_names() -> None:
    searching, full = SimpleNamespace(search=object()), SimpleNamespace(search=None)
    via_meta = {"name": "call_tool", "arguments": {"name": "read_file", "arguments": {}}}
    assert called_tool(searching, via_meta) == "read_file"
    assert called_tool(full, via_meta) == "call_tool"  # catalog: full: an upstream's own call_tool
    assert called_tool(searching, {"name": "search_tools", "arguments": {"name": "x"}}) == "search_tools"
    for odd in ({"name": "call_tool"}, {"name": "call_tool", "arguments": {"name": 3}}):
        assert called_tool(searching, odd) == "call_tool"
    assert called_tool(searching, {"name": 1}) == "" and called_tool(searching, []) == ""
