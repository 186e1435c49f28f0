"""Outbox: the standalone stream's queue, its keep-alive timeout and its single shared timer."""

import asyncio

from mcpmux.relay.client import Outbox


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_queued_messages_come_out_at_once_in_order() -> None:
    async def main() -> list:
        box = Outbox()
        box.push({"n": 1})
        box.push({"n": 2})
        return await box.take_all(10)

    assert run(main()) == [{"n": 1}, {"n": 2}]


def test_a_wait_ends_with_the_first_push() -> None:
    async def main() -> list:
        box = Outbox()
        asyncio.get_running_loop().call_later(0.01, box.push, {"n": 1})
        return await box.take_all(10)

    assert run(main()) == [{"n": 1}]


def test_an_idle_wait_times_out_with_an_empty_batch() -> None:
    async def main() -> tuple:
        box = Outbox()
        loop = asyncio.get_running_loop()
        start = loop.time()
        batch = await box.take_all(0.05)
        return batch, loop.time() - start

    batch, waited = run(main())
    assert batch == []
    assert waited >= 0.045


def test_later_waits_move_the_shared_timer_forward() -> None:
    """A timer armed by an early wait must not cut a later, longer wait short."""

    async def main() -> tuple:
        box = Outbox()
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, box.push, {"n": 1})
        first = await box.take_all(0.05)  # arms the timer for t+0.05, woken at t+0.01
        start = loop.time()
        second = await box.take_all(0.2)  # deadline t+0.21: the timer fires at t+0.05 and re-arms
        return first, second, loop.time() - start

    first, second, waited = run(main())
    assert first == [{"n": 1}]
    assert second == []
    assert waited >= 0.19


def test_close_ends_a_wait_and_later_waits_with_none() -> None:
    async def main() -> tuple:
        box = Outbox()
        asyncio.get_running_loop().call_later(0.01, box.close)
        return await box.take_all(10), await box.take_all(10)

    assert run(main()) == (None, None)


def test_a_full_outbox_drops_the_oldest() -> None:
    async def main() -> tuple:
        box = Outbox(limit=3)
        for n in range(5):
            box.push({"n": n})
        return await box.take_all(1), box.dropped

    batch, dropped = run(main())
    assert [m["n"] for m in batch] == [2, 3, 4]
    assert dropped == 2


def test_deliver_without_an_open_stream_queues() -> None:
    async def main() -> list:
        box = Outbox()
        await box.deliver({"n": 1})
        return await box.take_all(1)

    assert run(main()) == [{"n": 1}]


def test_deliver_writes_straight_to_an_idle_stream() -> None:
    async def main() -> tuple:
        box = Outbox()
        written: list = []

        async def direct(msg: dict) -> None:
            written.append(msg)

        box.direct = direct
        await box.deliver({"n": 1})
        return written, list(box.items)

    assert run(main()) == ([{"n": 1}], [])


def test_messages_arriving_during_a_direct_write_wait_for_it_and_keep_their_order() -> None:
    """While one write is under way, later messages queue; the reader gets them only after it."""

    async def main() -> list:
        box = Outbox()
        order: list = []
        release = asyncio.Event()

        async def slow_direct(msg: dict) -> None:
            await release.wait()  # a stream whose socket buffer is full
            order.append(("direct", msg["n"]))

        async def reader() -> None:
            while (batch := await box.take_all(5)) is not None:
                order.extend(("reader", m["n"]) for m in batch)

        box.direct = slow_direct
        reading = asyncio.create_task(reader())
        await asyncio.sleep(0)
        first = asyncio.create_task(box.deliver({"n": 1}))
        await asyncio.sleep(0.01)
        await box.deliver({"n": 2})  # queued: a write is under way
        box.push({"n": 3})
        await asyncio.sleep(0.01)
        assert order == []  # the reader must not write while the direct write is unfinished
        release.set()
        await first
        await asyncio.sleep(0.01)
        box.close()
        await reading
        return order

    assert run(main()) == [("direct", 1), ("reader", 2), ("reader", 3)]


def test_a_failed_direct_write_queues_the_message() -> None:
    async def main() -> list:
        box = Outbox()

        async def broken(msg: dict) -> None:
            raise RuntimeError("stream closed")

        box.direct = broken
        await box.deliver({"n": 1})
        return await box.take_all(1)

    assert run(main()) == [{"n": 1}]
