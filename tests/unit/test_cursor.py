"""Unit tests of core/cursor.py: merged pagination cursors round-trip and refuse garbage."""

from __future__ import annotations

import base64
import re

import orjson
import pytest

from mcpmux.core.cursor import MAX_CURSOR_LENGTH, decode_cursor, encode_cursor


@pytest.mark.parametrize(
    "positions",
    [
        (("a", "page:2"),),
        (("a", ""), ("b", "x")),
        (("fetch/tok", "page=2&x=ü ☃/+=="), ("z", '{"json": ["inside"]}')),
        (("s", "c" * 5000),),
    ],
)
def test_cursors_round_trip(positions: tuple[tuple[str, str], ...]) -> None:
    assert decode_cursor(encode_cursor("tools", positions), "tools") == positions


def test_a_cursor_is_url_safe_base64_without_padding() -> None:
    for length in range(6):
        cursor = encode_cursor("tools", [("a", "x" * length)])
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)


def test_a_cursor_is_compact_json() -> None:
    cursor = encode_cursor("prompts", [("a", "1")])
    assert base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)) == b'["prompts",[["a","1"]]]'


def test_encoding_is_deterministic() -> None:
    assert encode_cursor("tools", [("a", "n")]) == encode_cursor("tools", [("a", "n")])


def test_a_cursor_of_one_list_is_refused_by_another() -> None:
    assert decode_cursor(encode_cursor("tools", [("a", "1")]), "prompts") is None


def b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "x",
        "!!!!",
        "abc=",
        "a b c d",
        "é",
        "\ud800",
        "a" * (MAX_CURSOR_LENGTH + 1),
        b64(b"not json"),
        b64(b"{}"),
        b64(b"[]"),
        b64(b'["tools"]'),
        b64(b'["tools",[]]'),
        b64(b'["tools",{}]'),
        b64(b'["tools",[["a"]]]'),
        b64(b'["tools",[["a","1","2"]]]'),
        b64(b'["tools",[["a",1]]]'),
        b64(b'["tools",[[1,"1"]]]'),
        b64(b'["tools",[["a",null]]]'),
        b64(b'["tools",[["a","1"],["a","2"]]]'),
        b64(b'["tools",[["a","1"]],"extra"]'),
        b64(b'[0,[["a","1"]]]'),
        b64(b"\xff\xfe"),
        b64(b"[" * 10000),
        b64(orjson.dumps(["tools", [["a", "1"]]]))[:-1] + "+",
    ],
)
def test_malformed_cursors_decode_to_none(cursor: str) -> None:
    assert decode_cursor(cursor, "tools") is None


@pytest.mark.parametrize("cursor", [None, 1, b"WzAsbnVsbCwwXQ", ["x"], {"a": 1}])
def test_non_string_cursors_decode_to_none(cursor: object) -> None:
    assert decode_cursor(cursor, "tools") is None


def test_a_cursor_from_an_upstream_is_not_mistaken_for_a_merged_one() -> None:
    assert decode_cursor("cGFnZToy", "tools") is None  # base64 of page:2
    assert decode_cursor("page:2", "tools") is None
