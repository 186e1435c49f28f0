"""Unit tests of core/cursor.py: merged pagination cursors round-trip and refuse garbage."""

from __future__ import annotations

import base64
import re

import orjson
import pytest

from mcpmux.core.cursor import MAX_CURSOR_LENGTH, decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("server_index", "upstream_cursor", "epoch"),
    [
        (0, None, 0),
        (3, "abc", 7),
        (1, "", 2),
        (12, "page=2&x=ü ☃/+==", 1),
        (0, '{"json": ["inside"]}', 2**40),
        (2**31, "c" * 5000, 5),
    ],
)
def test_cursors_round_trip(server_index: int, upstream_cursor: str | None, epoch: int) -> None:
    assert decode_cursor(encode_cursor(server_index, upstream_cursor, epoch)) == (
        server_index,
        upstream_cursor,
        epoch,
    )


def test_a_cursor_is_url_safe_base64_without_padding() -> None:
    for length in range(6):
        cursor = encode_cursor(1, "x" * length, 1)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)


def test_a_cursor_is_compact_json() -> None:
    cursor = encode_cursor(1, "a", 2)
    assert base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)) == b'[1,"a",2]'


def test_encoding_is_deterministic() -> None:
    assert encode_cursor(4, "next", 9) == encode_cursor(4, "next", 9)


@pytest.mark.parametrize(("server_index", "epoch"), [(-1, 0), (0, -1)])
def test_negative_numbers_cannot_be_encoded(server_index: int, epoch: int) -> None:
    with pytest.raises(ValueError):
        encode_cursor(server_index, None, epoch)


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
        b64(b"[1,null]"),
        b64(b"[1,null,2,3]"),
        b64(b'{"s":1,"c":null,"e":2}'),
        b64(b"[-1,null,0]"),
        b64(b"[0,null,-1]"),
        b64(b"[1.0,null,0]"),
        b64(b"[true,null,0]"),
        b64(b"[0,null,false]"),
        b64(b'["1",null,0]'),
        b64(b"[0,5,0]"),
        b64(b"[0,[],0]"),
        b64(b"[0,null,99999999999999999999999]"),
        b64(b"\xff\xfe"),
        b64(b"[" * 10000),
        b64(orjson.dumps([0, None, 0]))[:-1] + "+",
    ],
)
def test_malformed_cursors_decode_to_none(cursor: str) -> None:
    assert decode_cursor(cursor) is None


@pytest.mark.parametrize("cursor", [None, 1, b"WzAsbnVsbCwwXQ", ["x"], {"a": 1}])
def test_non_string_cursors_decode_to_none(cursor: object) -> None:
    assert decode_cursor(cursor) is None


def test_a_cursor_from_an_upstream_is_not_mistaken_for_a_merged_one() -> None:
    assert decode_cursor("eyJwYWdlIjogMn0") is None  # base64 of {"page": 2}
