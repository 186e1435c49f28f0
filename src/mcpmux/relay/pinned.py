"""What routes do with a server's pinning verdict: hide withheld tools from lists, refuse calls to them."""

from __future__ import annotations

from typing import Any

from ..core.pins import ServerVerdict
from ..jsonrpc import INVALID_PARAMS, Message, error_response


def pin_shows(verdict: ServerVerdict | None, entry: dict[str, Any]) -> bool:
    """Whether a live tools/list entry may be listed (always, unless pinning enforces and it drifted)."""
    return verdict is None or verdict.shows(entry)


def pin_refusal(request_id: Any, verdict: ServerVerdict | None, tool: str) -> Message | None:
    """The error for a call to a withheld tool (upstream name), naming the change; None when allowed."""
    why = verdict.refusal(tool) if verdict is not None else None
    if verdict is None or why is None:
        return None
    change = verdict.tool_changes.get(tool)
    data = (
        change.as_json()
        if change is not None
        else {"server": verdict.server, "name": tool, "change": "unpinned"}
    )
    return error_response(request_id, INVALID_PARAMS, f"Tool withheld by pinning: {why}", {"pinning": data})
