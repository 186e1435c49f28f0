"""The same-origin rule for upstream HTTP redirects (pure)."""

from __future__ import annotations

from mcpmux.upstream.origin import cross_origin_refusal, same_origin, shown_origin


def test_same_origin_compares_scheme_host_and_port_with_default_ports_filled_in() -> None:
    assert same_origin("http://Example.com/mcp", "http://example.com:80/other?x=1")
    assert same_origin("https://a.test/x", "https://a.test:443/y")
    assert not same_origin("http://a.test/x", "https://a.test/x")
    assert not same_origin("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8001/mcp")
    assert not same_origin("http://a.test/mcp", "http://b.test/mcp")


def test_the_refusal_names_origins_only_never_paths_queries_or_user_info() -> None:
    text = cross_origin_refusal("http://u:pw@a.test/mcp?key=secret", "http://b.test:81/x?token=t")
    assert "http://a.test:80" in text and "http://b.test:81" in text
    for secret in ("secret", "token", "pw", "/mcp"):
        assert secret not in text
    assert shown_origin("https://A.test/p") == "https://a.test:443"
