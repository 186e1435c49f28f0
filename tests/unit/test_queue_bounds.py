"""Bounded queues: a session's standalone outbox and one request's related messages (issue 12)."""

from __future__ import annotations

import asyncio
from typing import Any

from loopback import Recorder
from mcpmux.relay.client import Outbox
from mcpmux.upstream.session import InFlight, UpstreamSession


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


def response(n: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": n, "result": {}}


def note(n: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"n": n}}


def test_a_full_outbox_makes_room_by_dropping_the_oldest_notification_only() -> None:
    async def main() -> Any:
        box = Outbox(limit=3)
        for msg in (response(1), note(1), response(2), response(3)):
            box.push(msg)
        return await box.take_all(1), box.dropped, box.overflowed

    batch, dropped, overflowed = run(main())
    assert batch == [response(1), response(2), response(3)]
    assert (dropped, overflowed) == (1, None)


def test_an_outbox_full_of_responses_overflows_closes_and_says_why() -> None:
    stopped: list[bool] = []

    async def main() -> Any:
        box = Outbox(limit=3)
        box.stop = lambda: stopped.append(True)  # what the open stream sets: it ends at once
        for n in range(4):
            box.push(response(n))
        box.push(response(9))  # after the overflow: nothing is queued any more
        return await box.take_all(1), box

    batch, box = run(main())
    assert batch is None  # the stream reading it ends
    assert box.closed and not box.items
    assert "maxSessionQueue" in box.overflowed
    assert stopped == [True]


def test_a_request_with_too_many_related_messages_waiting_is_abandoned_with_an_error() -> None:
    pending = InFlight(None, limit=2)
    pending.put(note(1))
    pending.put(note(2))
    pending.put(note(3))
    assert pending.overflowed and not pending.items
    assert pending.final is not None
    assert pending.final["error"]["code"] == -32603
    assert "maxRequestQueue" in pending.final["error"]["message"]
    pending.put(note(4))
    pending.finish(response(1))
    assert not pending.items and "error" in pending.final


class Events:
    def on_notification(self, session: Any, msg: Any, related: Any) -> None:
        if related is not None:
            related.put(msg)

    def on_server_request(self, session: Any, msg: Any, related: Any) -> None:
        pass


class Stuck:
    """A downstream request whose client never reads: its first emit never returns."""

    def __init__(self) -> None:
        self.client = type("C", (), {"busy": 0, "touch": lambda self: None, "wants_log": lambda s, x: True})()
        self.request_id = "c1"
        self.release = asyncio.Event()

    async def emit(self, msg: Any) -> None:
        await self.release.wait()


def test_an_abandoned_request_is_cancelled_upstream_and_answered_with_the_error() -> None:
    async def main() -> Any:
        session = UpstreamSession("up", Events(), queue_limit=3)
        conn = session.connection = Recorder()
        origin = Stuck()
        call = {"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": {"name": "t"}}
        task = asyncio.create_task(session.request(call, origin, None))
        await conn.event.wait()
        uid = conn.sent[0]["id"]
        for n in range(10):  # one is taken (stuck in emit), three wait, the next overflows
            session.receive(note(n), uid)
            await asyncio.sleep(0)
        origin.release.set()
        answer = await task
        return answer, conn.sent, session.pending

    answer, sent, pending = run(main())
    assert answer["id"] == "c1" and "maxRequestQueue" in answer["error"]["message"]
    assert (
        sent[-1]["method"] == "notifications/cancelled" and sent[-1]["params"]["requestId"] == sent[0]["id"]
    )
    assert not pending
