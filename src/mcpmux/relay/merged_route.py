"""The merged endpoint and groups: many servers behind one session, names namespaced, calls routed back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..config.model import ProxyConfig, TokenScope, ToolFilter
from ..core.access import Access, AccessTable
from ..core.naming import server_labels
from ..core.toolfilter import NameFilter
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Message,
    error_response,
    result_response,
)
from ..protocol.cache import Hint, carry_hint, combine, discover_hint
from ..protocol.constants import LIST_CHANGED, RESOURCE_NOT_FOUND
from ..upstream.runtime import ServerRuntime
from . import merged_resources
from .client import ClientSession
from .dispatch import Dispatch
from .merged_catalog import MemberCatalog, MergedCatalog
from .merged_lists import LISTS, list_page, search_call, search_list
from .pinned import pin_refusal
from .route import Route, answered, find_in_flight, list_changed, negotiate_version, unknown_tool
from .toolsearch import SEARCH_INSTRUCTIONS, ToolSearch

log = logging.getLogger("mcpmux.relay")

KINDS = ("tools", "prompts", "resources")
# A method the route answers itself (or relays itself): (client, request, exchange) -> response.
LocalMethod = Callable[[ClientSession, Message, Any], Awaitable[Message]]


@dataclass(frozen=True, slots=True, eq=False)
class Member:
    """One server of a merged endpoint: its runtime, the filter the endpoint adds, its namespace."""

    runtime: ServerRuntime
    filter: NameFilter
    label: str

    @property
    def name(self) -> str:
        return self.runtime.name

    @property
    def dispatch(self) -> Dispatch:
        """The member's client sessions and what reaches them (shared with its own route)."""
        return Dispatch.of(self.runtime)


class MergedRoute(Route):
    """`{base}/mcp` (every enabled server) or `{base}/{group}/mcp` (hand-picked servers)."""

    def __init__(
        self,
        name: str,
        members: list[tuple[ServerRuntime, ToolFilter | None]],
        proxy: ProxyConfig,
        tokens: tuple[TokenScope, ...],
        log_enabled: bool,
        display_name: str,
        catalog_mode: str = "full",
    ) -> None:
        super().__init__(name, ())
        self.display_name = display_name
        self.log_enabled = log_enabled
        # Names seen in live listings before the runtime's snapshot had them: server -> tools, prompts.
        self._extra: dict[str, tuple[set[str], set[str]]] = {}
        # client id -> {(server, upstream uri): the uri the client subscribed with}
        self._subscriptions: dict[str, dict[tuple[str, str], str]] = {}
        self._serve(members, proxy, tokens, None)
        self._local: dict[str, LocalMethod] = {
            "initialize": self._initialize,
            "ping": self.answer_ping,
            "logging/setLevel": self._set_level,
            "tools/call": self._call_tool,
            "prompts/get": self._get_prompt,
            "resources/read": partial(merged_resources.read, self),
            "resources/subscribe": partial(merged_resources.subscribe, self),
            "resources/unsubscribe": partial(merged_resources.unsubscribe, self),
            "completion/complete": self._complete,
        }
        self.search = ToolSearch() if catalog_mode == "search" else None
        if self.search is not None:  # the meta-tools instead of the tools
            self._local["tools/list"] = search_list
            self._local["tools/call"] = partial(search_call, self)

    def detach_listeners(self) -> None:
        for member in self.members:
            if self._catalog_changed in member.runtime.catalog_listeners:
                member.runtime.catalog_listeners.remove(self._catalog_changed)

    def set_members(
        self,
        members: list[tuple[ServerRuntime, ToolFilter | None]],
        proxy: ProxyConfig,
        tokens: tuple[TokenScope, ...],
    ) -> None:
        """After a reload: serve these servers from now on; sessions stay and are told the lists changed."""
        self.detach_listeners()
        self._serve(members, proxy, tokens, self.access_table.by_token)
        for client in [c for c in self.sessions.values() if c.initialized]:
            self._reattach(client)
            for kind in KINDS:
                client.outbox.push(list_changed(kind))

    def _serve(
        self,
        members: list[tuple[ServerRuntime, ToolFilter | None]],
        proxy: ProxyConfig,
        tokens: tuple[TokenScope, ...],
        keep: dict[str, TokenScope] | None,
    ) -> None:
        """Serve these members with these settings (at creation, and after each reload)."""
        labels = server_labels(rt.name for rt, _ in members)
        self.members = [Member(rt, NameFilter(f), labels[rt.name]) for rt, f in members]
        self.by_label = {m.label: m for m in self.members}
        self.access_table = self._access_table(tokens, keep)
        self.tokens = self.access_table.tokens
        self.proxy = proxy
        self.max_sessions = proxy.defaults.max_sessions
        self.max_session_queue = proxy.defaults.max_session_queue
        self.separator = proxy.merged.separator
        self.catalog: MergedCatalog[Member] = self._build_catalog()
        for member in self.members:
            member.runtime.catalog_listeners.append(self._catalog_changed)

    def _reattach(self, client: ClientSession) -> None:
        """After a reload: on the shared members the client's token reaches, and off the others."""
        for member in self.members:
            if member.runtime.isolated:
                continue
            if self._reaches(client, member.name):
                member.dispatch.attach(client)
            else:  # the reload took this server away from the client's token
                member.dispatch.detach(client)

    def unavailable_reason(self) -> str | None:
        return None  # the merged endpoint serves whatever members are up

    # -- the catalog -------------------------------------------------------------------------

    def _build_catalog(self) -> MergedCatalog[Member]:
        return MergedCatalog([self._member_catalog(m) for m in self.members], self.separator)

    def _member_catalog(self, member: Member) -> MemberCatalog[Member]:
        runtime = member.runtime
        tools, prompts = self._extra.get(member.name, ((), ()))
        return MemberCatalog(
            member=member,
            server=member.name,
            label=member.label,
            tools=[*(str(t.get("name")) for t in runtime.tools), *sorted(tools)],
            prompts=[*(str(p.get("name")) for p in runtime.prompts), *sorted(prompts)],
            resources=runtime.resource_uris,
            template_prefixes=runtime.template_prefixes,
            server_filter=runtime.tool_filter,
            member_filter=member.filter,
            overrides=runtime.options.tool_overrides,
        )

    def _catalog_changed(self, runtime: ServerRuntime, why: str) -> None:
        """A member connected, disconnected or refreshed its lists: rename, and tell its clients.

        A member that goes down keeps its names in the catalog (only the lists skip it), so that
        names never move while servers come and go.
        """
        if why != "disconnected":
            self._extra.pop(runtime.name, None)
        self.catalog = self._build_catalog()
        for client in list(self.sessions.values()):
            if client.initialized and self._reaches(client, runtime.name):
                for kind in KINDS:
                    client.outbox.push(list_changed(kind))

    def _access_table(
        self, tokens: tuple[TokenScope, ...], keep: dict[str, TokenScope] | None = None
    ) -> AccessTable:
        members = {m.name: m.runtime.options.auth_tokens for m in self.members}
        oauth = {m.name: m.runtime.options.oauth for m in self.members}
        return AccessTable(tokens, members, keep, oauth)

    def access(self, client: ClientSession) -> Access:
        """What the client's token reaches here: the members its own routes would serve it, scoped."""
        return self.access_table.access(client.scope)

    def _reaches(self, client: ClientSession, server: str) -> bool:
        return self.access_table.access(client.scope).reaches(server)

    def _serves(self, client: ClientSession, member: Member, capability: str | None = None) -> bool:
        """Whether `member` is up, reachable with the client's token, and (if given) has `capability`."""
        session = member.runtime.session
        if session is None or session.closed_reason is not None or not self._reaches(client, member.name):
            return False
        return capability is None or capability in ((session.init_result or {}).get("capabilities") or {})

    # -- requests ----------------------------------------------------------------------------

    def handle_request(self, client: ClientSession, msg: Message, exchange: Any) -> Awaitable[Message]:
        """The method's handler's answer, for the caller to await (no frame of this route in between)."""
        method = msg["method"]
        local = self._local.get(method)
        if local is not None:
            return local(client, msg, exchange)
        if method in LISTS:
            return list_page(self, client, msg)
        return answered(
            error_response(
                msg["id"],
                METHOD_NOT_FOUND,
                f"Method not found: {method} (the merged endpoint cannot route it)",
            )
        )

    def _forward(
        self, member: Member, client: ClientSession, msg: Message, exchange: Any, early: bool = False
    ) -> Awaitable[Message]:
        """Relay to a member (`early`: its answer goes back unchanged, so the face may write it from the
        upstream's reader, the early response path). Not a coroutine: on the member's ready shared session
        a request that is never replayed is that session's request itself, for the caller to await."""
        session = member.dispatch.direct(msg["method"])
        if session is None:
            return self._relay(member, client, msg, exchange, early)
        return session.request(msg, exchange, member.runtime.request_timeout_seconds, early=early)

    async def _relay(
        self, member: Member, client: ClientSession, msg: Message, exchange: Any, early: bool
    ) -> Message:
        """`_forward` by the member's dispatch: its session opened or waited for, a safe request replayed."""
        session = await member.dispatch.session_for(client)
        if session is None:
            return error_response(msg["id"], CONNECTION_CLOSED, f"server {member.label!r} is not connected")
        response = await session.request(msg, exchange, member.runtime.request_timeout_seconds, early=early)
        if session.closed_reason is not None:  # it died under this request: replay it if that is safe
            response = await member.dispatch.replay(client, msg, exchange, response)
        return response

    def _call_tool(self, client: ClientSession, msg: Message, exchange: Any) -> Awaitable[Message]:
        params = msg.get("params")
        name = params.get("name") if params else None
        target = self.catalog.tools.get(name) if type(name) is str else None
        if target is None or not self.access_table.access(client.scope).allows(
            target.server, target.published
        ):
            return answered(unknown_tool(msg["id"], name))
        verdict = target.member.runtime.pin_verdict
        refused = pin_refusal(msg["id"], verdict, target.upstream) if verdict is not None else None
        if refused is not None:
            return answered(refused)
        params["name"] = target.upstream  # type: ignore[index]
        return self._forward(target.member, client, msg, exchange, early=True)

    async def _get_prompt(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        name = params.get("name")
        found = self.catalog.prompts.get(name) if type(name) is str else None
        if found is None or not self._reaches(client, found[0].server):
            return error_response(msg["id"], INVALID_PARAMS, f"Unknown prompt: {name}")
        msg["params"] = {**params, "name": found[1]}
        return await self._forward(found[0].member, client, msg, exchange, early=True)

    async def _complete(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        ref = params.get("ref") or {}
        if ref.get("type") == "ref/prompt":
            name = ref.get("name")
            found = self.catalog.prompts.get(name) if type(name) is str else None
            if found is None or not self._reaches(client, found[0].server):
                return error_response(msg["id"], INVALID_PARAMS, f"Unknown prompt: {ref.get('name')}")
            member, ref = found[0].member, {**ref, "name": found[1]}
        else:
            resolved = merged_resources.resolve_uri(self, client, ref.get("uri"))
            if resolved is None:
                return error_response(
                    msg["id"], RESOURCE_NOT_FOUND, "Resource not found", {"uri": ref.get("uri")}
                )
            member, ref = resolved[0], {**ref, "uri": resolved[1]}
        return await self._forward(
            member, client, {**msg, "params": {**params, "ref": ref}}, exchange, early=True
        )

    # -- methods answered here -------------------------------------------------------------------

    async def _initialize(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        self.remember_initialize(client, params)
        client.init_params = params
        caps, instructions = self._join(client)
        for kind in KINDS:  # members come and go: the lists can always change
            caps[kind] = {**(caps.get(kind) or {}), "listChanged": True}
        version = negotiate_version(params.get("protocolVersion"))
        client.protocol_version = version
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": caps,
            "serverInfo": {"name": self.display_name, "version": self.proxy.version},
        }
        if self.search is not None:
            instructions.insert(0, SEARCH_INSTRUCTIONS)
        if instructions:
            result["instructions"] = "\n\n".join(instructions)
        if client.modern:  # a 2026 client's carrier: how long its server/discover answer holds
            carry_hint(result, self._discover_hint(client))
        return result_response(msg["id"], result)

    def _join(self, client: ClientSession) -> tuple[dict[str, Any], list[str]]:
        """A new client joins every member its token reaches: their capabilities merged, and their
        instructions, each under its label."""
        caps: dict[str, Any] = {}
        instructions = []
        for member in self.members:
            if not self._reaches(client, member.name):
                continue  # nothing of a server the token may not use reaches the client
            if not member.runtime.isolated:
                member.dispatch.attach(client)
            member.runtime.want()  # a lazyStart member starts now and joins with list_changed
            session = member.runtime.session
            init = session.init_result if session is not None else None
            if not init:
                continue
            merge_capabilities(caps, init.get("capabilities") or {})
            if init.get("instructions"):
                instructions.append(f"## {member.label}\n{init['instructions']}")
        return caps, instructions

    def _discover_hint(self, client: ClientSession) -> Hint:
        """The shortest ttl and most private scope of the discover hints of the members the client's
        token reaches; a member not initialized yet (lazyStart, down) makes the answer not cacheable."""
        sessions = [m.runtime.session for m in self.members if self._reaches(client, m.name)]
        return combine([discover_hint(s.init_result if s is not None else None) for s in sessions])

    async def _set_level(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        refused = self.set_log_level(client, msg)
        if refused is not None:
            return refused
        for member in self.members:
            if not self._serves(client, member, "logging"):
                continue
            level = (
                client.log_level
                if member.runtime.isolated
                else member.dispatch.shared_log_level(client.log_level)
            )
            await self._forward(member, client, {**msg, "params": {"level": level}}, None)
        return result_response(msg["id"], {})

    # -- what upstreams and clients send without being asked ------------------------------------

    def on_upstream_notification(self, client: ClientSession, runtime: Any, msg: Message) -> None:
        method = msg["method"]
        if method in LIST_CHANGED and not runtime.isolated:
            return  # the runtime refreshes its catalog, and _catalog_changed tells the clients
        if method == "notifications/resources/updated":
            shown = merged_resources.shown_update(self, client, runtime, msg)
            if shown is None:
                return
            msg = shown
        client.outbox.push(msg)

    async def handle_notification(self, client: ClientSession, msg: Message) -> None:
        method = msg["method"]
        if method == "notifications/initialized":
            client.initialized = True
            return
        for member in self.members:
            session = member.dispatch.open_session(client)
            if session is None or not self._reaches(client, member.name):
                continue
            if method == "notifications/cancelled":
                params = msg.get("params") or {}
                uid = find_in_flight(session, client, params.get("requestId"))
                if uid is not None:  # a list request may be in flight on several members
                    session.cancel(uid, params.get("reason"))
            else:
                await session.notify(msg)

    async def on_session_closed(self, client: ClientSession) -> None:
        for member in self.members:
            member.dispatch.detach(client)
        await merged_resources.release_all(self, client)


def merge_capabilities(into: dict[str, Any], caps: dict[str, Any]) -> None:
    """Union of what the members can do (a capability any member has is advertised)."""
    for key, value in caps.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            for sub, flag in value.items():
                into[key][sub] = into[key].get(sub) or flag
        elif key not in into:
            into[key] = dict(value) if isinstance(value, dict) else value
