"""Property-based fuzzing of the protocol-level parts, in process (fast): what clients POST and what
upstreams send, generated with every JSON type in every field, batches, huge and deep values (issue 12).

`MCPMUX_FUZZ_EXAMPLES=N` runs N examples per property instead of the default few hundred.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzz_kit import fuzz_settings, json_values, messages, payloads
from loopback import Recorder
from mcpmux.config.parse import parse_config
from mcpmux.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    STRING_FIELDS,
    MessageError,
    check_fields,
    is_key,
    parse_message,
    progress_token,
)
from mcpmux.relay.dispatch import Dispatch
from mcpmux.relay.server_route import ServerRoute
from mcpmux.upstream.runtime import ServerRuntime
from mcpmux.upstream.session import UpstreamSession
from mcpmux.web.asgi import encode, event_of

CONFIG = {
    "mcpProxy": {"baseURL": "http://127.0.0.1:1", "addr": "127.0.0.1:1"},
    "mcpServers": {"up": {"command": "unused", "options": {"maxSessionQueue": 5, "maxRequestQueue": 5}}},
}
NAMED = ("tools/call", "prompts/get")


@fuzz_settings(200)
@given(payloads)
def test_fuzz_a_client_payload_is_accepted_with_usable_fields_or_refused_with_a_json_rpc_code(
    payload: Any,
) -> None:
    try:
        msg = parse_message(json.dumps(payload).encode())
        if "method" in msg:
            check_fields(msg)
    except MessageError as exc:
        assert exc.code in (PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS)
        return
    hash(msg.get("id"))  # every id mcpmux may look up is hashable
    if "method" not in msg:
        return
    assert "id" not in msg or is_key(msg["id"])
    token = progress_token(msg)
    assert token is None or is_key(token)
    params = msg.get("params") or {}
    if msg["method"] in NAMED:
        assert isinstance(params["name"], str)
    for field in STRING_FIELDS.get(msg["method"], ()):  # the fields mcpmux reads for this method
        assert params.get(field) is None or isinstance(params[field], str)


class Origin:
    """The downstream request the upstream call is for: writes what it gets as the faces would."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.request_id = "c1"
        self.written: list[bytes] = []

    async def emit(self, msg: dict[str, Any]) -> None:
        self.written.append(event_of(msg))


async def relay_through(upstream_messages: list[Any], related: Any) -> tuple[dict[str, Any], Any]:
    config = parse_config(json.dumps(CONFIG), "config.json", environ={}, expand_env=False)[0]
    runtime = ServerRuntime(config.servers["up"], config)
    route = ServerRoute(runtime, config)
    client = route.new_session(None)
    client.initialized = True
    client.subscriptions.add("file:///a")
    Dispatch.of(runtime).attach(client)
    session = UpstreamSession("up", runtime, queue_limit=5)
    conn = session.connection = Recorder()
    call = {
        "jsonrpc": "2.0",
        "id": "c1",
        "method": "tools/call",
        "params": {"name": "t", "_meta": {"progressToken": 3}},
    }
    task = asyncio.create_task(session.request(call, Origin(client), 5))
    await conn.event.wait()
    uid = conn.sent[0]["id"]
    for msg in upstream_messages:
        session.receive(copy.deepcopy(msg), uid if related is True else related)  # never raises
    session.receive({"jsonrpc": "2.0", "id": uid, "result": {"ok": True}}, uid)
    answer = await asyncio.wait_for(task, 5)
    return answer, client


loose_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)


@fuzz_settings(100)
@given(
    st.lists(st.one_of(messages, loose_objects, json_values), max_size=6),
    st.one_of(st.just(True), st.none(), json_values),
)
def test_fuzz_upstream_messages_never_break_the_session_and_the_request_gets_one_answer(
    upstream_messages: list[Any], related: Any
) -> None:
    answer, client = asyncio.run(relay_through(upstream_messages, related))
    assert answer["id"] == "c1"
    assert "result" in answer or "error" in answer
    encode(answer)  # what the face writes never fails
    assert len(client.outbox.items) <= client.outbox.limit
