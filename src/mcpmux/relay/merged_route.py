"""The merged endpoint and groups: many servers behind one session, names namespaced, calls routed back."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from ..config.model import ProxyConfig, TokenScope, ToolFilter
from ..core.naming import NameTable, build_name_table
from ..core.toolfilter import NameFilter, scope_allows
from ..jsonrpc import CONNECTION_CLOSED, INVALID_PARAMS, Message, error_response, result_response
from ..upstream.runtime import ServerRuntime
from ..upstream.session import UpstreamSession
from .client import LOG_RANK, ClientSession
from .route import Route, negotiate_version
from .server_route import apply_override, find_in_flight, list_changed, unknown_tool

log = logging.getLogger("mcpmux.relay")

# list method -> (result key, name field, kind of names)
LISTS = {
    "tools/list": ("tools", "name", "tool"),
    "prompts/list": ("prompts", "name", "prompt"),
    "resources/list": ("resources", "uri", "resource"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate", "resource"),
}
KINDS = ("tools", "prompts", "resources")


@dataclass(frozen=True, slots=True)
class Member:
    """One server of a merged endpoint, with the filter the endpoint adds to the server's own."""

    runtime: ServerRuntime
    filter: NameFilter

    @property
    def name(self) -> str:
        return self.runtime.name


class MergedRoute(Route):
    """`{base}/mcp` (every enabled server) or `{base}/{group}/mcp` (hand-picked servers)."""

    def __init__(self, name: str, members: list[tuple[ServerRuntime, ToolFilter | None]], proxy: ProxyConfig,
                 tokens: tuple[TokenScope, ...], log_enabled: bool, display_name: str) -> None:
        super().__init__(name, tokens)
        self.proxy = proxy
        self.display_name = display_name
        self.log_enabled = log_enabled
        self.separator = proxy.merged.separator
        self.members = [Member(rt, NameFilter(f)) for rt, f in members]
        self.by_name = {m.name: m for m in self.members}
        self.tool_names: NameTable = build_name_table((), self.separator)
        self.prompt_names: NameTable = build_name_table((), self.separator)
        self.epoch = 0
        for member in self.members:
            member.runtime.catalog_listeners.append(self._catalog_changed)
        self._rebuild_names()
        self._local = {
            "initialize": self._initialize,
            "ping": self._ping,
            "logging/setLevel": self._set_level,
            "tools/call": self._call_tool,
            "prompts/get": self._get_prompt,
            "resources/read": self._by_uri,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "completion/complete": self._complete,
        }

    def detach_listeners(self) -> None:
        for member in self.members:
            if self._catalog_changed in member.runtime.catalog_listeners:
                member.runtime.catalog_listeners.remove(self._catalog_changed)

    # -- the catalog -------------------------------------------------------------------------

    def _rebuild_names(self) -> None:
        tools, prompts = [], []
        for member in self.members:
            tools += [(member.name, self._upstream_tool_name(member, t)) for t in member.runtime.tools]
            prompts += [(member.name, str(p.get("name"))) for p in member.runtime.prompts]
        self.tool_names = build_name_table(tools, self.separator)
        self.prompt_names = build_name_table(prompts, self.separator)

    @staticmethod
    def _upstream_tool_name(member: Member, tool: dict[str, Any]) -> str:
        name = str(tool.get("name"))
        override = member.runtime.options.tool_overrides.get(name)
        return override.name if override is not None and override.name else name

    def _catalog_changed(self, runtime: ServerRuntime, why: str) -> None:
        """A member connected, disconnected or changed its lists: rename, and tell every client."""
        self.epoch += 1
        self._rebuild_names()
        for client in list(self.sessions.values()):
            if client.initialized:
                for kind in KINDS:
                    client.outbox.push(list_changed(kind))

    def unavailable_reason(self) -> str | None:
        return None  # the merged endpoint serves whatever members are up

    def _allowed(self, client: ClientSession, member: Member, published: str | None, upstream_name: str | None) -> bool:
        if upstream_name is not None and not (member.filter.allows(upstream_name)
                                              and member.runtime.tool_filter.allows(upstream_name)):
            return False
        return client.scope is None or scope_allows(client.scope, member.name, published)

    def _ready_members(self, client: ClientSession) -> list[Member]:
        return [m for m in self.members if m.runtime.ready and self._allowed(client, m, None, None)]

    # -- requests ----------------------------------------------------------------------------

    async def handle_request(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        method = msg["method"]
        local = self._local.get(method)
        if local is not None:
            return await local(client, msg, exchange)
        if method in LISTS:
            return await self._list(client, msg, exchange)
        return error_response(msg["id"], -32601, f"Method not found: {method} (the merged endpoint cannot route it)")

    async def _forward(self, member: Member, client: ClientSession, msg: Message, exchange: Any) -> Message:
        session = await member.runtime.session_for(client)
        if session is None:
            return error_response(msg["id"], CONNECTION_CLOSED, f"server {member.name!r} is not connected")
        return await session.request(msg, exchange, member.runtime.request_timeout_seconds)

    async def _call_tool(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        published = params.get("name")
        target = self.tool_names.resolve(published) if isinstance(published, str) else None
        member = self.by_name.get(target[0]) if target else None
        if member is None or target is None or not self._allowed(client, member, published, target[1]):
            return unknown_tool(msg["id"], published)
        upstream_name = self._original_tool_name(member, target[1])
        return await self._forward(member, client, {**msg, "params": {**params, "name": upstream_name}}, exchange)

    @staticmethod
    def _original_tool_name(member: Member, presented: str) -> str:
        for original, override in member.runtime.options.tool_overrides.items():
            if override.name == presented:
                return original
        return presented

    async def _get_prompt(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        published = params.get("name")
        target = self.prompt_names.resolve(published) if isinstance(published, str) else None
        member = self.by_name.get(target[0]) if target else None
        if member is None or target is None or not self._allowed(client, member, None, None):
            return error_response(msg["id"], INVALID_PARAMS, f"Unknown prompt: {published}")
        return await self._forward(member, client, {**msg, "params": {**params, "name": target[1]}}, exchange)

    def _owner_of_uri(self, client: ClientSession, uri: Any) -> Member | None:
        if not isinstance(uri, str):
            return None
        candidates = self._ready_members(client)
        for member in candidates:
            if uri in member.runtime.resource_uris:
                return member
        for member in candidates:
            if any(uri.startswith(prefix) for prefix in member.runtime.template_prefixes if prefix):
                return member
        return candidates[0] if len(candidates) == 1 else None

    async def _by_uri(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        uri = (msg.get("params") or {}).get("uri")
        member = self._owner_of_uri(client, uri)
        if member is None:
            return error_response(msg["id"], INVALID_PARAMS, f"Resource not found: {uri}")
        return await self._forward(member, client, msg, exchange)

    async def _complete(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        ref = params.get("ref") or {}
        if ref.get("type") == "ref/prompt":
            target = self.prompt_names.resolve(str(ref.get("name")))
            member = self.by_name.get(target[0]) if target else None
            if member is None or target is None:
                return error_response(msg["id"], INVALID_PARAMS, f"Unknown prompt: {ref.get('name')}")
            fixed = {**params, "ref": {**ref, "name": target[1]}}
            return await self._forward(member, client, {**msg, "params": fixed}, exchange)
        member = self._owner_of_uri(client, ref.get("uri"))
        if member is None:
            return error_response(msg["id"], INVALID_PARAMS, f"Resource not found: {ref.get('uri')}")
        return await self._forward(member, client, msg, exchange)

    async def _subscribe(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        uri = (msg.get("params") or {}).get("uri")
        member = self._owner_of_uri(client, uri)
        if member is None:
            return error_response(msg["id"], INVALID_PARAMS, f"Resource not found: {uri}")
        session = await member.runtime.session_for(client)
        if session is None:
            return error_response(msg["id"], CONNECTION_CLOSED, f"server {member.name!r} is not connected")
        if uri in client.subscriptions:
            return result_response(msg["id"], {})
        counts = member.runtime.subscribers
        if member.runtime.isolated or not counts.get(uri):
            response = await session.request(msg, exchange, member.runtime.request_timeout_seconds)
            if "error" in response:
                return response
        client.subscriptions.add(uri)
        if not member.runtime.isolated:
            counts[uri] = counts.get(uri, 0) + 1
        return result_response(msg["id"], {})

    async def _unsubscribe(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        uri = (msg.get("params") or {}).get("uri")
        member = self._owner_of_uri(client, uri)
        if member is None or uri not in client.subscriptions:
            return result_response(msg["id"], {})
        client.subscriptions.discard(uri)
        await release_subscription(member.runtime, client, uri)
        return result_response(msg["id"], {})

    # -- lists ---------------------------------------------------------------------------------

    async def _list(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        """Fan out to every ready member (first pages, or the pages a merged cursor asks for) and merge."""
        method = msg["method"]
        key, field, kind = LISTS[method]
        params = msg.get("params") or {}
        if "cursor" in params:
            plan = decode_cursor(params["cursor"], self.epoch)
            if plan is None:
                return error_response(msg["id"], INVALID_PARAMS, "Invalid cursor")
        else:
            plan = [(m.name, None) for m in self._ready_members(client)]
        pages: dict[str, dict[str, Any]] = {}

        async def fetch(member: Member, cursor: Any) -> None:
            call = {k: v for k, v in params.items() if k != "cursor"}
            if cursor is not None:
                call["cursor"] = cursor
            response = await self._forward(member, client, {**msg, "params": call}, None)
            if isinstance(response.get("result"), dict):
                pages[member.name] = response["result"]

        async with anyio.create_task_group() as tg:
            for name, cursor in plan:
                member = self.by_name.get(name)
                if member is not None and member.runtime.ready:
                    tg.start_soon(fetch, member, cursor)
        items: list[Any] = []
        follow: list[tuple[str, Any]] = []
        for member in self.members:  # a fixed order, whatever order the answers came in
            page = pages.get(member.name)
            if page is None:
                continue
            items += self._present(client, member, page.get(key) or [], field, kind)
            if page.get("nextCursor"):
                follow.append((member.name, page["nextCursor"]))
        result: dict[str, Any] = {key: items}
        if follow:
            result["nextCursor"] = encode_cursor(follow, self.epoch)
        return result_response(msg["id"], result)

    def _present(self, client: ClientSession, member: Member, entries: list[Any], field: str, kind: str) -> list[Any]:
        out = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            if kind == "tool":
                name = str(entry.get("name"))
                if not member.runtime.tool_filter.allows(name) or not member.filter.allows(name):
                    continue
                override = member.runtime.options.tool_overrides.get(name)
                if override is not None:
                    entry = apply_override(entry, override)
                published = self.tool_names.publish(member.name, str(entry.get("name")))
                if client.scope is not None and not scope_allows(client.scope, member.name, published):
                    continue
                entry = {**entry, "name": published}
            elif kind == "prompt":
                entry = {**entry, "name": self.prompt_names.publish(member.name, str(entry.get("name")))}
            else:
                member.runtime.note_resource(entry.get(field), template=field == "uriTemplate")
            out.append(entry)
        return out

    # -- methods answered here -------------------------------------------------------------------

    async def _initialize(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        params = msg.get("params") or {}
        self.remember_initialize(client, params)
        client.init_params = params
        caps: dict[str, Any] = {}
        instructions = []
        for member in self.members:
            init = member.runtime.session.init_result if member.runtime.session else None
            if not member.runtime.isolated:
                member.runtime.attach(client)
            if not init:
                continue
            merge_capabilities(caps, init.get("capabilities") or {})
            if init.get("instructions"):
                instructions.append(f"## {member.name}\n{init['instructions']}")
        for kind in KINDS:
            caps.setdefault(kind, {})["listChanged"] = True
        version = negotiate_version(params.get("protocolVersion"))
        client.protocol_version = version
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": caps,
            "serverInfo": {"name": self.display_name, "version": self.proxy.version},
        }
        if instructions:
            result["instructions"] = "\n\n".join(instructions)
        return result_response(msg["id"], result)

    async def _ping(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        return self.answer_ping(msg)

    async def _set_level(self, client: ClientSession, msg: Message, exchange: Any) -> Message:
        refused = self.set_log_level(client, msg)
        if refused is not None:
            return refused
        for member in self._ready_members(client):
            level = client.log_level
            if not member.runtime.isolated:
                levels = [c.log_level for c in member.runtime.attached if c.log_level]
                level = min(levels, key=LOG_RANK.__getitem__) if levels else level
            await self._forward(member, client, {**msg, "params": {"level": level}}, None)
        return result_response(msg["id"], {})

    # -- notifications and session end ---------------------------------------------------------

    async def handle_notification(self, client: ClientSession, msg: Message) -> None:
        method = msg["method"]
        if method == "notifications/initialized":
            client.initialized = True
            return
        for member in self._ready_members(client):
            session = await member.runtime.session_for(client)
            if session is None:
                continue
            if method == "notifications/cancelled":
                params = msg.get("params") or {}
                uid = find_in_flight(session, client, params.get("requestId"))
                if uid is not None:
                    session.cancel(uid, params.get("reason"))
            else:
                await session.notify(msg)

    async def on_session_closed(self, client: ClientSession) -> None:
        for member in self.members:
            member.runtime.detach(client)
            for uri in list(client.subscriptions):
                if uri in member.runtime.resource_uris:
                    await release_subscription(member.runtime, client, uri)
        client.subscriptions.clear()


async def release_subscription(runtime: ServerRuntime, client: ClientSession, uri: str) -> None:
    """Unsubscribe upstream when the last shared subscriber of `uri` leaves (or at once, if isolated)."""
    session: UpstreamSession | None
    if runtime.isolated:
        session = client.upstreams.get(runtime.name)
    else:
        left = runtime.subscribers.get(uri, 1) - 1
        if left > 0:
            runtime.subscribers[uri] = left
            return
        runtime.subscribers.pop(uri, None)
        session = runtime.session
    if session is None or session.closed_reason is not None:
        return
    with anyio.move_on_after(runtime.request_timeout_seconds):
        await session.request({"jsonrpc": "2.0", "id": 0, "method": "resources/unsubscribe", "params": {"uri": uri}},
                              None, runtime.request_timeout_seconds)


def merge_capabilities(into: dict[str, Any], caps: dict[str, Any]) -> None:
    """Union of what the members can do (a capability any member has is advertised)."""
    for key, value in caps.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            for sub, flag in value.items():
                into[key][sub] = into[key].get(sub) or flag
        elif key not in into:
            into[key] = dict(value) if isinstance(value, dict) else value


def encode_cursor(follow: list[tuple[str, Any]], epoch: int) -> str:
    raw = orjson.dumps({"e": epoch, "p": follow})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: Any, epoch: int) -> list[tuple[str, Any]] | None:
    """The (server, upstream cursor) pairs a merged cursor continues with; None if it is not ours."""
    if not isinstance(cursor, str):
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        pairs = [(str(name), upstream) for name, upstream in data["p"]]
    except (ValueError, KeyError, TypeError):
        return None
    return pairs
