"""What the merged-endpoint tests share: fixture upstreams that collide, and listings that follow cursors."""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
import mcp_types as types
from relay_kit import RawHttp, raw_http

from harness import fixture_server

PUBLISHED_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_PAGES = 100
# list kind -> (SDK method, result attribute)
LISTINGS = {
    "tools": ("list_tools", "tools"),
    "prompts": ("list_prompts", "prompts"),
    "resources": ("list_resources", "resources"),
    "resourceTemplates": ("list_resource_templates", "resource_templates"),
}


def colliding_server(*extra: str, **options: Any) -> dict[str, Any]:
    """The everything fixture without a tool prefix: two of them collide on every tool and prompt name."""
    entry = fixture_server("", *extra)
    if options:
        entry["options"] = options
    return entry


async def list_pages(session: Any, kind: str) -> list[list[Any]]:
    """Every page of a listing through the SDK client, following nextCursor (at most MAX_PAGES)."""
    method, attribute = LISTINGS[kind]
    pages: list[list[Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        result = await getattr(session, method)(params=params)
        pages.append(list(getattr(result, attribute)))
        cursor = result.next_cursor
        if not cursor:
            return pages
    raise AssertionError(f"{kind}: still a nextCursor after {MAX_PAGES} pages")


async def list_all(session: Any, kind: str) -> list[Any]:
    return [item for page in await list_pages(session, kind) for item in page]


async def names_of(session: Any, kind: str = "tools") -> list[str]:
    return [item.name for item in await list_all(session, kind)]


async def raw_list_all(client: Any, method: str, key: str) -> list[dict[str, Any]]:
    """Every item of a listing through a relay_kit raw client, following nextCursor."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    for _ in range(MAX_PAGES):
        result = await client.result(method, params)
        items += result[key]
        if not result.get("nextCursor"):
            return items
        params = {"cursor": result["nextCursor"]}
    raise AssertionError(f"{method}: still a nextCursor after {MAX_PAGES} pages")


async def raw_tool_names(client: Any) -> set[str]:
    """The names of every tool a relay_kit raw client is listed (all pages)."""
    return {tool["name"] for tool in await raw_list_all(client, "tools/list", "tools")}


async def pid_of(session: Any, tool: str = "whoami") -> int:
    result = await session.call_tool(tool)
    assert not result.is_error, result
    return int(result.structured_content["pid"])


def raw_client(
    url: str, token: str | None = None, *, standalone: bool = False
) -> AbstractAsyncContextManager[RawHttp]:
    """An initialized relay_kit `RawHttp` session that sends `token` (deleted on exit).

    With `standalone`, its GET stream is open and feeds the client's inbox.
    """
    return raw_http(url, standalone=standalone, token=token)


async def auth_status(url: str, token: str | None) -> int:
    """The HTTP status of a bare `ping` POSTed with `token`: 401 when the route refuses the token."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient() as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        return (await http.post(url, json=ping, headers=headers)).status_code
