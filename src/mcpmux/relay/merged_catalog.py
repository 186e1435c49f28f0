"""What a merged endpoint publishes (pure): namespaced tool and prompt names, shared URIs, routing back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..config.model import ToolOverride
from ..core.naming import build_name_table
from ..core.toolfilter import NameFilter

__all__ = ["SHARED_URI_SCHEME", "MemberCatalog", "MergedCatalog", "ToolTarget", "build_merged_catalog"]

M = TypeVar("M")

# A URI offered by several servers is published as `mcpmux://<label>/<upstream uri>`, which also works
# for templates: a client expanding `mcpmux://b/test://item/{id}` gets a URI that still names its server.
SHARED_URI_SCHEME = "mcpmux://"
_NO_FILTER = NameFilter(None)


@dataclass(frozen=True, slots=True)
class MemberCatalog(Generic[M]):
    """One server of a merged endpoint as the catalog sees it: its names, filters and overrides.

    `server_filter` is the server's own `toolFilter` (upstream names, as on its own route);
    `member_filter` is the group's filter for it, on the names the server's route presents (after
    `toolOverrides` renames).
    """

    member: M
    server: str
    label: str
    tools: Sequence[str] = ()
    prompts: Sequence[str] = ()
    resources: Iterable[str] = ()
    template_prefixes: Iterable[str] = ()
    server_filter: NameFilter = _NO_FILTER
    member_filter: NameFilter = _NO_FILTER
    overrides: Mapping[str, ToolOverride] = field(default_factory=dict)

    def presented(self, tool: str) -> str:
        override = self.overrides.get(tool)
        return override.name if override is not None and override.name else tool

    def shows(self, tool: str) -> bool:
        """Whether the upstream tool `tool` passes the server's and the group's filters."""
        return self.server_filter.allows(tool) and self.member_filter.allows(self.presented(tool))


@dataclass(frozen=True, slots=True)
class ToolTarget(Generic[M]):
    """A published tool: the member serving it, the upstream's own name, and how it is shown."""

    member: M
    server: str
    upstream: str
    published: str
    override: ToolOverride | None

    def present(self, tool: dict[str, Any]) -> dict[str, Any]:
        """The upstream listing entry as published (name, and the override's description/title)."""
        tool = {**tool, "name": self.published}
        override = self.override
        if override is not None:
            if override.description is not None:
                tool["description"] = override.description
            if override.title is not None:
                tool["title"] = override.title
        return tool


class MergedCatalog(Generic[M]):
    """An immutable snapshot: published name -> target (one dict lookup per call), and URI routing."""

    def __init__(self, members: Sequence[MemberCatalog[M]], separator: str) -> None:
        self.members = tuple(members)
        self.by_label = {m.label: m for m in self.members}
        self._build_tools(separator)
        self._build_prompts(separator)
        self._build_uris()

    def _build_tools(self, separator: str) -> None:
        shown = [(m, t) for m in self.members for t in dict.fromkeys(m.tools) if m.shows(t)]
        table = build_name_table(((m.label, m.presented(t)) for m, t in shown), separator)
        self.tools: dict[str, ToolTarget[M]] = {}
        self.tool_by_pair: dict[tuple[str, str], ToolTarget[M]] = {}
        for m, tool in shown:
            published = table.publish(m.label, m.presented(tool))
            target = ToolTarget(m.member, m.server, tool, published, m.overrides.get(tool))
            self.tools[published] = target
            self.tool_by_pair[m.server, tool] = target

    def _build_prompts(self, separator: str) -> None:
        pairs = [(m, p) for m in self.members for p in dict.fromkeys(m.prompts)]
        table = build_name_table(((m.label, p) for m, p in pairs), separator)
        self.prompts: dict[str, tuple[MemberCatalog[M], str]] = {}
        self.prompt_by_pair: dict[tuple[str, str], str] = {}
        for m, prompt in pairs:
            published = table.publish(m.label, prompt)
            self.prompts[published] = (m, prompt)
            self.prompt_by_pair[m.server, prompt] = published

    def _build_uris(self) -> None:
        owners = _offered_by((m, m.resources) for m in self.members)
        prefixes = _offered_by((m, m.template_prefixes) for m in self.members)
        # The first member (in configuration order) answers a bare URI that several servers offer.
        self.uri_owner = {uri: found[0] for uri, found in owners.items()}
        self.shared_uris = frozenset(uri for uri, found in owners.items() if len(found) > 1)
        self.shared_prefixes = frozenset(p for p, found in prefixes.items() if len(found) > 1)
        self.prefix_owners = sorted(
            ((p, found[0]) for p, found in prefixes.items() if p), key=lambda item: -len(item[0])
        )

    # -- names -----------------------------------------------------------------------------------

    def knows_tool(self, server: str, tool: str) -> bool:
        return (server, tool) in self.tool_by_pair

    def knows_prompt(self, server: str, prompt: str) -> bool:
        return (server, prompt) in self.prompt_by_pair

    # -- URIs ------------------------------------------------------------------------------------

    def publish_uri(self, member: MemberCatalog[M], uri: str) -> str:
        """A resource URI as listed: unchanged unless several servers offer it."""
        if uri in self.shared_uris:
            return f"{SHARED_URI_SCHEME}{member.label}/{uri}"
        return uri

    def publish_template(self, member: MemberCatalog[M], template: str) -> str:
        if template.split("{", 1)[0] in self.shared_prefixes:
            return f"{SHARED_URI_SCHEME}{member.label}/{template}"
        return template

    def resolve_uri(self, uri: str) -> tuple[MemberCatalog[M], str] | None:
        """The member owning a URI (or URI template) a client sent, and the URI to send it."""
        if uri.startswith(SHARED_URI_SCHEME):
            label, slash, upstream = uri[len(SHARED_URI_SCHEME) :].partition("/")
            labelled = self.by_label.get(label)
            if labelled is not None and slash:
                return labelled, upstream
        member = self.uri_owner.get(uri)
        if member is not None:
            return member, uri
        for prefix, owner in self.prefix_owners:  # longest literal prefix first
            if uri.startswith(prefix):
                return owner, uri
        if len(self.members) == 1:
            return self.members[0], uri
        return None


def build_merged_catalog(members: Sequence[MemberCatalog[M]], separator: str) -> MergedCatalog[M]:
    return MergedCatalog(members, separator)


def _offered_by(
    offers: Iterable[tuple[MemberCatalog[M], Iterable[str]]],
) -> dict[str, list[MemberCatalog[M]]]:
    """Each URI (or template prefix) -> the members offering it, in configuration order."""
    found: dict[str, list[MemberCatalog[M]]] = {}
    for member, values in offers:
        for value in set(values):
            found.setdefault(value, []).append(member)
    return found
