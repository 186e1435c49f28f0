"""Unit tests of core/backoff.py: growth, cap, jitter bounds and crash-loop behaviour."""

from __future__ import annotations

import itertools

import pytest

from mcpmux.config.model import BackoffPolicy
from mcpmux.core.backoff import Backoff

MIDDLE = 0.5  # rand() == 0.5 means no jitter


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial_seconds=0.5, max_seconds=5.0, multiplier=2.0, jitter=0.2)
    assert delays(Backoff(policy, rand=lambda: MIDDLE), 7) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_the_cap_applies_from_the_first_delay() -> None:
    policy = BackoffPolicy(initial_seconds=10.0, max_seconds=3.0, jitter=0.0)
    assert delays(Backoff(policy), 2) == [3.0, 3.0]


def test_a_multiplier_of_one_gives_constant_delays() -> None:
    policy = BackoffPolicy(initial_seconds=2.0, multiplier=1.0, jitter=0.0)
    assert delays(Backoff(policy), 3) == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.25, 0.9), (0.5, 1.0), (0.75, 1.1)])
def test_jitter_spreads_each_delay_by_the_policy_fraction(rand: float, factor: float) -> None:
    policy = BackoffPolicy(initial_seconds=10.0, max_seconds=100.0, jitter=0.2)
    assert Backoff(policy, rand=lambda: rand).next_delay() == pytest.approx(10.0 * factor)


def test_jitter_stays_within_bounds_over_many_draws() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, max_seconds=8.0, multiplier=2.0, jitter=0.25)
    draws = itertools.cycle([0.0, 0.999999, 0.3, 0.7])
    backoff = Backoff(policy, rand=lambda: next(draws))
    base = 1.0
    for _ in range(20):
        delay = backoff.next_delay()
        assert base * 0.75 <= delay <= base * 1.25
        base = min(base * 2.0, 8.0)


def test_a_delay_is_never_negative_even_with_jitter_above_one() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, jitter=1.5)
    assert Backoff(policy, rand=lambda: 0.0).next_delay() == 0.0


def test_a_long_outage_never_overflows() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, max_seconds=60.0, multiplier=10.0, jitter=0.0)
    backoff = Backoff(policy)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 60.0
    assert backoff.attempt == 5000


def test_attempt_counts_delays_handed_out_since_reset() -> None:
    backoff = Backoff(BackoffPolicy(jitter=0.0))
    assert backoff.attempt == 0
    delays(backoff, 2)
    assert backoff.attempt == 2
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == BackoffPolicy().initial_seconds


def test_a_stable_period_resets_the_schedule() -> None:
    backoff = Backoff(BackoffPolicy(initial_seconds=1.0, jitter=0.0))
    delays(backoff, 3)
    backoff.mark_healthy(uptime_seconds=10.0)
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1.0


def test_a_short_uptime_keeps_slowing_down() -> None:
    backoff = Backoff(BackoffPolicy(initial_seconds=1.0, max_seconds=100.0, jitter=0.0))
    observed = []
    for _ in range(4):
        backoff.mark_healthy(uptime_seconds=9.9)
        observed.append(backoff.next_delay())
    assert observed == [1.0, 2.0, 4.0, 8.0]


def test_the_stable_period_is_configurable() -> None:
    backoff = Backoff(BackoffPolicy(jitter=0.0))
    delays(backoff, 2)
    backoff.mark_healthy(uptime_seconds=30.0, stable_after_seconds=60.0)
    assert backoff.attempt == 2
    backoff.mark_healthy(uptime_seconds=60.0, stable_after_seconds=60.0)
    assert backoff.attempt == 0


def test_three_restarts_without_a_stable_period_are_a_crash_loop() -> None:
    backoff = Backoff(BackoffPolicy())
    for expected in (False, False, True, True):
        backoff.mark_healthy(uptime_seconds=1.0)
        backoff.next_delay()
        assert backoff.in_crash_loop is expected
    backoff.mark_healthy(uptime_seconds=10.0)
    assert not backoff.in_crash_loop
