"""The status page's pending pin changes, rendered without sockets: the diff's words and the forms."""

from __future__ import annotations

from typing import Any

from mcpmux.web.pins_page import change_text, pins_panel

CHANGES = [
    {"kind": "tools", "name": "fetch", "change": "changed", "fields": ["description", "inputSchema"]},
    {"kind": "tools", "name": "upload", "change": "added"},
    {"kind": "tools", "name": "delete", "change": "removed"},
    {"kind": "instructions", "name": "", "change": "changed"},
]


def server(changes: list[dict[str, Any]] | None) -> dict[str, Any]:
    pinning = None if changes is None else {"mode": "enforce", "changes": changes}
    return {"name": 'a"b', "pinning": pinning}


def test_each_change_says_what_changed_in_words() -> None:
    assert [change_text(c) for c in CHANGES] == [
        "changed: description, inputSchema",
        "new (not in the lock file)",
        "removed",
        "changed",
    ]
    assert change_text({"change": "annotations"}) == "annotations changed"


def test_the_panel_is_hidden_when_nothing_is_pending_or_pinning_is_off() -> None:
    for changes in (None, []):
        assert pins_panel(server(changes), "/_status", "t").split(">")[0].endswith(" hidden")


def test_approve_forms_carry_the_token_server_and_tool_escaped_and_only_for_tools() -> None:
    html = pins_panel(server(CHANGES), "/_status", 't"<')
    assert ' hidden"' not in html.split(">")[0]
    assert html.count('<form class="approve" method="post" action="/_status">') == 4  # 3 tools + all
    assert '<input type="hidden" name="token" value="t&quot;&lt;">' in html
    assert '<input type="hidden" name="approve" value="a&quot;b">' in html
    assert '<input type="hidden" name="tool" value="upload">' in html
    assert 'aria-label="Approve all changes of a&quot;b">Approve all</button>' in html
    instructions = html.split('data-kind="instructions"')[1].split("</li>")[0]
    assert "instructions" in instructions and "<form" not in instructions  # approved with the server


def test_without_a_token_the_diff_shows_but_nothing_can_be_approved() -> None:
    html = pins_panel(server(CHANGES), "/_status", None)
    assert "<form" not in html and "Approve" not in html
    assert '<span class="pin-what">changed: description, inputSchema</span>' in html
