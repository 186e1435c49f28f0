"""Unit tests of core/hostcheck.py: the Host and Origin matrix for DNS-rebinding protection."""

from __future__ import annotations

import pytest

from mcpmux.core.hostcheck import HostPolicy, is_loopback_listener

LOCAL = HostPolicy(":9090", "http://localhost:9090", (), ())


@pytest.mark.parametrize(
    "host",
    [
        None,
        "localhost",
        "localhost:9090",
        "127.0.0.1",
        "127.0.0.1:9090",
        "[::1]",
        "[::1]:9090",
        "LOCALHOST:9090",
        "LocalHost",
    ],
)
def test_loopback_hosts_on_the_listening_port_are_allowed(host: str | None) -> None:
    assert LOCAL.host_allowed(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "evil.com",
        "evil.com:9090",
        "localhost:9091",
        "localhost:",
        "127.0.0.1:80",
        "[::1]:8080",
        "::1",
        "localhost.evil.com",
        "0.0.0.0:9090",
        "192.168.1.5:9090",
    ],
)
def test_other_hosts_are_refused(host: str) -> None:
    assert not LOCAL.host_allowed(host)


@pytest.mark.parametrize(
    ("base_url", "allowed", "refused"),
    [
        (
            "https://mcp.example.com",
            ["mcp.example.com", "mcp.example.com:443", "MCP.Example.COM"],
            ["mcp.example.com:80", "mcp.example.com:9090", "example.com"],
        ),
        (
            "http://mcp.example.com/prefix",
            ["mcp.example.com", "mcp.example.com:80"],
            ["mcp.example.com:443"],
        ),
        (
            "https://mcp.example.com:8443/x",
            ["mcp.example.com:8443", "mcp.example.com"],
            ["mcp.example.com:443"],
        ),
        ("http://[2001:db8::1]:9090", ["[2001:db8::1]:9090", "[2001:db8::1]"], ["[2001:db8::1]:80"]),
        ("http://Proxy.Internal:9090", ["proxy.internal:9090"], ["proxy.internal:9091"]),
    ],
)
def test_the_base_url_host_is_allowed_with_and_without_its_port(
    base_url: str, allowed: list[str], refused: list[str]
) -> None:
    policy = HostPolicy(":9090", base_url, (), ())
    for host in allowed:
        assert policy.host_allowed(host), host
    for host in refused:
        assert not policy.host_allowed(host), host


@pytest.mark.parametrize(
    "base_url", ["", "/prefix", "not a url", "ftp://files.example.com", "http://h:99999"]
)
def test_a_base_url_without_a_usable_host_adds_nothing(base_url: str) -> None:
    policy = HostPolicy(":9090", base_url, (), ())
    assert policy.host_allowed("localhost:9090")
    assert not policy.host_allowed("files.example.com")
    assert not policy.host_allowed("h")


@pytest.mark.parametrize(
    ("addr", "allowed", "refused"),
    [
        ("", ["localhost", "localhost:80", "127.0.0.1:80"], ["localhost:9090"]),
        (":9090", ["localhost:9090"], ["0.0.0.0:9090", ":9090"]),
        ("0.0.0.0:9090", ["127.0.0.1:9090"], ["0.0.0.0:9090"]),
        ("[::]:9090", ["[::1]:9090"], ["[::]:9090"]),
        ("127.0.0.1:9090", ["127.0.0.1:9090"], ["127.0.0.1:9091"]),
        ("[::1]:9090", ["[::1]:9090", "localhost:9090"], ["[::1]:80"]),
        ("localhost:9090", ["localhost:9090"], ["localhost:8080"]),
        ("192.168.1.5:9090", ["192.168.1.5:9090"], ["192.168.1.5", "192.168.1.6:9090"]),
        ("192.168.1.5:80", ["192.168.1.5:80", "192.168.1.5"], ["192.168.1.5:9090"]),
        ("[fe80::2]:9090", ["[fe80::2]:9090", "[FE80::2]:9090"], ["fe80::2:9090"]),
        ("Box.LAN:9090", ["box.lan:9090"], ["box.lan"]),
    ],
)
def test_the_listen_address_decides_the_port_and_any_concrete_host(
    addr: str, allowed: list[str], refused: list[str]
) -> None:
    policy = HostPolicy(addr, "", (), ())
    for host in allowed:
        assert policy.host_allowed(host), host
    for host in refused:
        assert not policy.host_allowed(host), host


def test_an_extra_host_with_a_port_is_matched_exactly() -> None:
    policy = HostPolicy(":9090", "", ["proxy.lan:8080", "[fd00::5]:443"], ())
    assert policy.host_allowed("proxy.lan:8080")
    assert policy.host_allowed("PROXY.LAN:8080")
    assert policy.host_allowed("[fd00::5]:443")
    assert not policy.host_allowed("proxy.lan")
    assert not policy.host_allowed("proxy.lan:9090")


@pytest.mark.parametrize("entry", ["Proxy.LAN", "proxy.lan:*", " proxy.lan "])
def test_an_extra_host_without_a_port_allows_any_port(entry: str) -> None:
    policy = HostPolicy(":9090", "", [entry], ())
    assert policy.host_allowed("proxy.lan")
    assert policy.host_allowed("proxy.lan:1234")
    assert not policy.host_allowed("other.lan:1234")
    assert not policy.host_allowed("proxy.lan.evil.com")


def test_an_extra_host_star_allows_any_host() -> None:
    policy = HostPolicy(":9090", "", ["a.lan", "*"], ())
    assert policy.host_allowed("anything.example:1")
    assert policy.host_allowed("")


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "http://localhost",
        "http://localhost:9090",
        "http://localhost:6274",
        "https://localhost:3000",
        "http://127.0.0.1:5173",
        "http://[::1]:8080",
        "https://[::1]",
        "HTTP://LOCALHOST:6274",
    ],
)
def test_loopback_origins_on_any_port_are_allowed(origin: str | None) -> None:
    assert LOCAL.origin_allowed(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "",
        "null",
        "http://evil.com",
        "http://localhost.evil.com",
        "http://evil.com:9090",
        "ftp://localhost",
        "localhost:9090",
        "http://localhost:abc",
        "http://[::2]:8080",
        "http://0.0.0.0:9090",
    ],
)
def test_other_origins_are_refused(origin: str) -> None:
    assert not LOCAL.origin_allowed(origin)


@pytest.mark.parametrize(
    ("base_url", "allowed", "refused"),
    [
        (
            "https://mcp.example.com/prefix",
            ["https://mcp.example.com", "https://mcp.example.com:443", "https://MCP.example.com"],
            ["http://mcp.example.com", "https://mcp.example.com:8443", "https://example.com"],
        ),
        (
            "http://mcp.example.com:8080",
            ["http://mcp.example.com:8080"],
            ["http://mcp.example.com", "https://mcp.example.com:8080"],
        ),
        ("http://[2001:db8::1]:9090", ["http://[2001:db8::1]:9090"], ["http://[2001:db8::1]"]),
    ],
)
def test_the_base_url_origin_is_allowed(base_url: str, allowed: list[str], refused: list[str]) -> None:
    policy = HostPolicy(":9090", base_url, (), ())
    for origin in allowed:
        assert policy.origin_allowed(origin), origin
    for origin in refused:
        assert not policy.origin_allowed(origin), origin


def test_a_concrete_listen_host_is_an_allowed_origin_for_the_proxys_own_pages() -> None:
    policy = HostPolicy("192.168.1.5:9090", "", (), ())
    assert policy.origin_allowed("http://192.168.1.5:9090")
    assert not policy.origin_allowed("http://192.168.1.5:9091")
    assert not HostPolicy(":9090", "", (), ()).origin_allowed("http://192.168.1.5:9090")


def test_extra_origins_are_matched_exactly_or_with_any_port() -> None:
    policy = HostPolicy(":9090", "", (), ["https://app.example.com/", "http://tools.lan:*", "null"])
    assert policy.origin_allowed("https://app.example.com")
    assert policy.origin_allowed("HTTPS://APP.EXAMPLE.COM")
    assert not policy.origin_allowed("https://app.example.com:8443")
    assert policy.origin_allowed("http://tools.lan")
    assert policy.origin_allowed("http://tools.lan:8000")
    assert not policy.origin_allowed("https://tools.lan:8000")
    assert policy.origin_allowed("null")


def test_an_extra_origin_star_allows_any_origin() -> None:
    policy = HostPolicy(":9090", "", (), ["*"])
    assert policy.origin_allowed("https://anything.example")
    assert policy.origin_allowed("null")


def test_extra_origins_do_not_widen_hosts_and_extra_hosts_do_not_widen_origins() -> None:
    policy = HostPolicy(":9090", "", ["a.lan"], ["http://b.lan"])
    assert not policy.host_allowed("b.lan")
    assert not policy.origin_allowed("http://a.lan")


def test_an_any_host_policy_takes_every_host_and_only_same_origin_browser_origins() -> None:
    policy = HostPolicy(":9090", "http://127.0.0.1:9090", (), ("https://ui.example",), any_host=True)
    assert policy.host_allowed("myserver.lan:9090") and policy.host_allowed("10.0.0.7:9090")
    assert policy.origin_allowed("http://myserver.lan:9090", "myserver.lan:9090")
    assert policy.origin_allowed("http://myserver.lan", "myserver.lan:80")
    assert policy.origin_allowed("https://myserver.lan", "MyServer.lan")
    assert policy.origin_allowed("https://ui.example", "myserver.lan:9090")  # configured
    assert policy.origin_allowed(None, "myserver.lan:9090")  # not a browser
    for origin in (
        "http://evil.example",
        "http://myserver.lan:8080",
        "null",
        "http://myserver.lan.evil.example:9090",
    ):
        assert not policy.origin_allowed(origin, "myserver.lan:9090"), origin


def test_a_strict_policy_ignores_the_host_for_origins() -> None:
    assert not LOCAL.origin_allowed("http://evil.example", "evil.example")


@pytest.mark.parametrize(
    ("addr", "loopback"),
    [
        ("127.0.0.1:9090", True),
        ("[::1]:9090", True),
        ("localhost:80", True),
        (":9090", False),
        ("0.0.0.0:1", False),
    ],
)
def test_loopback_listeners_are_recognised(addr: str, loopback: bool) -> None:
    assert is_loopback_listener(addr) is loopback
