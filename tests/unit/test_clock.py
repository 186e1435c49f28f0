"""The manual clock the component tests drive time with: sleeps and deadlines fire only when advanced."""

from __future__ import annotations

import math

import anyio
import pytest

from mcpmux.core.clock import SYSTEM_CLOCK, ManualClock

pytestmark = pytest.mark.anyio


async def test_a_sleep_ends_when_the_clock_is_advanced_past_it_and_not_before() -> None:
    clock = ManualClock(start=100.0)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, 10.0)
            assert await clock.next_sleep() == 10.0
            tg.start_soon(sleeper, 5.0)
            assert await clock.next_sleep() == 5.0
            clock.advance(4.0)
            await anyio.wait_all_tasks_blocked()
            assert woke == [] and clock.pending == 2
            clock.advance(6.0)  # both are due now: they wake, earliest first
    assert woke == [110.0, 110.0] and clock.pending == 0
    assert clock.sleeps == [10.0, 5.0]


async def test_move_on_after_ends_its_block_at_the_deadline_only() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            outcome: list[bool] = []

            async def waiter() -> None:
                with clock.move_on_after(3.0) as scope:
                    await anyio.sleep_forever()
                outcome.append(scope.cancelled_caught)

            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            clock.advance(2.9)
            await anyio.wait_all_tasks_blocked()
            assert outcome == []
            clock.advance(0.1)
    assert outcome == [True] and clock.pending == 0
    with clock.move_on_after(math.inf) as scope:  # a block that ends by itself leaves no timer behind
        assert clock.pending == 1
    assert not scope.cancelled_caught and clock.pending == 0


async def test_a_zero_sleep_is_a_checkpoint_and_time_never_goes_back() -> None:
    clock = ManualClock()
    await clock.sleep(0)
    assert clock.sleeps == [] and clock.now() == 0.0
    with pytest.raises(ValueError):
        clock.advance(-1.0)


async def test_the_system_clock_is_monotonic_time_and_anyio() -> None:
    before = SYSTEM_CLOCK.now()
    await SYSTEM_CLOCK.sleep(0)
    with SYSTEM_CLOCK.move_on_after(math.inf) as scope:
        pass
    assert SYSTEM_CLOCK.now() >= before and not scope.cancelled_caught
