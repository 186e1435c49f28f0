"""Durations in config files: Go duration strings, seconds as numbers, and legacy integer nanoseconds."""

from __future__ import annotations

import math
import re

DURATION_EXPECTED = 'expected a duration like "30s"'

# The original unmarshals `timeout` into a Go time.Duration, i.e. integer nanoseconds. A JSON integer this
# large cannot sensibly be seconds (11.5 days), so it keeps its old meaning.
NANOSECONDS_THRESHOLD = 1_000_000

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration_seconds(value: object) -> float:
    """Return the duration `value` (str, int or float) in seconds; ValueError when invalid or negative."""
    if isinstance(value, bool):
        raise ValueError(DURATION_EXPECTED)
    if isinstance(value, int):
        return _integer_seconds(value)
    if isinstance(value, float):
        return _float_seconds(value)
    if isinstance(value, str):
        return parse_go_duration(value)
    raise ValueError(DURATION_EXPECTED)


def parse_go_duration(text: str) -> float:
    """Parse Go's time.ParseDuration syntax ("1h2m3.5s", "500ms", "0") into seconds; no negatives."""
    text = text.strip()
    if text.startswith("+"):
        text = text[1:]
    if text == "0":
        return 0.0
    if not text or text.startswith("-"):
        raise ValueError(DURATION_EXPECTED)
    total = 0.0
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(DURATION_EXPECTED)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total


def _integer_seconds(value: int) -> float:
    if value < 0:
        raise ValueError(DURATION_EXPECTED)
    if value >= NANOSECONDS_THRESHOLD:
        return value / 1e9
    return float(value)


def _float_seconds(value: float) -> float:
    if value < 0 or not math.isfinite(value):
        raise ValueError(DURATION_EXPECTED)
    return value
