"""`catalog: search`: a route lists three meta-tools and answers them from a BM25 index of its tools."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..core.bm25 import BM25Index, tokenize
from ..jsonrpc import Message, result_response

SEARCH_TOOL = "search_tools"
DESCRIBE_TOOL = "describe_tool"
CALL_TOOL = "call_tool"
DEFAULT_LIMIT = 8
MAX_LIMIT = 50
MAX_QUERY_CHARS = 2000
DESCRIPTION_CHARS = 300  # search results carry the start of a description; describe_tool has it all
# Field weights, applied by repeating a field's terms: a word in a tool's name says most about it.
NAME_WEIGHT, TITLE_WEIGHT, ARGUMENT_WEIGHT = 3, 2, 2

META_TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH_TOOL,
        "title": "Search tools",
        "description": (
            "Search the tools this server offers by what you want to do. Returns the best matches "
            "(name, title, start of the description). Then use describe_tool for a tool's arguments "
            "and call_tool to run it."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "words describing the task or the tool"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": DESCRIBE_TOOL,
        "title": "Describe a tool",
        "description": "The full definition of one tool (description, input schema) by its exact name.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "the tool's name from search_tools"}},
            "required": ["name"],
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": CALL_TOOL,
        "title": "Call a tool",
        "description": "Call one tool by its exact name with its arguments; returns that tool's result.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "the tool's name from search_tools"},
                "arguments": {"type": "object", "description": "the tool's arguments"},
            },
            "required": ["name"],
        },
    },
]
META_NAMES = frozenset(tool["name"] for tool in META_TOOLS)
SEARCH_INSTRUCTIONS = (
    "Tools are found by search here: call search_tools with what you want to do, describe_tool for a "
    "tool's arguments, and call_tool to run it."
)


def search_instructions(upstream: Any) -> str:
    """The initialize `instructions` of a route in search mode: how to find tools, then the server's own."""
    return (
        f"{SEARCH_INSTRUCTIONS}\n\n{upstream}"
        if isinstance(upstream, str) and upstream
        else SEARCH_INSTRUCTIONS
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One searchable tool: its published name, its server, the upstream's entry and how it is shown."""

    name: str
    owner: Any  # the route's handle on what serves it (a merged member, or the server's name)
    upstream: dict[str, Any]
    presented: dict[str, Any]


def document_terms(tool: dict[str, Any]) -> list[str]:
    """A tool's terms, fields weighted: name, title, description, argument names."""
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    arguments = " ".join(properties) if isinstance(properties, dict) else ""
    title = tool.get("title")
    description = tool.get("description")
    return [
        *tokenize(str(tool.get("name") or "")) * NAME_WEIGHT,
        *(tokenize(title) * TITLE_WEIGHT if isinstance(title, str) else ()),
        *(tokenize(description) if isinstance(description, str) else ()),
        *tokenize(arguments) * ARGUMENT_WEIGHT,
    ]


class CatalogIndex:
    """An immutable index of one catalog snapshot."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self.by_name = {entry.name: entry for entry in self.entries}
        self.bm25 = BM25Index([document_terms(entry.presented) for entry in self.entries])

    def search(self, query: str, limit: int, visible: Callable[[Entry], bool]) -> list[tuple[Entry, float]]:
        found = self.bm25.search(query, limit, lambda doc_id: visible(self.entries[doc_id]))
        return [(self.entries[doc_id], score) for doc_id, score in found]


Visible = Callable[[Entry], bool]
CallTool = Callable[[Message], Awaitable[Message]]


class ToolSearch:
    """A route's search mode: the index of its current snapshot and the answers of the meta-tools.

    `index(key, build)` rebuilds only when `key` (the route's immutable snapshot object) is not the one
    the index was built from, so a catalog change is picked up at the next search.
    """

    def __init__(self) -> None:
        self._key: object = None
        self._index = CatalogIndex(())

    def index(self, key: object, build: Callable[[], Sequence[Entry]]) -> CatalogIndex:
        if key is not self._key:
            self._index, self._key = CatalogIndex(build()), key
        return self._index

    @staticmethod
    def list_result(request_id: Any) -> Message:
        return result_response(request_id, {"tools": META_TOOLS})

    async def answer(self, msg: Message, index: CatalogIndex, visible: Visible, call: CallTool) -> Message:
        """A `tools/call` of a meta-tool (the caller checked the name)."""
        params = msg.get("params") or {}
        arguments = params.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        name = params.get("name")
        if name == SEARCH_TOOL:
            return result_response(msg["id"], search(index, arguments, visible))
        if name == DESCRIBE_TOOL:
            return result_response(msg["id"], describe(index, arguments, visible))
        target, tool_arguments = arguments.get("name"), arguments.get("arguments", {})
        if not isinstance(target, str) or not isinstance(tool_arguments, dict):
            return result_response(
                msg["id"], tool_error('call_tool needs "name" (a string) and "arguments" (an object)')
            )
        inner = {
            k: v for k, v in params.items() if k not in ("name", "arguments")
        }  # _meta: progress, tracing
        return await call({**msg, "params": {**inner, "name": target, "arguments": tool_arguments}})


def search(index: CatalogIndex, arguments: dict[str, Any], visible: Visible) -> dict[str, Any]:
    query, limit = arguments.get("query"), arguments.get("limit", DEFAULT_LIMIT)
    if not isinstance(query, str) or not query.strip():
        return tool_error('search_tools needs "query", a non-empty string')
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        return tool_error(f'search_tools: "limit" must be an integer from 1 to {MAX_LIMIT}')
    found = index.search(query[:MAX_QUERY_CHARS], limit, visible)
    tools = [summary(entry.presented, score) for entry, score in found]
    return tool_result({"tools": tools})


def summary(tool: dict[str, Any], score: float) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.get("name")}
    if isinstance(tool.get("title"), str):
        out["title"] = tool["title"]
    description = tool.get("description")
    if isinstance(description, str):
        out["description"] = description[:DESCRIPTION_CHARS]
    out["score"] = round(score, 3)
    return out


def describe(index: CatalogIndex, arguments: dict[str, Any], visible: Visible) -> dict[str, Any]:
    name = arguments.get("name")
    entry = index.by_name.get(name) if isinstance(name, str) else None
    if entry is None or not visible(entry):
        return tool_error(f"Unknown tool: {name}")
    return tool_result({"tool": entry.presented})


def tool_result(structured: dict[str, Any]) -> dict[str, Any]:
    text = orjson.dumps(structured).decode()
    return {"content": [{"type": "text", "text": text}], "structuredContent": structured}


def tool_error(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}
