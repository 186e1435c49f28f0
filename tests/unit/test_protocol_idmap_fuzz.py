"""The id map under random interleavings of clients, answers, progress, cancels and hostile messages."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzz_kit import fuzz_settings, messages
from mcpmux.protocol.idmap import Answered, IdMap, Invalid, Pending, Progress, ServerRequest, Unknown

CLIENTS = 2
CLIENT_IDS = (1, "1", 2)  # shared by every client, on purpose: ids of different clients clash


class Origin:
    """A downstream request of one client."""

    def __init__(self, client: object) -> None:
        self.client = client


started_ops = st.tuples(
    st.just("start"), st.integers(0, CLIENTS - 1), st.sampled_from(CLIENT_IDS), st.booleans()
)
answer_ops = st.tuples(st.sampled_from(["respond", "progress", "expire"]), st.integers(0, 30))
cancel_ops = st.tuples(
    st.just("cancel"), st.integers(0, CLIENTS - 1), st.sampled_from((*CLIENT_IDS, True, 1.0))
)
server_ops = st.tuples(
    st.sampled_from(["server_request", "server_cancel", "answer"]), st.sampled_from((1, "1", 2))
)
hostile_ops = st.tuples(st.just("hostile"), messages)
operations = st.lists(st.one_of(started_ops, answer_ops, cancel_ops, server_ops, hostile_ops), max_size=40)


class Model:
    """What the map must agree with: every request started, by our id, and which have ended."""

    def __init__(self) -> None:
        self.ids: IdMap[Pending] = IdMap()
        self.clients = [object() for _ in range(CLIENTS)]
        self.started: list[tuple[int, Pending, object, Any, Any]] = []  # uid, pending, client, id, token
        self.ended: set[int] = set()
        self.asked: set[Any] = set()  # server request ids received and not answered or cancelled

    def run(self, op: tuple[Any, ...]) -> None:
        getattr(self, op[0])(*op[1:])
        live = {uid for uid, *_ in self.started if uid not in self.ended}
        assert set(self.ids.pending) == live
        for uid, pending, *_ in self.started:
            assert (pending.final is None) == (uid in live)

    def start(self, who: int, client_id: Any, with_token: bool) -> None:
        client = self.clients[who]
        token = f"t-{who}-{client_id}" if with_token else None
        params: dict[str, Any] = {"name": "echo"}
        if token is not None:
            params["_meta"] = {"progressToken": token}
        pending = Pending(Origin(client))
        up = self.ids.start(
            {"jsonrpc": "2.0", "id": client_id, "method": "tools/call", "params": params}, pending
        )
        assert up["id"] not in {uid for uid, *_ in self.started}  # never reused, whoever asks
        if token is not None:
            assert up["params"]["_meta"]["progressToken"] == up["id"]
        self.started.append((up["id"], pending, client, client_id, token))

    def _pick(self, n: int) -> tuple[int, Pending, object, Any, Any] | None:
        return self.started[n % len(self.started)] if self.started and n < 2 * len(self.started) else None

    def respond(self, n: int) -> None:
        picked = self._pick(n)
        uid = picked[0] if picked is not None else 1000 + n
        event = self.ids.receive({"jsonrpc": "2.0", "id": uid, "result": {"n": n}}, None)
        if picked is None or uid in self.ended:
            assert isinstance(event, Unknown)
            return
        assert isinstance(event, Answered) and event.pending is picked[1]
        event.pending.finish(event.msg)
        self.ended.add(uid)

    def progress(self, n: int) -> None:
        picked = self._pick(n)
        uid = picked[0] if picked is not None else 1000 + n
        msg = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": uid, "progress": n},
        }
        event = self.ids.receive(msg, None)
        if picked is None or uid in self.ended or picked[4] is None:
            assert isinstance(event, Unknown)
            return
        assert isinstance(event, Progress) and event.pending is picked[1]
        assert event.msg["params"] == {"progressToken": picked[4], "progress": n}  # the client's own token

    def expire(self, n: int) -> None:
        picked = self._pick(n)
        if picked is None:
            return
        notice = self.ids.expire(picked[0], "timed out")
        assert (notice is None) == (picked[0] in self.ended)
        self.ended.add(picked[0])

    def cancel(self, who: int, client_id: Any) -> None:
        client = self.clients[who]
        uid = self.ids.find(client, client_id)
        mine = [
            s[0]
            for s in self.started
            if s[2] is client
            and s[3] == client_id
            and type(s[3]) is type(client_id)
            and s[0] not in self.ended
        ]
        assert (uid is None) == (not mine) and (uid is None or uid in mine)  # never another client's
        if uid is not None:
            notice = self.ids.cancel(uid, "stop")
            assert notice is not None and notice["params"]["requestId"] == uid
            self.ended.add(uid)

    def server_request(self, rid: Any) -> None:
        event = self.ids.receive({"jsonrpc": "2.0", "id": rid, "method": "roots/list"}, None)
        assert isinstance(event, Invalid if rid in self.asked else ServerRequest)
        self.asked.add(rid)

    def server_cancel(self, rid: Any) -> None:
        self.ids.receive(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}}, None
        )
        self.asked.discard(rid)

    def answer(self, rid: Any) -> None:
        assert self.ids.answer({"jsonrpc": "2.0", "id": rid, "result": {}}) == (rid in self.asked)
        self.asked.discard(rid)

    def hostile(self, msg: Any) -> None:
        if isinstance(msg, dict) and "method" not in msg and type(msg.get("id")) is int:
            return  # a well-formed response to one of our ids is `respond`'s case
        if isinstance(msg, dict) and msg.get("method") in (
            "notifications/progress",
            "notifications/cancelled",
        ):
            return  # may legitimately match: `progress` and `server_cancel` cover these
        if isinstance(msg, dict) and "method" in msg and "id" in msg:
            return  # a server request: `server_request` covers it
        before = dict(self.ids.pending)
        event = self.ids.receive(msg, None)  # never raises
        assert not isinstance(event, (Answered, Progress, ServerRequest))
        assert self.ids.pending == before


@fuzz_settings(200)
@given(operations)
def test_every_request_ends_once_and_nothing_reaches_another_client(ops: list[tuple[Any, ...]]) -> None:
    model = Model()
    for op in ops:
        model.run(op)
