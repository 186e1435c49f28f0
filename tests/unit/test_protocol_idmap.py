"""The sans-IO id map of one upstream session: ids, progress tokens, cancels, correlation, hostile input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mcpmux.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT
from mcpmux.protocol.constants import REQUEST_CANCELLED
from mcpmux.protocol.idmap import (
    SERVER_REQUESTS_TRACKED,
    Answered,
    IdMap,
    Invalid,
    Notification,
    Pending,
    Progress,
    ServerRequest,
    Unknown,
)

Message = dict[str, Any]


class Client:
    """A downstream client: the id map compares clients by identity only."""


class Origin:
    """The downstream request a pending request is for."""

    def __init__(self, client: Client | None) -> None:
        self.client = client


def call(request_id: Any, token: Any = None, **meta: Any) -> Message:
    params: dict[str, Any] = {"name": "echo", "arguments": {"x": 1}}
    if token is not None or meta:
        params["_meta"] = {**meta, **({"progressToken": token} if token is not None else {})}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def start(
    ids: IdMap[Pending], msg: Message, client: Client | None = None, **kw: Any
) -> tuple[Pending, Message]:
    pending = Pending(Origin(client) if client is not None else None, **kw)
    return pending, ids.start(msg, pending)


def response(uid: Any, result: Any = None) -> Message:
    return {"jsonrpc": "2.0", "id": uid, "result": {} if result is None else result}


def progress(token: Any, value: float = 1, **extra: Any) -> Message:
    params = {"progressToken": token, "progress": value, **extra}
    return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}


def server_request(rid: Any, method: str = "roots/list") -> Message:
    return {"jsonrpc": "2.0", "id": rid, "method": method}


def server_cancel(rid: Any) -> Message:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}}


# -- ids -------------------------------------------------------------------------------------------


def test_clients_with_the_same_request_id_get_distinct_upstream_ids_and_answers_go_back_to_each() -> None:
    ids: IdMap[Pending] = IdMap()
    a, b = Client(), Client()
    pa, up_a = start(ids, call(1), a)
    pb, up_b = start(ids, call(1), b)
    pc, up_c = start(ids, call("1"), a)  # a string id that looks like the other two
    assert len({up_a["id"], up_b["id"], up_c["id"]}) == 3
    assert (pa.client_id, pb.client_id, pc.client_id) == (1, 1, "1")
    first = ids.receive(response(up_b["id"], {"who": "b"}), None)
    assert isinstance(first, Answered) and first.pending is pb and first.msg["result"] == {"who": "b"}
    second = ids.receive(response(up_a["id"], {"who": "a"}), None)
    assert isinstance(second, Answered) and second.pending is pa
    assert list(ids.pending) == [up_c["id"]]


def test_the_request_sent_upstream_is_a_shallow_copy_changing_only_the_id() -> None:
    ids: IdMap[Pending] = IdMap()
    msg = call("c-7")
    before = copy.deepcopy(msg)
    pending, up = start(ids, msg, Client())
    assert msg == before  # the client's message is untouched
    assert up == {**before, "id": pending.uid}
    assert up["params"] is msg["params"]  # no token: params are not copied (hot path)
    assert type(pending.uid) is int and ids.pending[pending.uid] is pending


def test_the_proxys_own_requests_have_no_client_and_are_never_found_for_one() -> None:
    ids: IdMap[Pending] = IdMap()
    own, up = start(ids, call(0))
    assert own.client is None and own.origin is None
    assert ids.find(None, 0) is None and ids.find(Client(), 0) is None
    assert isinstance(ids.receive(response(up["id"]), None), Answered)


# -- progress tokens -------------------------------------------------------------------------------


def test_progress_tokens_go_up_as_ours_and_come_back_as_the_clients() -> None:
    ids: IdMap[Pending] = IdMap()
    a, b = Client(), Client()
    msg = call(1, token="tok", other="kept")
    before = copy.deepcopy(msg)
    pa, up_a = start(ids, msg, a)
    pb, up_b = start(ids, call(1, token="tok"), b)  # the same token from another client
    assert msg == before
    assert up_a["params"]["_meta"] == {"other": "kept", "progressToken": pa.uid}
    assert up_b["params"]["_meta"]["progressToken"] == pb.uid != pa.uid
    assert up_a["params"]["arguments"] is msg["params"]["arguments"]
    event = ids.receive(progress(pb.uid, 0.5, total=1, message="half"), pb.uid)
    assert isinstance(event, Progress) and event.pending is pb
    assert event.msg == {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": "tok", "progress": 0.5, "total": 1, "message": "half"},
    }


@pytest.mark.parametrize(
    "token",
    [
        "1",  # our tokens are integers: a string one is not ours
        True,  # a bool is not the integer 1
        1.0,
        None,
        [1],
        {"t": 1},
        999,  # no request under this id
    ],
)
def test_progress_with_a_token_that_is_not_one_of_ours_is_unknown(token: Any) -> None:
    ids: IdMap[Pending] = IdMap()
    pending, _ = start(ids, call(1, token="tok"), Client())
    assert pending.uid == 1
    assert isinstance(ids.receive(progress(token), None), Unknown)
    assert pending.items is None


def test_progress_for_a_request_that_asked_for_none_or_has_ended_is_unknown() -> None:
    ids: IdMap[Pending] = IdMap()
    quiet, _ = start(ids, call(1), Client())
    assert isinstance(ids.receive(progress(quiet.uid), None), Unknown)  # no token: the client wants none
    done, _ = start(ids, call(2, token=2), Client())
    ids.receive(response(done.uid), None)
    assert isinstance(ids.receive(progress(done.uid), None), Unknown)
    gone, _ = start(ids, call(3, token=3), Client())
    ids.cancel(gone.uid, None)
    assert isinstance(ids.receive(progress(gone.uid), None), Unknown)
    no_params = {"jsonrpc": "2.0", "method": "notifications/progress"}
    assert isinstance(ids.receive(no_params, None), Unknown)


# -- responses -------------------------------------------------------------------------------------


def test_a_repeated_late_or_unknown_response_is_unknown_and_changes_nothing() -> None:
    ids: IdMap[Pending] = IdMap()
    _, up = start(ids, call(5), Client())
    other, _ = start(ids, call(6), Client())
    assert isinstance(ids.receive(response(up["id"]), None), Answered)
    assert isinstance(ids.receive(response(up["id"]), None), Unknown)  # twice
    for rid in (str(other.uid), None, 12345, -1, 0):
        assert isinstance(ids.receive(response(rid), None), Unknown)
    assert list(ids.pending) == [other.uid]


def test_a_response_is_rewritten_to_the_clients_id_only_when_it_can_go_out_early() -> None:
    ids: IdMap[Pending] = IdMap()
    plain, _ = start(ids, call("p"), Client())
    event = ids.receive(response(plain.uid), None)
    assert isinstance(event, Answered) and not event.early and event.msg["id"] == plain.uid
    early, _ = start(ids, call("e"), Client(), early=object())
    event = ids.receive(response(early.uid), None)
    assert isinstance(event, Answered) and event.early and event.msg["id"] == "e"
    queued, _ = start(ids, call("q"), Client(), early=object())
    queued.put(progress("x"))  # something related still waits for the client: it goes first
    event = ids.receive(response(queued.uid), None)
    assert isinstance(event, Answered) and not event.early and event.msg["id"] == queued.uid


# -- cancellation ----------------------------------------------------------------------------------


def test_a_cancel_before_the_response_ends_the_request_and_tells_the_upstream_once() -> None:
    ids: IdMap[Pending] = IdMap()
    pending, up = start(ids, call(9), Client())
    notice = ids.cancel(pending.uid, "user pressed stop")
    assert notice == {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": up["id"], "reason": "user pressed stop"},
    }
    assert pending.final is not None and pending.final["error"]["code"] == REQUEST_CANCELLED
    assert ids.cancel(pending.uid, "again") is None
    assert isinstance(ids.receive(response(up["id"]), None), Unknown)  # the upstream answered anyway
    assert not ids.pending


def test_a_cancel_after_the_response_does_nothing() -> None:
    ids: IdMap[Pending] = IdMap()
    pending, up = start(ids, call(9), Client())
    ids.receive(response(up["id"]), None)
    assert ids.cancel(pending.uid, None) is None
    assert ids.expire(pending.uid, "late") is None and ids.abandon(pending.uid, "gone") is None


def test_a_cancel_without_reason_sends_none() -> None:
    ids: IdMap[Pending] = IdMap()
    pending, _ = start(ids, call(1), Client())
    assert ids.cancel(pending.uid, None) == {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": pending.uid},
    }


def test_find_maps_a_clients_own_request_id_to_ours_and_never_to_another_clients() -> None:
    ids: IdMap[Pending] = IdMap()
    a, b = Client(), Client()
    pa, _ = start(ids, call(1), a)
    pb, _ = start(ids, call(1), b)
    ps, _ = start(ids, call("x"), b)
    assert ids.find(a, 1) == pa.uid and ids.find(b, 1) == pb.uid and ids.find(b, "x") == ps.uid
    assert ids.find(a, "1") is None and ids.find(a, True) is None and ids.find(a, 1.0) is None
    assert ids.find(a, "x") is None and ids.find(Client(), 1) is None
    ids.cancel(pb.uid, None)
    assert ids.find(b, 1) is None and ids.find(a, 1) == pa.uid


def test_a_timeout_ends_the_request_with_its_error_and_cancels_upstream() -> None:
    ids: IdMap[Pending] = IdMap()
    pending, _ = start(ids, call(1), Client())
    notice = ids.expire(pending.uid, "up: request timed out after 2s")
    assert notice is not None and notice["params"] == {
        "requestId": pending.uid,
        "reason": "Request timed out",
    }
    assert pending.final is not None
    assert pending.final["error"] == {"code": REQUEST_TIMEOUT, "message": "up: request timed out after 2s"}


def test_abandon_only_tells_the_upstream() -> None:
    ids: IdMap[Pending] = IdMap()
    pending, _ = start(ids, call(1), Client())
    notice = ids.abandon(pending.uid, "The client cancelled the request")
    assert notice is not None and notice["params"]["requestId"] == pending.uid
    assert pending.final is None and not ids.pending
    assert ids.forget(pending.uid) is None


def test_close_ends_every_request_with_an_error_of_its_own() -> None:
    ids: IdMap[Pending] = IdMap()
    ps = [start(ids, call(n), Client())[0] for n in range(3)]
    ids.receive(server_request(7), None)
    ids.close(CONNECTION_CLOSED, "up: upstream unavailable (exited)")
    finals = [p.final for p in ps]
    assert all(f is not None and f["error"]["code"] == CONNECTION_CLOSED for f in finals)
    assert len({id(f) for f in finals}) == 3  # each waiter sets its own client id on its own dict
    assert not ids.pending and not ids.server_requests
    assert not ids.answer(response(7))


# -- what the upstream initiates -------------------------------------------------------------------


def test_a_server_request_is_answered_once_and_never_after_the_server_cancelled_it() -> None:
    ids: IdMap[Pending] = IdMap()
    event = ids.receive(server_request(1), None)
    assert isinstance(event, ServerRequest) and event.related is None
    assert isinstance(ids.receive(server_request("1"), None), ServerRequest)  # "1" is another id
    assert ids.answer(response(1)) and not ids.answer(response(1))
    cancelled = ids.receive(server_cancel("1"), None)
    assert isinstance(cancelled, Notification)  # the owner still hears of it (it stops asking the client)
    assert not ids.answer(response("1"))
    assert not ids.answer(response(None)) and not ids.answer({"id": [1]}) and not ids.answer({})


def test_a_server_request_id_still_in_use_is_invalid_and_a_finished_one_may_be_reused() -> None:
    ids: IdMap[Pending] = IdMap()
    assert isinstance(ids.receive(server_request(3), None), ServerRequest)
    duplicate = ids.receive(server_request(3, "sampling/createMessage"), None)
    assert isinstance(duplicate, Invalid) and "still in use" in duplicate.reason
    assert ids.answer(response(3))
    assert isinstance(ids.receive(server_request(3), None), ServerRequest)


def test_server_request_ids_are_remembered_up_to_a_bound() -> None:
    ids: IdMap[Pending] = IdMap()
    for n in range(SERVER_REQUESTS_TRACKED + 10):
        ids.receive(server_request(n), None)
    assert len(ids.server_requests) == SERVER_REQUESTS_TRACKED
    assert not ids.answer(response(0))  # the oldest were forgotten
    assert ids.answer(response(SERVER_REQUESTS_TRACKED + 9))


@pytest.mark.parametrize("rid", [[1], {"a": 1}, None, 1.5, True])
def test_a_server_cancel_with_a_hostile_request_id_is_passed_on_and_harmless(rid: Any) -> None:
    ids: IdMap[Pending] = IdMap()
    ids.receive(server_request(1), None)
    assert isinstance(ids.receive(server_cancel(rid), None), Notification)
    assert ids.answer(response(1))


def test_an_initiated_message_belongs_to_the_request_whose_stream_carried_it() -> None:
    ids: IdMap[Pending] = IdMap()
    a, b = Client(), Client()
    pa, _ = start(ids, call(1), a)
    pb, _ = start(ids, call(2), b)
    note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}}
    event = ids.receive(note, pa.uid)
    assert isinstance(event, Notification) and event.related is pa
    event = ids.receive(server_request("s"), pb.uid)
    assert isinstance(event, ServerRequest) and event.related is pb
    event = ids.receive(note, None)  # two clients have requests in flight: cannot tell
    assert isinstance(event, Notification) and event.related is None
    assert ids.related("1") is None and ids.related(True) is None


def test_without_a_stream_an_initiated_message_belongs_to_the_only_client_in_flight() -> None:
    ids: IdMap[Pending] = IdMap()
    a = Client()
    own, _ = start(ids, call(0))  # the proxy's own request does not count
    first, _ = start(ids, call(1), a)
    latest, _ = start(ids, call(2), a)
    assert ids.related(None) is latest
    assert ids.related(own.uid) is latest  # the stream of the proxy's own request: no client there
    assert ids.related(first.uid) is first
    ids.forget(first.uid)
    ids.forget(latest.uid)
    assert ids.related(None) is None


# -- hostile shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        None,
        [],
        "text",
        42,
        [{"jsonrpc": "2.0", "id": 1, "result": {}}],  # a batch
        {},
        {"jsonrpc": "2.0", "id": 1},  # neither result nor error
        {"jsonrpc": "2.0", "id": 1.5, "result": {}},
        {"jsonrpc": "2.0", "id": True, "result": {}},
        {"jsonrpc": "2.0", "id": [1], "result": {}},
        {"jsonrpc": "2.0", "id": {"x": 1}, "method": "roots/list"},
        {"jsonrpc": "2.0", "method": 7},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": [1, 1]},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": "p"},
    ],
)
def test_a_message_with_an_envelope_that_cannot_be_relied_on_is_invalid_and_changes_nothing(msg: Any) -> None:
    ids: IdMap[Pending] = IdMap()
    pending, _ = start(ids, call(1, token=1), Client())
    event = ids.receive(copy.deepcopy(msg), pending.uid)
    assert isinstance(event, Invalid) and event.reason
    assert ids.pending == {pending.uid: pending} and pending.final is None and pending.items is None
    assert not ids.server_requests


def test_an_error_response_correlates_like_a_result() -> None:
    ids: IdMap[Pending] = IdMap()
    pending, up = start(ids, call(1), Client())
    error = {"jsonrpc": "2.0", "id": up["id"], "error": {"code": -32601, "message": "nope"}}
    event = ids.receive(error, None)
    assert isinstance(event, Answered) and event.pending is pending and event.msg is error


# -- the queue of one request ----------------------------------------------------------------------


def test_a_request_queues_related_messages_up_to_its_limit_then_ends_with_an_error() -> None:
    pending = Pending(Origin(Client()), limit=2)
    for n in range(2):
        pending.put(progress(n))
    assert pending.items is not None and len(pending.items) == 2 and not pending.overflowed
    pending.put(progress(3))
    assert pending.overflowed and not pending.items
    assert pending.final is not None and "maxRequestQueue" in pending.final["error"]["message"]
    pending.put(progress(4))
    pending.finish(response(1))  # the first final counts
    assert not pending.items and "error" in pending.final


def test_wake_is_called_for_each_new_thing_to_take() -> None:
    woken: list[str] = []

    class Watched(Pending):
        __slots__ = ()

        def _wake(self) -> None:
            woken.append("x")

    ids: IdMap[Watched] = IdMap()
    pending = Watched(Origin(Client()))
    ids.start(call(1, token="t"), pending)
    event = ids.receive(progress(pending.uid), None)
    assert isinstance(event, Progress)
    event.pending.put(event.msg)
    answered = ids.receive(response(pending.uid), None)
    assert isinstance(answered, Answered)
    answered.pending.finish(answered.msg)
    answered.pending.finish(response(2))  # no second wake: already final
    assert woken == ["x", "x"]
