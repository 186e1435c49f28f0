"""2026-07-28 cancellation by a closed POST (web/closing.py), without sockets: a fake `send` that can
say its connection went."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mcpmux.web.closing import TaskCanceller, until_closed


class FakeSend:
    def __init__(self) -> None:
        self.lost: Callable[[], None] | None = None

    def watch_disconnect(self, callback: Callable[[], None] | None) -> bool:
        self.lost = callback
        return True

    def go(self) -> None:
        """The client's connection goes."""
        assert self.lost is not None
        self.lost()


class FakeExchange:
    def __init__(self) -> None:
        self.send = FakeSend()
        self.done = False


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_the_work_is_cancelled_when_the_connection_goes_before_the_answer() -> None:
    async def scenario() -> tuple[object, bool]:
        exchange, cancelled = FakeExchange(), False

        async def work() -> str:
            nonlocal cancelled
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled = True
                raise
            return "answer"

        asyncio.get_running_loop().call_soon(exchange.send.go)
        result = await until_closed(exchange, TaskCanceller(), work())
        await asyncio.sleep(0)  # the task goes on: it was not left cancelled
        return result, cancelled

    assert run(scenario()) == (None, True)


def test_an_answered_exchange_is_not_cancelled_by_its_connection_going() -> None:
    async def scenario() -> object:
        exchange = FakeExchange()

        async def work() -> str:
            exchange.done = True  # answered (say with input_required); the call goes on
            exchange.send.go()
            await asyncio.sleep(0.01)
            return "finished"

        return await until_closed(exchange, TaskCanceller(), work())

    assert run(scenario()) == "finished"


def test_the_canceller_is_disarmed_when_the_work_ends() -> None:
    async def scenario() -> str:
        exchange, canceller = FakeExchange(), TaskCanceller()

        async def work() -> str:
            return "quick"

        result = await until_closed(exchange, canceller, work())
        canceller.cancel()  # a late give-up must not reach the task's later work
        await asyncio.sleep(0.01)
        assert exchange.send.lost is None  # no longer watched
        return str(result)

    assert run(scenario()) == "quick"


def test_a_cancellation_from_elsewhere_is_not_swallowed() -> None:
    async def scenario() -> None:
        exchange = FakeExchange()

        async def work() -> None:
            await asyncio.sleep(60)

        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_soon(task.cancel)
        await until_closed(exchange, TaskCanceller(), work())

    with pytest.raises(asyncio.CancelledError):
        run(scenario())
