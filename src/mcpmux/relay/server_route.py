"""The per-server endpoint: relays each client session to the server's shared or private upstream session."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from ..config.model import ProxyConfig
from ..core.naming import published_name, server_labels
from ..core.pins import PINS_CHANGED
from ..core.redact import Redactor
from ..core.toolfilter import NameFilter, scope_allows
from ..errors import UpstreamError
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INVALID_PARAMS,
    Message,
    error_response,
    result_response,
)
from ..protocol.cache import discover_hint, recarry
from ..upstream.runtime import ServerRuntime
from ..upstream.session import UpstreamSession
from . import subscriptions
from .client import ClientSession
from .dispatch import Dispatch
from .pinned import pin_refusal, pin_shows
from .route import (
    Route,
    admitted_tokens,
    as_unknown_tool,
    find_in_flight,
    list_changed,
    negotiate_version,
    unknown_tool,
)
from .toolsearch import META_NAMES, Entry, ToolSearch, search_instructions

log = logging.getLogger("mcpmux.relay")

LISTABLE = ("tools", "prompts", "resources")


class ServerRoute(Route):
    """`{base}/{name}/mcp` and `/sse`: one upstream server, its tool filter and overrides applied."""

    def __init__(self, runtime: ServerRuntime, proxy: ProxyConfig) -> None:
        super().__init__(runtime.name, runtime.options.auth_tokens)
        self.tokens = admitted_tokens(runtime.options.auth_tokens, (runtime.name,))
        self.runtime = runtime
        self.dispatch = Dispatch.of(runtime)  # its client sessions and what reaches them
        self.proxy = proxy
        self.redact = Redactor.for_config(proxy)  # the last error goes to clients: no secrets in it
        self.log_enabled = runtime.options.log_enabled
        self.isolated = runtime.options.session_mode == "isolated"
        self.idle_timeout_seconds = runtime.options.idle_timeout_seconds or None
        self.max_sessions = runtime.options.max_sessions
        self.max_session_queue = runtime.options.max_session_queue
        self.filter = NameFilter(runtime.options.tool_filter)
        self.filtered = runtime.options.tool_filter is not None
        self._listed: tuple[list[dict[str, Any]], frozenset[Any]] | None = None  # the tools, their names
        self.overrides = runtime.options.tool_overrides
        self.renamed = {o.name: orig for orig, o in self.overrides.items() if o.name}
        # A token scope's toolFilter matches `<server>__<tool>` here too, as on the merged endpoint.
        self.label = server_labels([runtime.name])[runtime.name]
        self.separator = proxy.merged.separator
        self.search = ToolSearch() if runtime.options.catalog == "search" else None
        runtime.catalog_listeners.append(self._catalog_changed)
        self._local = {
            "initialize": self._initialize,
            "ping": self.answer_ping,
            "logging/setLevel": self._set_level,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
        }
        if self.search is not None:  # the meta-tools instead of the tools
            self._local["tools/list"] = self._search_list
            self._local["tools/call"] = self._search_call

    def _catalog_changed(self, runtime: ServerRuntime, why: str) -> None:
        """After an upstream restart the lists may differ: tell this route's clients (also when pinning
        withholds other tools than before)."""
        if why == PINS_CHANGED:
            for client in list(self.sessions.values()):
                if client.initialized:
                    client.outbox.push(list_changed("tools"))
            return
        if why != "connected" or runtime.restarts == 0:
            return
        for client in list(self.sessions.values()):
            if client.initialized:
                for kind in LISTABLE:
                    client.outbox.push(list_changed(kind))

    def detach_listeners(self) -> None:
        if self._catalog_changed in self.runtime.catalog_listeners:
            self.runtime.catalog_listeners.remove(self._catalog_changed)

    def unavailable_reason(self) -> str | None:
        if self.runtime.available:  # connected, or lazyStart waiting for this first use
            return None
        error = f": {self.runtime.last_error}" if self.runtime.last_error else ""
        return self.redact(f"server {self.name!r} is not connected ({self.runtime.state}{error})")

    # -- requests ----------------------------------------------------------------------------

    def handle_request(
        self, client: ClientSession, msg: Message, exchange: Any, *, relay: bool = False
    ) -> Awaitable[Message]:
        """Answer locally (`_local`, which holds the meta-tools in search mode), or send upstream with
        tool calls and lists checked and presented as filters, overrides, scopes and pinning require
        (`relay`: upstream at once, for call_tool's inner call).

        Not a coroutine itself: a request for a ready shared session that goes up and comes back as it is
        (nothing to present, refuse or replay) is the upstream request, for the caller to await (no frame
        of this route on each of its resumes); anything else is `_relay`.
        """
        method = msg["method"]
        local = None if relay else self._local.get(method)
        if local is not None:
            return local(client, msg, exchange)
        upstream = self.dispatch.direct(method)
        if upstream is None:
            return self._relay(client, msg, exchange)
        if method == "tools/call" and (self._shapes_tools(client, self.renamed) or self._unlisted_tool(msg)):
            return self._relay(client, msg, exchange)
        return upstream.request(msg, exchange, self.runtime.request_timeout_seconds, early=True)

    async def _relay(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        """A request sent upstream (opening or waiting for the session), tools shaped, a safe one replayed."""
        method = msg["method"]
        upstream = await self.dispatch.session_for(client)
        if upstream is None:
            return self._unavailable(msg["id"])
        asked, unlisted = None, False  # a tool call's name as the client used it (before any rename)
        if method == "tools/call":
            asked = (msg.get("params") or {}).get("name")
            refused = self._prepare_tool_call(client, msg)
            if refused is not None:
                return refused
            unlisted = self._unlisted_tool(msg)
        present = method == "tools/list" and self._shapes_tools(client, self.overrides)
        timeout = self.runtime.request_timeout_seconds
        response = await upstream.request(msg, exchange, timeout, early=not (present or unlisted))
        if upstream.closed_reason is not None:  # it died under this request: replay it if that is safe
            response = await self.dispatch.replay(client, msg, exchange, response)
        return self._shaped(client, response, present, unlisted, asked)

    def _shapes_tools(self, client: ClientSession, renames: Any) -> bool:
        """Whether filters, `renames` (renamed tools, or any override), the scope or pins shape tools."""
        if self.filtered or renames:
            return True
        if client.scope is not None and client.scope.filters_tools:
            return True
        verdict = self.runtime.pin_verdict
        return verdict is not None and verdict.enforcing

    def _shaped(
        self, client: ClientSession, reply: Message, present: bool, unlisted: bool, asked: Any
    ) -> Message:
        """The answer as this client sees it: tool lists presented, an unlisted tool's error as unknown."""
        if present:
            self._present_tools(client, reply)
        elif unlisted:
            return as_unknown_tool(reply, asked)
        return reply

    def _unlisted_tool(self, msg: Message) -> bool:
        """Whether a tool call's tool is missing from the server's last listing.

        Such a call still goes upstream (the listing may be stale), but an `isError` answer to it is the
        upstream saying "unknown tool" its own way: it becomes the one shape mcpmux uses everywhere.
        """
        name = (msg.get("params") or {}).get("name")
        tools = self.runtime.tools
        if self._listed is None or self._listed[0] is not tools:
            self._listed = (tools, frozenset(t.get("name") for t in tools))
        return name not in self._listed[1]

    # -- catalog: search ----------------------------------------------------------------------------

    async def _search_list(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        return ToolSearch.list_result(msg["id"])

    async def _search_call(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        """A meta-tool's answer, or a real tool's call relayed as usual."""
        if self.search is None or (msg.get("params") or {}).get("name") not in META_NAMES:
            return await self.handle_request(client, msg, exchange, relay=True)
        index = self.search.index(self.runtime.tools, self._search_entries)  # a reload replaces the list
        return await self.search.answer(
            msg,
            index,
            lambda entry: (
                self._scope_allows(client, entry.name) and pin_shows(self.runtime.pin_verdict, entry.upstream)
            ),
            lambda inner: self.handle_request(client, inner, exchange, relay=True),
        )

    def _search_entries(self) -> list[Entry]:
        """The server's tools as its route lists them (filtered, overrides applied)."""
        entries = []
        for tool in self.runtime.tools:
            name = str(tool.get("name"))
            if self.filter.allows(name):
                override = self.overrides.get(name)
                presented = apply_override(tool, override) if override is not None else tool
                entries.append(Entry(str(presented.get("name")), self.name, tool, presented))
        return entries

    def _scope_allows(self, client: ClientSession, tool: Any) -> bool:
        scope = client.scope
        if scope is None or not scope.filters_tools:
            return True
        return scope_allows(scope, self.name, published_name(self.label, str(tool), self.separator))

    def _prepare_tool_call(self, client: ClientSession, msg: Message) -> Message | None:
        """The answer refusing a tool call, or None to relay it (under the tool's upstream name)."""
        if not self._shapes_tools(client, self.renamed):
            return None
        params = msg.get("params") or {}
        name = params.get("name")
        original = self.renamed.get(name, name)  # type: ignore[arg-type]
        if original != name:
            msg["params"] = {**params, "name": original}
        elif name in self.overrides and self.overrides[name].name:
            return unknown_tool(msg["id"], name)  # only reachable under its new name
        if not self.filter.allows(str(original)) or not self._scope_allows(client, name):
            return unknown_tool(msg["id"], name)
        return pin_refusal(msg["id"], self.runtime.pin_verdict, str(original))

    def _present_tools(self, client: ClientSession, response: Message) -> None:
        result = response.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return
        tools = []
        verdict = self.runtime.pin_verdict
        for tool in result["tools"]:
            if not isinstance(tool, dict) or not self.filter.allows(str(tool.get("name"))):
                continue
            if not pin_shows(verdict, tool):
                continue  # pinning enforces, and this tool is new or changed
            override = self.overrides.get(tool.get("name"))  # type: ignore[arg-type]
            if override is not None:
                tool = apply_override(tool, override)
            if self._scope_allows(client, tool.get("name")):
                tools.append(tool)
        result["tools"] = tools

    def _unavailable(self, request_id: Any) -> Message:
        reason = self.unavailable_reason() or f"server {self.name!r} is not available"
        return error_response(request_id, CONNECTION_CLOSED, reason)

    # -- methods answered by the proxy -----------------------------------------------------------

    async def _initialize(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        self.remember_initialize(client, params)
        shared = await self.runtime.primary()  # starts a lazyStart server
        if shared is None or shared.init_result is None:
            return self._unavailable(msg["id"])
        upstream_init = shared.init_result
        if self.isolated:
            client.init_params = params
            session = await self.dispatch.session_for(client)
            if session is None or session.init_result is None:
                return self._unavailable(msg["id"])
            upstream_init = session.init_result
        else:
            self.dispatch.attach(client)
        version = negotiate_version(params.get("protocolVersion"), upstream_init.get("protocolVersion"))
        client.protocol_version = version
        return result_response(msg["id"], self.initialize_result(upstream_init, version, client.modern))

    def initialize_result(self, upstream_init: dict[str, Any], version: str, modern: bool) -> dict[str, Any]:
        caps = dict(upstream_init.get("capabilities") or {})
        for kind in LISTABLE:  # the proxy sends list_changed itself when an upstream restarts
            if isinstance(caps.get(kind), dict):
                caps[kind] = {**caps[kind], "listChanged": True}
        info = upstream_init.get("serverInfo")
        server_info = {
            **(info if isinstance(info, dict) else {}),
            "name": self.name.partition("/")[0],  # never the token of a `name/<token>` key
            "version": self.proxy.version,
        }
        # everything else the upstream said (instructions, _meta, newer fields) goes to the client as is
        result = {
            **upstream_init,
            "protocolVersion": version,
            "capabilities": caps,
            "serverInfo": server_info,
        }
        if self.search is not None:
            result["instructions"] = search_instructions(upstream_init.get("instructions"))
        recarry(result, discover_hint(upstream_init) if modern else None)  # (a 2026 carrier's discover)
        return result

    async def _set_level(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        refused = self.set_log_level(client, msg)
        if refused is not None:
            return refused
        upstream = await self.dispatch.session_for(client)
        if upstream is None:
            return self._unavailable(msg["id"])
        if self.isolated:
            return await upstream.request(msg, exchange, self.runtime.request_timeout_seconds)
        # shared upstream: ask it for the most verbose level any client wants; filter per client
        wanted = self.dispatch.shared_log_level(client.log_level)
        response = await upstream.request(
            {**msg, "params": {**(msg.get("params") or {}), "level": wanted}},
            exchange,
            self.runtime.request_timeout_seconds,
        )
        return response

    async def _subscribe(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        uri = (msg.get("params") or {}).get("uri")
        if not isinstance(uri, str):
            return error_response(msg["id"], INVALID_PARAMS, "resources/subscribe needs a string uri")
        upstream = await self.dispatch.session_for(client)
        if upstream is None:
            return self._unavailable(msg["id"])
        if uri in client.subscriptions:
            return result_response(msg["id"], {})
        # Claimed before the upstream answers, so a concurrent subscribe to the same URI is not sent too.
        client.subscriptions.add(uri)
        subscribers = self.dispatch.subscribers
        if not self.isolated and not subscriptions.hold(subscribers, uri):
            return result_response(msg["id"], {})  # subscribed upstream already
        response = await upstream.request(msg, exchange, self.runtime.request_timeout_seconds)
        if "error" in response:
            client.subscriptions.discard(uri)
            if not self.isolated and subscriptions.held(subscribers, uri):
                subscriptions.drop(subscribers, uri)
        return response

    async def _unsubscribe(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        uri = (msg.get("params") or {}).get("uri")
        upstream = await self.dispatch.session_for(client)
        if upstream is None:
            return self._unavailable(msg["id"])
        if uri not in client.subscriptions:
            return result_response(msg["id"], {})
        client.subscriptions.discard(uri)
        if self.isolated:
            return await upstream.request(msg, exchange, self.runtime.request_timeout_seconds)
        return await self._release_subscription(upstream, uri, msg["id"])

    async def _release_subscription(self, upstream: UpstreamSession, uri: Any, request_id: Any) -> Message:
        if not subscriptions.drop(self.dispatch.subscribers, uri):
            return result_response(request_id, {})  # other clients still hold it
        return await upstream.request(
            {"jsonrpc": "2.0", "id": request_id, "method": "resources/unsubscribe", "params": {"uri": uri}},
            None,
            self.runtime.request_timeout_seconds,
        )

    # -- notifications and session end -------------------------------------------------------

    async def handle_notification(self, client: ClientSession, msg: Message) -> None:
        method = msg["method"]
        if method == "notifications/initialized":
            client.initialized = True
            return
        upstream = await self.dispatch.session_for(client)
        if upstream is None:
            return
        if method == "notifications/cancelled":
            params = msg.get("params") or {}
            uid = find_in_flight(upstream, client, params.get("requestId"))
            if uid is not None:
                upstream.cancel(uid, params.get("reason"))
            return
        await upstream.notify(msg)

    async def on_session_closed(self, client: ClientSession) -> None:
        self.dispatch.detach(client)
        if self.isolated:
            return  # closing the client ended its private upstream session
        upstream = self.runtime.session
        for uri in list(client.subscriptions):
            if upstream is not None:
                try:
                    await self._release_subscription(upstream, uri, f"mcpmux-unsub-{client.id}")
                except UpstreamError:
                    pass
        client.subscriptions.clear()


def apply_override(tool: dict[str, Any], override: Any) -> dict[str, Any]:
    tool = dict(tool)
    if override.name:
        tool["name"] = override.name
    if override.description is not None:
        tool["description"] = override.description
    if override.title is not None:
        tool["title"] = override.title
    return tool
