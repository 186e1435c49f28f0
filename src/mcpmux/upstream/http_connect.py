"""How an upstream HTTP client reaches its origin: directly, over TLS, or via an env-configured proxy."""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote, urlsplit

from .origin import DEFAULT_PORTS

MAX_PROXY_HEAD_BYTES = 16 * 1024


class ConnectError(OSError):
    """The origin (or the proxy in front of it) could not be reached; the text names which."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a connection goes: the origin, and the proxy it goes through (None: direct)."""

    scheme: str
    host: str
    port: int
    proxy_host: str | None = None
    proxy_port: int = 0
    proxy_auth: str | None = None  # the Proxy-Authorization value, from the proxy URL's user info

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def forward(self) -> bool:
        """Plain HTTP through a proxy: requests use the absolute URL as their target."""
        return self.proxy_host is not None and not self.tls

    @property
    def authority(self) -> str:
        default = DEFAULT_PORTS.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def route_for(url: str, environ: Mapping[str, str] | None = None) -> Route:
    """The route to `url`, honouring HTTP_PROXY / HTTPS_PROXY / NO_PROXY (either case) as curl does."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConnectError(f"unsupported URL scheme {scheme!r} (http or https)")
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[scheme]
    proxies = proxies_from(environ)
    proxy = proxies.get(scheme)
    if not proxy or _bypass(host, proxies):
        return Route(scheme, host, port)
    return _via_proxy(scheme, host, port, proxy)


def _via_proxy(scheme: str, host: str, port: int, proxy: str) -> Route:
    """The route through the proxy at `proxy` (a URL, or host:port), with its credentials if it has any."""
    if "://" not in proxy:
        proxy = "http://" + proxy
    p = urlsplit(proxy)
    auth = None
    if p.username is not None:
        raw = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode()
    return Route(scheme, host, port, p.hostname or "", p.port or 80, auth)


def _bypass(host: str, proxies: dict[str, str]) -> bool:
    """NO_PROXY says `host` goes direct (urllib's rules: suffixes, `*`, host:port)."""
    check: Callable[[str, dict[str, str]], bool] = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009
    return check(host, proxies)


def proxies_from(environ: Mapping[str, str] | None) -> dict[str, str]:
    if environ is None:
        return urllib.request.getproxies_environment()
    found: dict[str, str] = {}
    for name, value in environ.items():  # lower case wins, as in urllib
        lower = name.lower()
        if value and lower.endswith("_proxy") and (lower == name or lower[:-6] not in found):
            found[lower[:-6]] = value
    return found


@cache
def default_tls_context() -> ssl.SSLContext:
    """One verifying context for every upstream (system CAs; SSL_CERT_FILE / SSL_CERT_DIR honoured)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


async def open_transport(
    route: Route, factory: Callable[[], asyncio.Protocol], timeout_seconds: float
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """A connected transport to the route's origin (TLS done), within `timeout_seconds`."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await _open(route, factory)
    except TimeoutError:
        raise ConnectError(f"connect timed out after {timeout_seconds:g}s ({where(route)})") from None
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS failed ({where(route)}): {exc.reason or exc}") from None
    except ConnectError:
        raise
    except OSError as exc:
        raise ConnectError(f"cannot connect ({where(route)}): {exc.strerror or exc}") from None


def where(route: Route) -> str:
    target = f"{route.scheme}://{route.authority}"
    return f"{target} via proxy {route.proxy_host}:{route.proxy_port}" if route.proxy_host else target


async def _open(
    route: Route, factory: Callable[[], asyncio.Protocol]
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    loop = asyncio.get_running_loop()
    if route.proxy_host is None or route.forward:
        host, port = (route.proxy_host or "", route.proxy_port) if route.forward else (route.host, route.port)
        ssl_context = default_tls_context() if route.tls else None
        server_hostname = route.host if route.tls else None
        transport, protocol = await loop.create_connection(
            factory, host, port, ssl=ssl_context, server_hostname=server_hostname
        )
        return transport, protocol
    raw, tunnel = await loop.create_connection(_Tunnel, route.proxy_host, route.proxy_port)
    try:
        await tunnel.open(route)
        protocol = factory()
        tls = await loop.start_tls(raw, protocol, default_tls_context(), server_hostname=route.host)
    except BaseException:
        raw.close()
        raise
    assert tls is not None  # (uvloop's TLS transport is no asyncio.Transport subclass, but acts as one)
    protocol.connection_made(tls)
    return tls, protocol


class _Tunnel(asyncio.Protocol):
    """CONNECT through the proxy: done when it answers 2xx (ConnectError otherwise)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.head += data
        if b"\r\n\r\n" in self.head or len(self.head) > MAX_PROXY_HEAD_BYTES:
            if not self.answered.done():
                self.answered.set_result(self.head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_result(self.head)

    async def open(self, route: Route) -> None:
        assert self.transport is not None
        host = f"[{route.host}]" if ":" in route.host else route.host
        target = f"{host}:{route.port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if route.proxy_auth:
            head += f"Proxy-Authorization: {route.proxy_auth}\r\n"
        self.transport.write((head + "\r\n").encode())
        answer = await self.answered
        parts = answer.split(b" ", 2)
        status = parts[1] if len(parts) > 1 else b""
        if not status.startswith(b"2") or not answer.endswith(b"\r\n\r\n"):
            code = status.decode("ascii", "replace") or "nothing"
            raise ConnectError(f"the proxy answered {code} to CONNECT ({where(route)})")
