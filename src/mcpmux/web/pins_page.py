"""The status page's pending pin changes of one server: a readable diff and Approve forms (no JavaScript)."""

from __future__ import annotations

from html import escape
from typing import Any

MARKS = {"added": "+", "removed": "\u2212", "changed": "~", "annotations": "~"}


def change_text(change: dict[str, Any]) -> str:
    """What changed, in words: `new (not in the lock file)`, `changed: description, inputSchema`, ..."""
    kind = change.get("change")
    if kind == "added":
        return "new (not in the lock file)"
    if kind == "removed":
        return "removed"
    if kind == "annotations":
        return "annotations changed"
    fields = change.get("fields") or []
    return f"changed: {', '.join(str(f) for f in fields)}" if fields else "changed"


def pending_changes(server: dict[str, Any]) -> list[dict[str, Any]]:
    """The changes pinning reports for a server (none when pinning is off or everything matches)."""
    pinning = server.get("pinning")
    changes = pinning.get("changes") if isinstance(pinning, dict) else None
    return [c for c in changes if isinstance(c, dict)] if isinstance(changes, list) else []


def approve_form(action: str, token: str, server: str, tool: str | None, label: str, text: str) -> str:
    """A form POSTing to the page itself: the token, the server and (for one tool) the tool to approve."""
    fields = [("token", token), ("approve", server)] + ([("tool", tool)] if tool is not None else [])
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(value, quote=True)}">' for name, value in fields
    )
    return (
        f'<form class="approve" method="post" action="{escape(action, quote=True)}">{hidden}'
        f'<button type="submit" aria-label="{escape(label, quote=True)}">{text}</button></form>'
    )


def _item(change: dict[str, Any], action: str, token: str | None, server: str) -> str:
    name = str(change.get("name") or "")
    kind = str(change.get("kind"))
    subject = f"<code>{escape(name)}</code>" if kind == "tools" else escape(f"{kind} {name}".strip())
    text = f'<span class="pin-mark" aria-hidden="true">{MARKS.get(str(change.get("change")), "~")}</span> '
    text += f'{subject} <span class="pin-what">{escape(change_text(change))}</span>'
    button = ""
    if token is not None and kind == "tools":
        label = f"Approve tool {name} of {server}"
        button = " " + approve_form(action, token, server, name, label, "Approve")
    data = f'data-kind="{escape(kind, quote=True)}" data-name="{escape(name, quote=True)}"'
    return f"<li {data}>{text}{button}</li>"


def pins_panel(server: dict[str, Any], action: str, token: str | None) -> str:
    """The server's pending changes, hidden when there are none; Approve forms when a token signed in."""
    name = str(server["name"])
    changes = pending_changes(server)
    items = "".join(_item(change, action, token, name) for change in changes)
    every = approve_form(action, token or "", name, None, f"Approve all changes of {name}", "Approve all")
    every = every if token else ""
    hidden = "" if changes else " hidden"
    return (
        f'<section class="pins" aria-label="Pending pin changes of {escape(name, quote=True)}"{hidden}>'
        f'<h4>Pending pin changes</h4><ul class="pin-changes">{items}</ul>'
        f'<div class="approve-all">{every}</div></section>'
    )
