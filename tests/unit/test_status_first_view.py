"""The status page's server-rendered first view (`web/status_page.py`), without sockets."""

from __future__ import annotations

from typing import Any

from mcpmux.web.status_page import View, fill, format_duration

TEMPLATE = "<b>%NAME%</b> %CONNECTION% <form%LOGIN_HIDDEN%>%LOGIN_ERROR%</form><s%DATA_HIDDEN%>%SERVERS%</s>"


def snapshot(name: str = "fx", error: str | None = None) -> dict[str, Any]:
    server = {
        "name": name,
        "state": "failed",
        "transport": "stdio",
        "ready": False,
        "uptimeSeconds": 0,
        "restarts": 2,
        "sessions": 0,
        "lastError": error,
        "urls": {"mcp": "http://h/fx/mcp", "sse": "http://h/fx/sse"},
        "tools": [{"name": "echo", "title": None, "description": "Echoes"}],
        "clientConfig": None,
    }
    merged = {"enabled": False}
    return {"servers": [server], "merged": merged, "groups": []}


def test_durations_read_like_the_scripts() -> None:
    assert [format_duration(s) for s in (0, 5, 65, 3600, 90061)] == [
        "\u2013",
        "5s",
        "1m 5s",
        "1h 0m 0s",
        "1d 1h 1m 1s",
    ]


def test_data_is_shown_escaped_and_the_form_hidden_for_an_operator() -> None:
    page = fill(TEMPLATE, View("token", snapshot("<x>", "bad & worse %NAME%")), "/b", "mux")
    assert "<form hidden>" in page and "<s>" in page
    assert "&lt;x&gt;" in page and "bad &amp; worse %NAME%" in page and "<x>" not in page
    assert "<code>echo</code>" in page


def test_before_sign_in_only_the_form_shows_and_off_says_why() -> None:
    signed_out = fill(TEMPLATE, View("token", login_error="no"), "/b", "mux")
    assert "<form>no</form>" in signed_out and "<s hidden></s>" in signed_out
    off = fill(TEMPLATE, View("off"), "/b", "mux")
    assert "<form hidden>" in off and "mcpProxy.operatorTokens" in off and "<s hidden></s>" in off
