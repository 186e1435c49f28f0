"""Which URLs an upstream HTTP connection may be sent to: its own origin only (redirects included)."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in; hosts compare case-insensitively."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme, 0)


def same_origin(a: str, b: str) -> bool:
    return origin_of(a) == origin_of(b)


def shown_origin(url: str) -> str:
    """An origin safe for logs and errors: no path, no query (URL keys), no user info."""
    scheme, host, port = origin_of(url)
    return f"{scheme}://{host}:{port}"


def cross_origin_refusal(url: str, target: str) -> str:
    """The error text for a redirect from `url` to another origin (None-free, secret-free)."""
    return (
        f"refused to follow a redirect from {shown_origin(url)} to another origin ({shown_origin(target)}):"
        " configured headers and bodies are only sent to the server's own origin"
    )
