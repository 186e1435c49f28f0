"""Server-sent events parsed incrementally from a byte stream, each event bounded in size."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

MAX_EVENT_BYTES = 64 * 1024 * 1024  # one event carries one JSON-RPC message: as the stdio line limit


class EventTooLarge(ValueError):
    """An event (or a line of one) grew past the parser's bound."""


@dataclass(slots=True)
class Event:
    event: str
    data: str
    id: str | None


class SseParser:
    """Feed bytes as they arrive; get the events they complete. Comments and `retry` are skipped."""

    __slots__ = ("_data", "_data_bytes", "_event", "_partial", "_partial_bytes", "last_id", "max_bytes")

    def __init__(self, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._partial: list[bytes] = []
        self._partial_bytes = 0
        self._event = "message"
        self._data: list[str] = []
        self._data_bytes = 0
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        if b"\n" not in chunk:
            self._partial.append(chunk)  # a long data line arrives in many chunks: join once at its end
            self._partial_bytes += len(chunk)
            if self._partial_bytes + self._data_bytes > self.max_bytes:
                raise EventTooLarge(f"an event larger than {self.max_bytes} bytes")
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial.clear()
            self._partial_bytes = 0
        *lines, rest = chunk.split(b"\n")
        if rest:
            self._partial.append(rest)
            self._partial_bytes = len(rest)
        events: list[Event] = []
        for raw in lines:
            self._line(raw[:-1] if raw.endswith(b"\r") else raw, events)
        return events

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                events.append(Event(self._event, "\n".join(self._data), self.last_id))
            self._event, self._data, self._data_bytes = "message", [], 0
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data_bytes += len(value)
            if self._data_bytes > self.max_bytes:
                raise EventTooLarge(f"an event larger than {self.max_bytes} bytes")
            self._data.append(value.decode("utf-8"))
        elif name == b"event":
            self._event = value.decode("utf-8") or "message"
        elif name == b"id":
            self.last_id = value.decode("utf-8")

    def finish(self) -> list[Event]:
        """The stream ended: an event not closed by a blank line still counts."""
        events: list[Event] = []
        if self._partial:
            self._line(b"".join(self._partial).rstrip(b"\r"), events)
            self._partial.clear()
        if self._data:
            events.append(Event(self._event, "\n".join(self._data), self.last_id))
            self._data = []
        return events


async def iter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    """Yield each complete event of an async byte stream."""
    parser = SseParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    for event in parser.finish():
        yield event
