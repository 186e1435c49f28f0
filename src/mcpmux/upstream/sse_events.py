"""Server-sent events parsed from a byte stream, with no cap on event size."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    event: str
    data: str
    id: str | None


async def iter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    """Yield each complete event; comments and retry fields are skipped."""
    partial: list[bytes] = []
    event, last_id = "message", None
    data: list[str] = []
    async for chunk in chunks:
        if b"\n" not in chunk:
            partial.append(chunk)  # a long data line arrives in many chunks: join once at its end
            continue
        if partial:
            partial.append(chunk)
            chunk = b"".join(partial)
            partial.clear()
        *lines, rest = chunk.split(b"\n")
        if rest:
            partial.append(rest)
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    yield Event(event, "\n".join(data), last_id)
                event, data = "message", []
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value.decode("utf-8"))
            elif name == b"event":
                event = value.decode("utf-8") or "message"
            elif name == b"id":
                last_id = value.decode("utf-8")
    if data:
        yield Event(event, "\n".join(data), last_id)
