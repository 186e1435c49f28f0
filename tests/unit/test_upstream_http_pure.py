"""Pure parts of the upstream HTTP client: proxy routes from env vars, SSE bounds, header values."""

from __future__ import annotations

import pytest

from mcpmux.upstream.http_connect import ConnectError, route_for
from mcpmux.upstream.http_post import header_text
from mcpmux.upstream.sse_events import EventTooLarge, SseParser


def test_no_proxy_env_means_direct_with_default_ports() -> None:
    route = route_for("https://api.example.com/mcp", {})
    assert (route.scheme, route.host, route.port, route.proxy_host) == ("https", "api.example.com", 443, None)
    assert route.authority == "api.example.com" and route.tls and not route.forward


def test_http_proxy_is_a_forward_proxy_and_https_proxy_a_tunnel_with_basic_auth_from_user_info() -> None:
    env = {"HTTP_PROXY": "http://p.local:3128", "https_proxy": "http://u%40x:pw@t.local:8080"}
    plain = route_for("http://a.test:8000/mcp", env)
    assert (plain.proxy_host, plain.proxy_port, plain.forward) == ("p.local", 3128, True)
    secure = route_for("https://a.test/mcp", env)
    assert (secure.proxy_host, secure.proxy_port, secure.forward) == ("t.local", 8080, False)
    assert secure.proxy_auth == "Basic dUB4OnB3"  # base64 of "u@x:pw"


def test_no_proxy_lists_hosts_and_domain_suffixes_that_go_direct() -> None:
    env = {"HTTPS_PROXY": "p.local:3128", "NO_PROXY": "internal.test,.corp.test"}
    assert route_for("https://internal.test/mcp", env).proxy_host is None
    assert route_for("https://a.corp.test/mcp", env).proxy_host is None
    assert route_for("https://public.test/mcp", env).proxy_host == "p.local"


def test_an_unsupported_scheme_is_a_clear_error() -> None:
    with pytest.raises(ConnectError, match="unsupported URL scheme 'ftp'"):
        route_for("ftp://a.test/x", {})


def test_sse_events_split_across_chunks_and_crlf_lines() -> None:
    parser = SseParser()
    assert parser.feed(b'event: message\r\ndata: {"a"') == []
    assert parser.feed(b":1}\r\nid: 7") == []
    events = parser.feed(b"\r\n\r\ndata: x\n\n")
    assert [(e.event, e.data, e.id) for e in events] == [("message", '{"a":1}', "7"), ("message", "x", "7")]


def test_an_sse_event_past_the_bound_is_an_error_not_unbounded_memory() -> None:
    parser = SseParser(max_bytes=1000)
    with pytest.raises(EventTooLarge):
        for _ in range(20):
            parser.feed(b"x" * 100)  # one line that never ends
    parser = SseParser(max_bytes=1000)
    with pytest.raises(EventTooLarge):
        for _ in range(20):
            parser.feed(b"data: " + b"y" * 100 + b"\n")  # many data lines of one event


def test_a_session_id_header_must_be_visible_ascii() -> None:
    assert header_text(b"abc-123") == "abc-123"
    assert header_text(b"bad\r\nx-injected: 1") is None
    assert header_text(b"") is None and header_text(None) is None
