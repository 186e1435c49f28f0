"""Keep secrets out of what mcpmux shows: URLs' userinfo and query values, tokens, header and env values."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..config.model import ProxyConfig
from .naming import claim_name

__all__ = [
    "REDACTED",
    "Redactor",
    "config_secrets",
    "display_names",
    "redact_running",
    "redact_tree",
    "redact_url",
    "redact_urls",
    "route_display_name",
    "use_redactor",
]

REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter values are not searched for in free text (they would blank common words)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
_TRAILING = ".,;:)]}!?"


def redact_url(url: str) -> str:
    """`url` with its userinfo and every query value replaced by `***` (the query's keys stay)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_pair(pair: str) -> str:
    key, sep, value = pair.partition("=")
    return f"{key}={REDACTED}" if sep and value else pair


def _redact_match(match: re.Match[str]) -> str:
    text = match.group()
    stripped = text.rstrip(_TRAILING)
    return redact_url(stripped) + text[len(stripped) :]


def redact_urls(text: str) -> str:
    """Every URL inside free text (an error message, a log line) with `redact_url` applied."""
    return _URL.sub(_redact_match, text) if "://" in text else text


def route_display_name(name: str) -> str:
    """A server key as shown to others: `fetch/<token>` (the token-in-path trick) -> `fetch/***`."""
    head, sep, _ = name.partition("/")
    return f"{head}/{REDACTED}" if sep else name


def _url_secrets(url: str) -> Iterable[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    values = [pair.partition("=")[2] for pair in parts.query.split("&")] if parts.query else []
    return [userinfo, *userinfo.split(":"), *values, parts.fragment]


def display_names(names: Iterable[str]) -> dict[str, str]:
    """Each route name as shown: `fetch/<token>` -> `fetch/***`, and `fetch/***2`, ... when taken."""
    shown: dict[str, str] = {}
    taken = {name for name in names if "/" not in name}
    for name in names:
        if "/" not in name:
            shown[name] = name
            continue
        shown[name] = claim_name(route_display_name(name), taken, separator="")
    return shown


def config_secrets(config: ProxyConfig) -> set[str]:
    """Every secret value the config holds: tokens, header and env values, URL credentials, path tokens,
    `requestStateKeys`, the cluster secret, OAuth client secrets and keys."""
    scopes = [*config.defaults.auth_tokens, *config.merged.auth_tokens, *config.operator_token_scopes]
    for group in config.groups.values():
        scopes += group.auth_tokens
    found = {scope.token for scope in scopes}
    found.update(key.secret for key in config.request_state_keys)
    found.update(_server_secrets(config))
    found.update(_path_tokens(config))
    found.update(_cluster_secrets(config))
    found.update(_oauth_secrets(config))
    return {secret for secret in found if len(secret) >= MIN_SECRET_LENGTH}


def _server_secrets(config: ProxyConfig) -> Iterable[str]:
    """Each server's own tokens, header and env values, URL credentials."""
    for server in config.servers.values():
        yield from (scope.token for scope in server.options.auth_tokens)
        yield from server.headers.values()
        yield from server.env.values()
        yield from _url_secrets(server.url or "")


def _path_tokens(config: ProxyConfig) -> Iterable[str]:
    """The token of a `name/<token>` route (a server's or a group's), whole and each of its segments."""
    for name in (*config.servers, *config.groups):
        _head, sep, path_token = name.partition("/")
        if sep:
            yield from (path_token, *path_token.split("/"))


def _cluster_secrets(config: ProxyConfig) -> Iterable[str]:
    """The cluster secret and Redis URL credentials."""
    if config.cluster is not None:
        yield config.cluster.secret
        yield from _url_secrets(config.cluster.redis)


def _oauth_secrets(config: ProxyConfig) -> Iterable[str]:
    """OAuth client secrets and private keys (front door introspection, upstream logins)."""
    fronts = [config.defaults.oauth, config.merged.oauth, *(group.oauth for group in config.groups.values())]
    fronts += [server.options.oauth for server in config.servers.values()]
    for front in fronts:
        if front is not None and front.introspection is not None:
            yield front.introspection.client_secret
    for server in config.servers.values():
        if server.oauth is not None:
            yield from (value for value in (server.oauth.client_secret, server.oauth.private_key) if value)


class Redactor:
    """Replaces known secrets (longest first) and URL credentials in free text with `***`.

    A route's path token becomes what `display_names` shows for it (`***`, `***2`, ...), so that two
    routes `fetch/<a>` and `fetch/<b>` stay apart in logs, metrics and `/_readyz`.
    """

    __slots__ = ("_names", "_pattern", "_replacements")

    def __init__(
        self,
        secrets: Iterable[str] = (),
        replacements: dict[str, str] | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        ordered = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._replacements = replacements or {}
        self._names = names or {}

    def __call__(self, text: str) -> str:
        text = redact_urls(text)
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._replacements.get(m.group(), REDACTED), text)

    def name(self, route_name: str) -> str:
        """A server or group name as shown (its path token replaced)."""
        return self._names.get(route_name) or route_display_name(route_name)

    @classmethod
    def for_config(cls, config: ProxyConfig, *, keep: Iterable[str | None] = ()) -> Redactor:
        """Everything secret in `config`, except the values in `keep` (the caller's own token)."""
        names = display_names([*config.servers, *config.groups])
        replacements = {n.partition("/")[2]: s.partition("/")[2] for n, s in names.items() if "/" in n}
        return cls(config_secrets(config) - set(keep), replacements, names)


_RUNNING: dict[str, Redactor] = {}  # "config": the running config's redactor, once the proxy set it


def use_redactor(redactor: Redactor) -> None:
    """Make `redactor` (the running config's) what `redact_running` applies from now on."""
    _RUNNING["config"] = redactor


def redact_running(text: str) -> str:
    """`text` through the running config's redactor (URLs only before a config is running).

    For text made far from the config: log lines, upstream errors that reach clients.
    """
    redactor = _RUNNING.get("config")
    return redactor(text) if redactor is not None else redact_urls(text)


def redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    """A copy of JSON-like data (dicts, lists, strings, numbers) with `redact` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): redact_tree(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item, redact) for item in value]
    return value
