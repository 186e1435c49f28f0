"""`{base}/_status`: the status page (static HTML/CSS/JS from package data) and its JSON API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import orjson

from ..clientconfig import entry_names, route_entries
from ..config.model import TokenScope
from ..core.redact import Redactor, redact_tree
from ..relay.server_route import apply_override
from . import asgi
from .asgi import JSON_TYPE, Receive, RequestHeaders, Scope, Send, send_bytes, send_error
from .operator import Operator, operator_mode, operator_of, require_operator
from .status_page import View, fill
from .telemetry import tool_count

if TYPE_CHECKING:
    from ..config.model import ProxyConfig
    from .state import ProxyState

_PATH_SAFE = "/!$&'()*+,;=:@"
PAGE_HEADERS = [
    (b"cache-control", b"no-store"),  # the page may hold the status (and the caller's token)
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # not no-referrer: its form POST would carry Origin: null
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
]
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")
ASSET_HEADERS = [(b"cache-control", b"no-cache"), *PAGE_HEADERS[1:]]
MAX_FORM_BYTES = 4096


def page_view(proxy: ProxyState, operator: Operator | None, notice: str = "") -> View:
    """What the first view of the page shows this caller: the data for an operator, else nothing."""
    mode = operator_mode(proxy.config)
    if operator is None:
        return View(mode)
    return View(mode, status_snapshot(proxy, operator.token), token=operator.token, notice=notice)


def approve_from_form(proxy: ProxyState, operator: Operator | None, form: dict[str, list[str]]) -> str:
    """Approve what a signed-in operator's form names (`approve=<server>`, `tool=<name>`): what happened.

    Only a caller that presented an operator token may approve (never an open, token-less page)."""
    server = _form_value(form, "approve")
    if not server or operator is None or operator.token is None:
        return ""
    tool = _form_value(form, "tool") or None
    try:
        changes = proxy.pins.approve(server, tool)
    except KeyError:
        return f"Not approved: server {server!r} is not running."
    except OSError as exc:
        return f"Not approved: could not write the lock file ({exc.strerror or exc})."
    what = f"tool {tool!r} of {server!r}" if tool else f"every change of {server!r}"
    return f"Approved {what} ({len(changes)} change(s)); the lock file is updated."


def _form_value(form: dict[str, list[str]], name: str) -> str:
    """The first value of a form field ("" when absent)."""
    return (form.get(name) or [""])[0]


ASSETS = {"status.css": b"text/css; charset=utf-8", "status.js": b"text/javascript; charset=utf-8"}


def _static(name: str) -> bytes:
    return resources.files("mcpmux.web").joinpath("static", name).read_bytes()


def route_urls(base_url: str, name: str) -> dict[str, str]:
    prefix = f"/{quote(name, safe=_PATH_SAFE)}" if name else ""
    return {"mcp": f"{base_url}{prefix}/mcp", "sse": f"{base_url}{prefix}/sse"}


def presented_tools(runtime: Any) -> list[dict[str, Any]]:
    """The server's tools as its own route lists them: filtered, withheld by pinning left out, overrides
    applied."""
    overrides = runtime.options.tool_overrides
    tools = []
    verdict = runtime.pin_verdict
    for tool in runtime.tools:
        name = str(tool.get("name"))
        if not runtime.tool_filter.allows(name) or (verdict is not None and not verdict.shows(tool)):
            continue
        if name in overrides:
            tool = apply_override(tool, overrides[name])
        tools.append(
            {"name": tool.get("name"), "title": tool.get("title"), "description": tool.get("description")}
        )
    return tools


PLACEHOLDER_TOKEN = "<your token>"


def _caller_chooser(proxy: ProxyState, caller: str | None) -> Any:
    """Client configs on operator views carry the caller's own token where a route takes it, else a
    placeholder; never another token."""

    def choose(key: str, _tokens: Sequence[TokenScope], _servers: Sequence[str]) -> str | None:
        route = proxy.routes.get(key)
        if route is None:
            return None
        if caller is not None and route.tokens.match(caller) is not None:
            return caller
        return PLACEHOLDER_TOKEN if route.tokens.enabled else None

    return choose


def status_snapshot(proxy: ProxyState, caller: str | None = None) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data, with every secret but the caller's token redacted."""
    config = proxy.config
    base_url = config.base_url.rstrip("/")
    routes = route_entries(config, token_for=_caller_chooser(proxy, caller))
    names = entry_names(config, list(routes))
    entries = {key: {"mcpServers": {names[key]: entry}} for key, entry in routes.items()}
    redact = Redactor.for_config(config, keep=[caller])
    servers = []
    for name, server in config.servers.items():
        runtime = proxy.runtimes.get(name)
        route = proxy.routes.get(name)
        item: dict[str, Any] = {
            "name": redact.name(name),
            "transport": server.transport,
            "urls": route_urls(base_url, name),
            "clientConfig": entries.get(name),
        }
        if runtime is None:
            item.update(state="disabled", ready=False, uptimeSeconds=0, restarts=0, lastError=None, tools=[])
        else:
            item.update(_runtime_status(runtime))
        item["sessions"] = len(route.sessions) if route is not None else 0
        servers.append(item)
    snapshot = {
        "name": config.name,
        "version": config.version,
        "baseURL": base_url,
        "time": time.time(),
        "servers": servers,
        "merged": _merged(proxy, base_url, entries, names.get(""), redact),
        "groups": [_group(proxy, name, base_url, entries, redact) for name in config.groups],
    }
    return redact_tree(snapshot, redact)  # type: ignore[no-any-return]


def _runtime_status(runtime: Any) -> dict[str, Any]:
    status = runtime.status()
    return {
        "state": status.get("state", runtime.state),
        "era": status.get("era"),  # the MCP era mcpmux speaks to it (None: `protocol: auto`, not probed yet)
        "ready": bool(runtime.ready),
        "uptimeSeconds": status.get("uptime_seconds", 0),
        "restarts": status.get("restarts", runtime.restarts),
        "lastError": status.get("last_error", runtime.last_error),
        "lastStderr": status.get("last_stderr", []),
        "tools": presented_tools(runtime),
        "pinning": status.get("pinning"),  # mode, changes against the lock file, withheld tools
    }


def _merged(
    proxy: ProxyState, base_url: str, entries: dict[str, Any], name: str | None, redact: Redactor
) -> dict[str, Any]:
    config = proxy.config
    route = proxy.routes.get("")
    return {
        "enabled": config.merged.enabled,
        "name": name or "mcp",
        "urls": route_urls(base_url, ""),
        "servers": [redact.name(server) for server in proxy.runtimes],
        "tools": tool_count(route),
        "sessions": len(route.sessions) if route is not None else 0,
        "clientConfig": entries.get(""),
    }


def _group(
    proxy: ProxyState, name: str, base_url: str, entries: dict[str, Any], redact: Redactor
) -> dict[str, Any]:
    group = proxy.config.groups[name]
    route = proxy.routes.get(name)
    return {
        "name": redact.name(name),
        "urls": route_urls(base_url, name),
        "servers": [redact.name(member.server) for member in group.members],
        "tools": tool_count(route),
        "sessions": len(route.sessions) if route is not None else 0,
        "clientConfig": entries.get(name),
    }


def render_page(config: ProxyConfig, base: str, view: View | None = None) -> bytes:
    """The page with its asset and API paths filled in, and the first view the caller may see."""
    cluster = f"{base}/_cluster" if config.cluster is not None else ""  # operators: the replicas, from Redis
    return fill(_static("status.html").decode(), view or View("token"), base, config.name, cluster).encode()


class StatusEndpoints:
    """The page, its two assets and `api` (the only part that needs a token)."""

    def __init__(self, app: Any) -> None:
        self.app = app  # read `app.state` per request: a reload replaces it
        self.assets = {name: _static(name) for name in ASSETS}

    def table(self, base: str) -> dict[str, Any]:
        """Paths under `{base}/_status`; built at start and after every reload."""
        prefix = f"{base}/_status"
        return {
            prefix: self._page(base),
            f"{prefix}/api": self.api,
            **{f"{prefix}/{name}": self._asset(name) for name in ASSETS},
        }

    def _page(self, base: str) -> Any:
        async def serve(scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
            if scope["method"] not in ("GET", "HEAD", "POST"):
                await send_error(send, 405, "Method Not Allowed", [(b"allow", b"GET, POST")])
                return
            proxy = self.app.state
            if scope["method"] == "POST":  # the sign-in form, without JavaScript
                view = await self._signed_in(proxy, receive, send)
                if view is None:
                    return
            else:
                view = page_view(proxy, operator_of(proxy.config, headers))
            if view.snapshot is not None and self.app.cluster is not None:  # the replicas, from Redis
                view = replace(view, cluster=await self.app.cluster.snapshot())
            body = render_page(proxy.config, base, view)
            status = 401 if view.login_error else 200
            await send_bytes(
                send, status, body, [(b"content-type", b"text/html; charset=utf-8"), *PAGE_HEADERS]
            )

        return serve

    @staticmethod
    async def _signed_in(proxy: ProxyState, receive: Receive, send: Send) -> View | None:
        """The view for a POSTed `token=…` form; None when the body was refused (answered here)."""
        try:
            form = parse_qs((await asgi.read_body(receive, MAX_FORM_BYTES)).decode("utf-8", "replace"))
        except asgi.BodyTooLargeError:
            await send_error(send, 413, "Payload Too Large")
            return None
        except asgi.ClientDisconnectedError:
            return None
        token = (form.get("token") or [""])[0].strip()
        operator = operator_of(proxy.config, RequestHeaders([(b"authorization", f"Bearer {token}".encode())]))
        view = page_view(proxy, operator, approve_from_form(proxy, operator, form))
        if operator is None and view.mode == "token":
            return View("token", login_error="That token was not accepted.")
        return view

    def _asset(self, name: str) -> Any:
        async def serve(scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
            await send_bytes(send, 200, self.assets[name], [(b"content-type", ASSETS[name]), *ASSET_HEADERS])

        return serve

    async def api(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        proxy = self.app.state
        operator = await require_operator(proxy.config, headers, send)
        if operator is None:
            return
        body = orjson.dumps(status_snapshot(proxy, operator.token))
        await send_bytes(send, 200, body, [JSON_TYPE, (b"cache-control", b"no-store")])
