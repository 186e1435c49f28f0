"""Messages kept in Redis streams as entries of at most PIECE_BYTES, and put together again when read.

Redis bounds a stream read (XREAD, XRANGE) by its entry count only, so the byte bound is made here: a
message is written as one entry when it fits PIECE_BYTES, else as pieces (first, more, last) of at most
that size; every read takes READ_COUNT entries at most, so it brings READ_BYTES of messages at most.
A reader checks each entry again (one above PIECE_BYTES is not relayed, whoever wrote it) and keeps
the pieces of a message across reads (at most MAX_MESSAGE_BYTES), which it sends on once it is whole.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mcpmux.cluster")

PIECE_BYTES = 16 * 1024  # what one entry holds of a message
READ_COUNT = 64  # entries one read takes at most
READ_BYTES = READ_COUNT * PIECE_BYTES  # so one read brings 1 MiB of messages at most
ENTRY_SLACK_BYTES = 256  # an entry's other fields and names (a token digest, the piece's kind)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a message bigger than this is not written to, nor relayed from, Redis

WHOLE, FIRST, MORE, LAST = "m", "f", "c", "l"
_KINDS = tuple(kind.encode() for kind in (WHOLE, FIRST, MORE, LAST))


def pieces(data: bytes, fields: dict[str, bytes] | None = None) -> list[dict[str, bytes]]:
    """The entries `data` is written as (each with `fields` too): one when it fits, else its pieces."""
    extra = fields or {}
    if len(data) <= PIECE_BYTES:
        return [{**extra, WHOLE: data}]
    chunks = [data[at : at + PIECE_BYTES] for at in range(0, len(data), PIECE_BYTES)]
    kinds = [FIRST] + [MORE] * (len(chunks) - 2) + [LAST]
    return [{**extra, kind: chunk} for kind, chunk in zip(kinds, chunks, strict=True)]


def entry_bytes(fields: dict[Any, Any]) -> int:
    return sum(len(k) + len(v) for k, v in fields.items() if isinstance(k, bytes) and isinstance(v, bytes))


def piece_of(fields: Any) -> tuple[bytes, bytes] | str:
    """The kind and data of an entry as read, or why it is not relayed."""
    if not isinstance(fields, dict):
        return "no message"
    if entry_bytes(fields) > PIECE_BYTES + ENTRY_SLACK_BYTES:
        return "too big"
    for kind in _KINDS:
        data = fields.get(kind)
        if isinstance(data, bytes):
            return kind, data
    return "no message"


class Assembler:
    """Whole messages from the entries of one stream, read in order (pieces kept across reads)."""

    __slots__ = ("parts", "size", "what")

    def __init__(self, what: str) -> None:
        self.what = what  # "GET" or "POST", for the log
        self.parts: list[bytes] | None = None  # the pieces of the message under way
        self.size = 0

    def feed(self, fields: Any) -> bytes | None:
        """The message this entry completes; None when it completes none (or was dropped, logged)."""
        piece = piece_of(fields)
        if isinstance(piece, str):
            self._drop(piece)
            return None
        kind, data = piece
        if kind in (b"m", b"f"):
            if self.parts is not None:
                self._drop("cut short")
            if kind == b"m":
                return data
            self.parts, self.size = [data], len(data)
            return None
        return self._more(kind, data)

    def _more(self, kind: bytes, data: bytes) -> bytes | None:
        """A piece after the first: the message when it is the last one."""
        if self.parts is None:  # its start was trimmed away, or dropped
            if kind == b"l":
                self._drop("its start is gone")
            return None
        self.size += len(data)
        if self.size > MAX_MESSAGE_BYTES:
            self._drop("too big")
            return None
        self.parts.append(data)
        if kind == b"c":
            return None
        message, self.parts = b"".join(self.parts), None
        return message

    def _drop(self, reason: str) -> None:
        log.warning("Cluster: a %s stream entry skipped (%s)", self.what, reason)
        self.parts, self.size = None, 0
