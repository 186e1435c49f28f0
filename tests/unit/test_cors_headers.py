"""CORS headers (pure): what a preflight lists, which Mcp-Param-* names are echoed, the send wrapper."""

from __future__ import annotations

from typing import Any

import pytest

from mcpmux.web.cors import ALLOWED_HEADERS, CorsSend, preflight_headers, requested_headers


def test_only_well_formed_mcp_param_headers_are_echoed_once_and_bounded() -> None:
    many = ", ".join(f"Mcp-Param-P{i}" for i in range(100))
    requested = f"mcp-param-a, MCP-PARAM-A, x-other, mcp-param-, mcp-param-b c, {many}"
    allowed = dict(preflight_headers("https://a.example", "mcp", requested))[b"access-control-allow-headers"]
    names = allowed.decode().split(", ")
    assert names[: len(ALLOWED_HEADERS)] == list(ALLOWED_HEADERS)
    echoed = names[len(ALLOWED_HEADERS) :]
    assert echoed[0] == "mcp-param-a" and len(echoed) == 64
    assert not any(n in echoed for n in ("x-other", "mcp-param-", "mcp-param-b c"))


def test_without_an_origin_a_preflight_gets_only_allow() -> None:
    assert preflight_headers(None, "message", "authorization") == [(b"allow", b"POST, OPTIONS")]


def test_repeated_request_headers_are_joined() -> None:
    scope = {
        "headers": [(b"access-control-request-headers", b"a"), (b"Access-Control-Request-Headers", b"b")]
    }
    assert requested_headers(scope) == "a,b"


@pytest.mark.anyio
async def test_the_wrapper_adds_the_headers_to_both_response_paths() -> None:
    sent: list[Any] = []
    written: list[Any] = []

    class Inner:
        async def __call__(self, message: Any) -> None:
            sent.append(message)

        def respond_now(self, status: int, headers: Any, body: bytes) -> bool:
            written.append(headers)
            return True

    wrapped = CorsSend(Inner(), "https://a.example")
    await wrapped({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    assert wrapped.respond_now(200, [(b"y", b"2")], b"{}")
    for headers in (sent[0]["headers"], written[0]):
        assert (b"access-control-allow-origin", b"https://a.example") in headers
    plain = CorsSend(lambda message: None, "https://a.example")  # type: ignore[arg-type, return-value]
    assert plain.respond_now(200, [], b"") is False  # a server without the early path: send is used
