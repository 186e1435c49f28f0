"""The status page's first view, rendered on the server: no JavaScript needed, only what one may see."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import escape
from typing import Any

from .operator import Mode
from .pins_page import pins_panel

_PLACEHOLDER = re.compile(r"%[A-Z_]+%")
DASH = "\u2013"  # what the page shows for "nothing"
SIGN_IN = "Sign in to see the status"
OFF = "Operator views are off: set mcpProxy.operatorTokens in the config to see the status here."


@dataclass(frozen=True, slots=True)
class View:
    """What one request may see: the operator mode, the data (None before sign-in) and a sign-in error."""

    mode: Mode
    snapshot: dict[str, Any] | None = None
    login_error: str = ""
    token: str | None = None  # the operator's token, for the Approve forms (None: open or signed out)
    notice: str = ""  # what the last form POST did (an approval)
    cluster: dict[str, Any] | None = None  # cluster mode, for a caller who sees the data: `/_cluster`'s view


def format_duration(seconds: float) -> str:
    """`1d 2h 3m 4s`, as the page's script writes it; a dash for nothing."""
    if not seconds:
        return DASH
    rest = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, rest = divmod(rest, size)
        if amount or parts:
            parts.append(f"{amount}{unit}")
    return " ".join([*parts, f"{rest}s"])


def _config_text(config: Any) -> str:
    return json.dumps(config, indent=2) if config else ""


def _tools(tools: list[dict[str, Any]]) -> str:
    items = []
    for tool in tools:
        text = tool.get("title") or tool.get("description")
        description = f'<span class="description"> {DASH} {escape(str(text))}</span>' if text else ""
        items.append(f"<li><code>{escape(str(tool.get('name')))}</code>{description}</li>")
    return "".join(items)


def _field(label: str, value: str, *, name: str, wide: bool = False, code: bool = False) -> str:
    shown = f'<code data-field="{name}">{escape(value)}</code>' if code else escape(value)
    dd = f"<dd>{shown}</dd>" if code else f'<dd data-field="{name}">{shown}</dd>'
    wide_class = ' class="wide"' if wide else ""
    return f"<div{wide_class}><dt>{label}</dt>{dd}</div>"


def _stderr(lines: list[str]) -> str:
    """A stdio server's last stderr lines (already redacted), hidden when there are none."""
    text = escape("\n".join(str(line) for line in lines))
    hidden = "" if text else " hidden"
    pre = f'<pre data-field="stderr">{text}</pre>'
    return f'<div class="wide stderr"{hidden}><dt>Recent stderr</dt><dd>{pre}</dd></div>'


def server_card(server: dict[str, Any], index: int, action: str = "", token: str | None = None) -> str:
    """One server as an `<article>` with the markup the script's template uses (it takes over later)."""
    name, state = escape(str(server["name"])), escape(str(server["state"]))
    heading = f"ssr-server-{index}"
    uptime = format_duration(server["uptimeSeconds"]) if server["ready"] else DASH
    fields = [
        f'<div><dt>State</dt><dd><span class="state state-{state}" data-field="state">{state}</span>'
        "</dd></div>",
        _field("Transport", str(server["transport"]), name="transport"),
        _field("Uptime", uptime, name="uptime"),
        _field("Restarts", str(server["restarts"]), name="restarts"),
        _field("Sessions", str(server["sessions"]), name="sessions"),
        _field("Last error", str(server["lastError"] or "none"), name="lastError", wide=True),
        _stderr(server.get("lastStderr") or []),
        _field("Streamable HTTP", server["urls"]["mcp"], name="mcp", wide=True, code=True),
        _field("SSE", server["urls"]["sse"], name="sse", wide=True, code=True),
    ]
    return (
        f'<article class="server" data-ssr data-server="{name}" data-state="{state}" '
        f'aria-labelledby="{heading}">'
        f'<h3 class="server-name" id="{heading}">{name}</h3><dl>{"".join(fields)}</dl>'
        f"{pins_panel(server, action, token)}"
        f'<details class="tools"><summary>Tools (<span data-field="toolCount">{len(server["tools"])}</span>)'
        f"</summary><ul>{_tools(server['tools'])}</ul></details>"
        f'<details class="config"><summary>Client config</summary>'
        f'<pre data-field="config">{escape(_config_text(server["clientConfig"]))}</pre></details></article>'
    )


def route_rows(snapshot: dict[str, Any]) -> str:
    """The merged endpoint and groups as table rows (client configs readable in a `<details>`)."""
    rows = []
    merged = snapshot["merged"]
    labelled = [(f"Merged ({merged['name']})", merged)] if merged["enabled"] else []
    labelled += [(f"Group {group['name']}", group) for group in snapshot["groups"]]
    for label, route in labelled:
        urls = "".join(f"<div><code>{escape(route['urls'][k])}</code></div>" for k in ("mcp", "sse"))
        config = _config_text(route["clientConfig"])
        details = f"<details><summary>Show</summary><pre>{escape(config)}</pre></details>" if config else ""
        rows.append(
            f'<tr data-route="{escape(str(route["name"]))}"><th scope="row">{escape(label)}</th>'
            f"<td>{escape(', '.join(route['servers']) or 'none')}</td><td>{route['tools']}</td>"
            f"<td>{route['sessions']}</td><td>{urls}</td><td>{details}</td></tr>"
        )
    if not rows:
        return '<tr><td colspan="6">No merged endpoint or groups are configured.</td></tr>'
    return "".join(rows)


CLUSTER_STATS = ("sessions", "forwarded", "streams")


def _replica_row(member: dict[str, Any]) -> str:
    """One replica as the script's row: id (this one marked), address, health, heartbeat age, counters."""
    name = str(member.get("replica")) + (" (this replica)" if member.get("self") is True else "")
    stats = member.get("stats")
    stats = stats if isinstance(stats, dict) else {}
    age = member.get("heartbeatSeconds")
    cells = [
        str(member.get("url")),
        str(member.get("health", "unknown")),
        DASH if age is None else f"{age:g}s ago",
        *(str(stats.get(key, "")) for key in CLUSTER_STATS),
    ]
    data = escape(str(member.get("replica")), quote=True)
    tds = "".join(f"<td>{escape(text)}</td>" for text in cells)
    return f'<tr data-replica="{data}"><th scope="row">{escape(name)}</th>{tds}</tr>'


def cluster_rows(cluster: dict[str, Any]) -> str:
    """The replicas registered in the cluster store, or why none can be listed."""
    rows = "".join(_replica_row(m) for m in cluster.get("replicas", []) if isinstance(m, dict))
    if rows:
        return rows
    why = "The cluster store cannot be reached." if cluster.get("reachable") is False else "No replica."
    return f'<tr><td colspan="{2 + 2 + len(CLUSTER_STATS)}">{why}</td></tr>'


def _cards(servers: list[dict[str, Any]], action: str, token: str | None) -> str:
    return "".join(server_card(server, i, action, token) for i, server in enumerate(servers))


def fill(template: str, view: View, base: str, name: str, cluster: str = "") -> str:
    """The page template with this view's first content: data, a sign-in form, or why there is none."""
    values = {
        "%BASE%": escape(base, quote=True),
        "%NAME%": escape(name),
        "%MODE%": view.mode,
        "%CLUSTER%": escape(cluster, quote=True),  # the cluster view's path (cluster mode), else ""
        "%CONNECTION%": escape(_connection(view)),
        "%LOGIN_HIDDEN%": "" if view.snapshot is None and view.mode == "token" else " hidden",
        "%LOGIN_ERROR%": escape(view.login_error),
        **_data_values(view, base),
    }
    return fill_placeholders(template, values)


def _connection(view: View) -> str:
    if view.snapshot is not None:
        return view.notice or "Updated at load time; this page refreshes itself when JavaScript runs"
    return OFF if view.mode == "off" else SIGN_IN


def _data_values(view: View, base: str) -> dict[str, str]:
    """The placeholders of the data sections: filled for an operator's view, else hidden and empty."""
    data = view.snapshot
    if data is None:
        hidden = " hidden"
        return {
            "%DATA_HIDDEN%": hidden,
            "%SERVERS%": "",
            "%ROUTES%": "",
            "%CLUSTER_HIDDEN%": hidden,
            "%CLUSTER_ROWS%": "",
        }
    return {
        "%DATA_HIDDEN%": "",
        "%SERVERS%": _cards(data["servers"], f"{base}/_status", view.token) if data else "",
        "%ROUTES%": route_rows(data) if data else "",
        "%CLUSTER_HIDDEN%": "" if view.cluster is not None else " hidden",
        "%CLUSTER_ROWS%": cluster_rows(view.cluster) if view.cluster else "",
    }


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    """Replace `%NAME%` placeholders in one pass (a value holding a placeholder is left alone)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(), match.group()), template)
