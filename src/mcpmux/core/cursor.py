"""Opaque pagination cursors of merged lists: which server to continue with, and its own cursor."""

from __future__ import annotations

import base64
import binascii
import re

import orjson

__all__ = ["MAX_CURSOR_LENGTH", "decode_cursor", "encode_cursor"]

MAX_CURSOR_LENGTH = 65536  # longer input is refused before any decoding work
_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_FIELD_COUNT = 3  # [server_index, upstream_cursor, catalog_epoch]


def encode_cursor(server_index: int, upstream_cursor: str | None, catalog_epoch: int) -> str:
    """Url-safe base64 (no padding) of the compact JSON `[server_index, upstream_cursor, epoch]`.

    `catalog_epoch` identifies the server list the index refers to, so that a cursor issued before
    the list changed can be recognised and refused.
    """
    if server_index < 0 or catalog_epoch < 0:
        raise ValueError("server_index and catalog_epoch must not be negative")
    payload = orjson.dumps([server_index, upstream_cursor, catalog_epoch])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


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


def decode_cursor(cursor: object) -> tuple[int, str | None, int] | None:
    """`(server_index, upstream_cursor, catalog_epoch)`, or None for anything malformed (never raises).

    Takes any object because the cursor comes straight from a client's JSON `params`.
    """
    value = _json_of(cursor)
    if type(value) is not list or len(value) != _FIELD_COUNT:
        return None
    server_index, upstream_cursor, catalog_epoch = value
    if not (_is_count(server_index) and _is_count(catalog_epoch)):
        return None
    if upstream_cursor is not None and type(upstream_cursor) is not str:
        return None
    return server_index, upstream_cursor, catalog_epoch
