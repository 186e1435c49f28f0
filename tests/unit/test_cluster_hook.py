"""The cluster's relay hook, contained (web/hook.py): whatever fails inside `Cluster.intercept` is a
502 JSON-RPC error naming nothing of the failure, a log line without the path, and the connection goes on."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from functools import partial
from typing import Any

import orjson
import pytest

from mcpmux.relay.server_route import ServerRoute
from mcpmux.web.asgi import Receive, RequestHeaders, Scope, Send
from mcpmux.web.hook import intercepted

pytestmark = pytest.mark.anyio
SECRET = "relay-detail-SECRET-0123"


class FailingCluster:
    """A cluster hook that fails after sending `sent` (ASGI messages) first."""

    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.sent = sent

    async def intercept(
        self, route: Any, token: Any, scope: Scope, receive: Receive, send: Send, headers: Any
    ) -> Any:
        for message in self.sent:
            await send(message)
        raise RuntimeError(f"lost the owner at http://10.0.0.9/?key={SECRET}")


class PassingCluster:
    async def intercept(
        self, route: Any, token: Any, scope: Scope, receive: Receive, send: Send, headers: Any
    ) -> Any:
        return receive, send


def route() -> ServerRoute:
    made = ServerRoute.__new__(ServerRoute)
    made.name = "alpha"
    return made


async def call(cluster: Any) -> tuple[Any, list[MutableMapping[str, Any]]]:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"method": "POST", "path": f"/alpha/{SECRET}/mcp", "headers": []}
    hook = partial(cluster.intercept, route(), None, scope, receive, headers=RequestHeaders([]))
    served = await intercepted(hook, route(), "POST", send)
    return served, sent


async def test_a_failing_hook_is_a_502_json_rpc_error_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="mcpmux.cluster"):
        served, sent = await call(FailingCluster([]))
    assert served is None
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 502
    body = orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["code"] == -32603 and "cluster could not serve" in body["error"]["message"]
    assert SECRET not in str(sent) and SECRET not in caplog.text
    assert "Cluster: relaying a POST on alpha failed: RuntimeError" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_hook_failing_after_it_started_a_response_ends_that_response() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": []}
    part = {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True}
    served, sent = await call(FailingCluster([start, part]))
    assert served is None
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]  # no second start
    assert sent[-1] == {"type": "http.response.body", "body": b""}  # ended, not left hanging


async def test_a_hook_that_passes_the_request_on_gets_the_original_send_back() -> None:
    served, sent = await call(PassingCluster())
    assert served is not None and not sent
    _receive, send = served
    await send({"type": "http.response.start", "status": 200, "headers": []})
    assert sent and sent[0]["status"] == 200
