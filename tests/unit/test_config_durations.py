"""Duration values: Go duration strings, seconds, and the old integer nanoseconds."""

from __future__ import annotations

import pytest

from mcpmux.config.durations import parse_duration_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("100ns", 1e-7),
        ("0", 0.0),
        (" 10s ", 10.0),
        (30, 30.0),
        (2.5, 2.5),
        (0, 0.0),
        (999_999, 999_999.0),
        (1_000_000, 0.001),
        (30_000_000_000, 30.0),
    ],
)
def test_durations_parse_to_seconds(value: object, seconds: float) -> None:
    assert parse_duration_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["30", "-5s", "soon", "5 s", "", "1x", "s", -1, -0.5, float("inf"), True, None, []]
)
def test_invalid_or_negative_durations_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match='expected a duration like "30s"'):
        parse_duration_seconds(value)
