"""The merged endpoint's lists: a page from every member, merged cursors, names learnt, entries shown (or
in search mode, the meta-tools instead of the tools)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from ..core.cursor import decode_cursor, encode_cursor
from ..jsonrpc import INVALID_PARAMS, Message, error_response, result_response
from ..protocol.cache import carried_hint, carry_hint, combine
from .client import ClientSession
from .pinned import pin_shows
from .toolsearch import META_NAMES, Entry, ToolSearch

if TYPE_CHECKING:
    from .merged_route import Member, MergedRoute

log = logging.getLogger("mcpmux.relay")

# list method -> (result key, the server capability it needs)
LISTS = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resourceTemplates", "resources"),
}


async def list_page(route: MergedRoute, client: ClientSession, msg: Message) -> Message:
    """One page of every member that has more (first pages, or those a merged cursor names)."""
    key, capability = LISTS[msg["method"]]
    plan = page_plan(route, msg.get("params") or {}, key)
    if plan is None:
        return error_response(msg["id"], INVALID_PARAMS, "Invalid cursor")
    asked = [(m, c) for m, c in plan if m is not None and route._serves(client, m, capability)]
    pages = await fetch_pages(route, client, msg, asked)
    learn(route, pages, key)
    result = merged_page(route, client, key, pages)
    if client.modern:  # (a handshake-era client is told no hints)
        carry_common_hint(result, list(pages.values()), len(asked))
    return result_response(msg["id"], result)


def carry_common_hint(result: dict[str, Any], pages: list[dict[str, Any]], asked: int) -> None:
    """The cache hint of a merged page: only when every member asked answered with one, the most
    cautious of them."""
    hints = [carried_hint(page) for page in pages]
    if hints and len(hints) == asked and None not in hints:
        carry_hint(result, combine(hints))


def page_plan(
    route: MergedRoute, params: dict[str, Any], key: str
) -> list[tuple[Member | None, str | None]] | None:
    """The members to ask and their own cursors: every member's first page, or where a merged cursor
    left off (a member gone since is None); None for a cursor that is not ours."""
    if params.get("cursor") is None:
        return [(member, None) for member in route.members]
    positions = decode_cursor(params["cursor"], key)
    if positions is None:
        return None
    return [(route.by_label.get(label), cursor) for label, cursor in positions]


def merged_page(
    route: MergedRoute, client: ClientSession, key: str, pages: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The members' pages as one, in the members' order, with a merged cursor for those that have more."""
    items: list[Any] = []
    follow: list[tuple[str, str]] = []
    for member in route.members:  # a fixed order, whatever order the answers came in
        page = pages.get(member.label)
        if page is None:
            continue
        items += present(route, client, member, key, page.get(key))
        if isinstance(page.get("nextCursor"), str):
            follow.append((member.label, page["nextCursor"]))
    result: dict[str, Any] = {key: items}
    if follow:
        result["nextCursor"] = encode_cursor(key, follow)
    return result


async def fetch_pages(
    route: MergedRoute, client: ClientSession, msg: Message, plan: list[tuple[Member, str | None]]
) -> dict[str, dict[str, Any]]:
    pages: dict[str, dict[str, Any]] = {}
    base = {k: v for k, v in (msg.get("params") or {}).items() if k != "cursor"}

    async def fetch(member: Member, cursor: str | None) -> None:
        params = base if cursor is None else {**base, "cursor": cursor}
        response = await route._forward(member, client, {**msg, "params": params}, None)
        if isinstance(response.get("result"), dict):
            pages[member.label] = response["result"]
        else:
            log.info(
                "%s: %s from %s failed: %s",
                route.name or "merged",
                msg["method"],
                member.name,
                response.get("error"),
                extra={"server": member.name},
            )

    if len(plan) == 1:
        await fetch(*plan[0])
        return pages
    async with anyio.create_task_group() as tg:
        for member, cursor in plan:
            tg.start_soon(fetch, member, cursor)
    return pages


def learn(route: MergedRoute, pages: dict[str, dict[str, Any]], key: str) -> None:
    """Add what a live listing shows but the catalog snapshot lacks (rare: right after list_changed)."""
    changed = False
    for label, page in pages.items():
        member = route.by_label[label]
        entries = [e for e in page.get(key) or () if isinstance(e, dict)]
        if key in ("tools", "prompts"):
            changed |= learn_names(route, member, key, entries)
        else:
            changed |= learn_uris(route, member, key, entries)
    if changed:
        route.catalog = route._build_catalog()


def learn_names(route: MergedRoute, member: Member, key: str, entries: list[dict[str, Any]]) -> bool:
    catalog = route.catalog
    shown = catalog.by_label[member.label]
    names = [str(e.get("name")) for e in entries]
    if key == "tools":
        new = {n for n in names if not catalog.knows_tool(member.name, n) and shown.shows(n)}
    else:
        new = {n for n in names if not catalog.knows_prompt(member.name, n)}
    if new:
        extra = route._extra.setdefault(member.name, (set(), set()))
        extra[0 if key == "tools" else 1].update(new)
    return bool(new)


def learn_uris(route: MergedRoute, member: Member, key: str, entries: list[dict[str, Any]]) -> bool:
    runtime, template = member.runtime, key == "resourceTemplates"
    field = "uriTemplate" if template else "uri"
    known = runtime.template_prefixes if template else runtime.resource_uris
    before = len(known)
    for entry in entries:
        runtime.note_resource(entry.get(field), template=template)
    return len(known) != before


def present(route: MergedRoute, client: ClientSession, member: Member, key: str, entries: Any) -> list[Any]:
    """A member's entries as the client sees them here: namespaced, scoped, pinned."""
    if not isinstance(entries, list):
        return []
    show = presenter(route, client, member, key)
    out: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict):
            shown = show(entry)
            if shown is not None:
                out.append(shown)
    return out


def presenter(
    route: MergedRoute, client: ClientSession, member: Member, key: str
) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """How one entry of a `key` list is shown (None: not shown to this client)."""
    catalog, server = route.catalog, member.name
    if key == "tools":
        access, verdict = route.access(client), member.runtime.pin_verdict

        def tool(entry: dict[str, Any]) -> dict[str, Any] | None:
            target = catalog.tool_by_pair.get((server, str(entry.get("name"))))
            if target is None or not access.allows(server, target.published):
                return None  # filtered out
            if not pin_shows(verdict, entry):
                return None  # pinning enforces, and this tool is new or changed
            return target.present(entry)

        return tool
    if key == "prompts":

        def prompt(entry: dict[str, Any]) -> dict[str, Any] | None:
            published = catalog.prompt_by_pair.get((server, str(entry.get("name"))))
            return None if published is None else {**entry, "name": published}

        return prompt
    own = catalog.by_label[member.label]
    if key == "resources":
        return lambda entry: relabel(entry, "uri", catalog.publish_uri, own)
    return lambda entry: relabel(entry, "uriTemplate", catalog.publish_template, own)


def relabel(entry: dict[str, Any], field: str, publish: Any, member: Any) -> dict[str, Any]:
    value = entry.get(field)
    if not isinstance(value, str):
        return entry
    published = publish(member, value)
    return entry if published == value else {**entry, field: published}


# -- catalog: search (the meta-tools instead of the tools) ---------------------------------------


async def search_list(client: ClientSession, msg: Message, exchange: Any) -> Message:
    """`tools/list` in search mode: the meta-tools."""
    return ToolSearch.list_result(msg["id"])


async def search_call(route: MergedRoute, client: ClientSession, msg: Message, exchange: Any) -> Message:
    """`tools/call` in search mode: a meta-tool answered here, any other tool called as usual."""
    if route.search is None or (msg.get("params") or {}).get("name") not in META_NAMES:
        return await route._call_tool(client, msg, exchange)
    index = route.search.index(route.catalog, partial(search_entries, route))  # swapped on change
    return await route.search.answer(
        msg,
        index,
        lambda entry: may_use(route, client, entry),
        lambda inner: route._call_tool(client, inner, exchange),
    )


def search_entries(route: MergedRoute) -> list[Entry]:
    """Every published tool whose definition the snapshot has, as the lists present it."""
    catalog, entries = route.catalog, []
    for member in route.members:
        for tool in member.runtime.tools:
            target = catalog.tool_by_pair.get((member.name, str(tool.get("name"))))
            if target is not None:
                entries.append(Entry(target.published, member, tool, target.present(tool)))
    return entries


def may_use(route: MergedRoute, client: ClientSession, entry: Entry) -> bool:
    """Whether a search may show the tool: its member serves the client, the token reaches it, and
    pinning does not withhold it."""
    member: Member = entry.owner
    return (
        route._serves(client, member)
        and route.access(client).allows(member.name, entry.name)
        and pin_shows(member.runtime.pin_verdict, entry.upstream)
    )
