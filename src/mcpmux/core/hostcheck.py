"""DNS-rebinding protection: the `Host` and `Origin` values accepted, derived from addr and baseURL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

__all__ = ["HostPolicy"]

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "[::]"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_PORT = 80
_ANY = "*"
_ANY_PORT = ":*"


def _without_port(value: str) -> str:
    """`host` of `host:port` (also `scheme://host` of an origin); IPv6 brackets are kept."""
    head, sep, tail = value.rpartition(":")
    if sep and tail.isascii() and tail.isdigit():
        return head
    return value


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse_addr(addr: str) -> tuple[str, int]:
    """(host, port) of a Go-style listen address: `:9090`, `[::1]:9090`; empty means port 80."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        host, port = addr.strip(), str(_HTTP_PORT)
    return _bracketed(host.strip("[]").lower()), int(port)


def _host_forms(host: str, port: int, default_port: int) -> set[str]:
    """A Host header names `host:port`, or just `host` when the port is the scheme's default."""
    forms = {f"{host}:{port}"}
    if port == default_port:
        forms.add(host)
    return forms


def _listening_hosts(host: str, port: int) -> set[str]:
    allowed = {f"{loopback}:{port}" for loopback in _LOOPBACK_HOSTS} | set(_LOOPBACK_HOSTS)
    if host not in _WILDCARD_HOSTS:
        allowed |= _host_forms(host, port, _HTTP_PORT)
    return allowed


def _listening_origins(host: str, port: int) -> set[str]:
    if host in _WILDCARD_HOSTS:
        return set()
    return {f"http://{form}" for form in _host_forms(host, port, _HTTP_PORT)}


def _base_url_parts(base_url: str) -> tuple[str, str, int] | None:
    """(scheme, bracketed host, port) of the baseURL, or None when it names no usable host."""
    try:
        parts = urlsplit(base_url.strip())
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if not hostname or default_port is None:
        return None
    return scheme, _bracketed(hostname), port if port is not None else default_port


def _base_url_hosts(parts: tuple[str, str, int] | None) -> set[str]:
    if parts is None:
        return set()
    _, host, port = parts
    return {host, f"{host}:{port}"}


def _base_url_origins(parts: tuple[str, str, int] | None) -> set[str]:
    if parts is None:
        return set()
    scheme, host, port = parts
    return {f"{scheme}://{form}" for form in _host_forms(host, port, _DEFAULT_PORTS[scheme])}


def _loopback_origins() -> set[str]:
    return {f"{scheme}://{host}" for scheme in _DEFAULT_PORTS for host in _LOOPBACK_HOSTS}


def _split_extra(entries: Iterable[str], bare_means_any_port: bool) -> tuple[bool, set[str], set[str]]:
    """(any allowed, exact values, values allowed with any port) of configured extra entries.

    `value:*` allows any port; for hosts, a bare `host` does too.
    """
    exact: set[str] = set()
    any_port: set[str] = set()
    for raw in entries:
        entry = raw.strip().lower().rstrip("/")
        if entry == _ANY:
            return True, set(), set()
        if entry.endswith(_ANY_PORT):
            any_port.add(entry[: -len(_ANY_PORT)])
        elif bare_means_any_port and _without_port(entry) == entry:
            any_port.add(entry)
        elif entry:
            exact.add(entry)
    return False, exact, any_port


class HostPolicy:
    """Which `Host` and `Origin` request headers are accepted; each check is one or two set lookups."""

    __slots__ = (
        "_any_host",
        "_any_origin",
        "_hosts",
        "_hosts_any_port",
        "_origins",
        "_origins_any_port",
        "_same_origin",
    )

    def __init__(
        self,
        addr: str,
        base_url: str,
        extra_hosts: Sequence[str] = (),
        extra_origins: Sequence[str] = (),
        *,
        any_host: bool = False,
    ) -> None:
        """`any_host`: accept every Host, and a browser Origin only when it names that Host (same origin)."""
        host, port = _parse_addr(addr)
        base = _base_url_parts(base_url)
        any_extra_host, hosts, hosts_any_port = _split_extra(extra_hosts, bare_means_any_port=True)
        any_origin, origins, origins_any_port = _split_extra(extra_origins, bare_means_any_port=False)
        self._any_host = any_host or any_extra_host
        self._same_origin = any_host
        self._hosts = frozenset(hosts | _listening_hosts(host, port) | _base_url_hosts(base))
        self._hosts_any_port = frozenset(hosts_any_port)
        self._any_origin = any_origin
        self._origins = frozenset(origins | _listening_origins(host, port) | _base_url_origins(base))
        self._origins_any_port = frozenset(origins_any_port | _loopback_origins())

    def host_allowed(self, host: str | None) -> bool:
        """Whether a `Host` header value is acceptable; an absent one (HTTP/1.0) is."""
        if host is None or self._any_host:
            return True
        host = host.lower()
        if host in self._hosts:
            return True
        return bool(self._hosts_any_port) and _without_port(host) in self._hosts_any_port

    def origin_allowed(self, origin: str | None, host: str | None = None) -> bool:
        """Whether an `Origin` header value is acceptable; an absent one (non-browser clients) is.

        `host` is the request's Host, for the same-origin rule of `any_host` policies.
        """
        if origin is None or self._any_origin:
            return True
        origin = origin.lower()
        if origin in self._origins or _without_port(origin) in self._origins_any_port:
            return True
        return self._same_origin and host is not None and _same_authority(origin, host.lower())


def _same_authority(origin: str, host: str) -> bool:
    """Whether an origin (`scheme://host[:port]`) names the Host header's `host[:port]`."""
    scheme, sep, authority = origin.partition("://")
    default = _DEFAULT_PORTS.get(scheme)
    if not sep or default is None or not authority:
        return False
    return _with_port(authority, default) == _with_port(host, default)


def _with_port(authority: str, default_port: int) -> str:
    return authority if _without_port(authority) != authority else f"{authority}:{default_port}"


def is_loopback_listener(addr: str) -> bool:
    """Whether a Go-style listen address binds loopback only (`127.0.0.1:9090`, `[::1]:9090`)."""
    host, _port = _parse_addr(addr)
    return host in ("localhost", "[::1]") or host.startswith("127.")
