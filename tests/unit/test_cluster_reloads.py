"""Cluster reload requests are coalesced (cluster/reloads.py): a flood on the reload channel while a
reload runs makes one follow-up reload, not one each."""

from __future__ import annotations

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from mcpmux.cluster.reloads import ReloadQueue

pytestmark = pytest.mark.anyio
BOUND_SECONDS = 10


async def test_a_flood_while_a_reload_runs_makes_one_follow_up_reload() -> None:
    queue = ReloadQueue()
    ran: list[str] = []
    started = anyio.Event()
    release = anyio.Event()

    async def reload(why: str) -> None:
        ran.append(why)
        started.set()
        await release.wait()

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.run, reload)
            queue.request("first")
            await started.wait()
            for n in range(1000):  # the flood, while the first reload runs
                queue.request(f"flood {n}")
            release.set()
            await wait_all_tasks_blocked()  # the queue did what it had to and waits again
            assert ran == ["first", "flood 999"]  # one follow-up, with the latest reason
            queue.request("later")  # a request after the queue went idle reloads again
            await wait_all_tasks_blocked()
            assert ran == ["first", "flood 999", "later"]
            tg.cancel_scope.cancel()


async def test_a_failing_reload_does_not_stop_the_queue() -> None:
    queue = ReloadQueue()
    ran: list[str] = []

    async def reload(why: str) -> None:
        ran.append(why)
        raise RuntimeError("the reload failed")

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.run, reload)
            queue.request("one")
            await wait_all_tasks_blocked()
            queue.request("two")
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert ran == ["one", "two"]
