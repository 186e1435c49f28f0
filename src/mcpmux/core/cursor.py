"""Opaque pagination cursors of merged lists: the list they continue and, per server, its own cursor."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

import orjson

__all__ = ["MAX_CURSOR_LENGTH", "Position", "decode_cursor", "encode_cursor"]

MAX_CURSOR_LENGTH = 65536  # longer input is refused before any decoding work
_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")

# (server, that server's own nextCursor): where one server's listing continues.
Position = tuple[str, str]


def encode_cursor(kind: str, positions: Sequence[Position]) -> str:
    """Url-safe base64 (no padding) of the compact JSON `[kind, [[server, cursor], ...]]`.

    `kind` names the list (`tools`, `prompts`, ...), so that a cursor of one list is refused by another
    instead of sending one server's tools cursor to its prompts/list. A merged page carries one page of
    every server that had more, so the cursor holds one position per such server.
    """
    payload = orjson.dumps([kind, [list(position) for position in positions]])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def _json_of(cursor: object) -> object:
    """The JSON value a cursor's base64 carries; None when it is not such a string."""
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        return None
    if _ALPHABET.fullmatch(cursor) is None:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        return None


def _position(item: object) -> Position | None:
    if type(item) is not list or len(item) != 2:
        return None
    server, upstream_cursor = item
    if type(server) is not str or type(upstream_cursor) is not str:
        return None
    return server, upstream_cursor


def decode_cursor(cursor: object, kind: str) -> tuple[Position, ...] | None:
    """The positions a cursor of list `kind` continues from; None for anything else (never raises).

    Takes any object because the cursor comes straight from a client's JSON `params`. Refused: not our
    encoding, another list's cursor, no positions, and a server named twice.
    """
    value = _json_of(cursor)
    if type(value) is not list or len(value) != 2 or value[0] != kind or type(value[1]) is not list:
        return None
    return _positions(value[1])


def _positions(items: list[object]) -> tuple[Position, ...] | None:
    """Each item a position, at least one, no server twice; else None."""
    positions = tuple(_position(item) for item in items)
    if not positions or None in positions:
        return None
    checked = tuple(p for p in positions if p is not None)
    if len({server for server, _ in checked}) != len(checked):
        return None
    return checked
