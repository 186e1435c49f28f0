"""End-to-end fuzzing (issue 12): generated JSON-RPC traffic at both downstream faces of a real proxy, and
generated garbage from a real stdio upstream (tests/fixtures/hostile_server.py, driven by the test).

Each example checks that the process is up, that other sessions keep working and that a request got
exactly one well-formed answer. Examples are few by default; `MCPMUX_FUZZ_EXAMPLES=N` runs N of each.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from relay_kit import ACCEPT_BOTH, CLIENT_INFO, HANDSHAKE_VERSION, messages_of, raw_sse

from fuzz_kit import fuzz_settings, messages, payloads
from harness import FIXTURE, ProxyProcess, running_proxy

HOSTILE = Path(__file__).resolve().parent.parent / "fixtures" / "hostile_server.py"
BOUND_SECONDS = 20
LIMITS = {"requestTimeout": "10s"}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpServers": {
            "bad": {"command": sys.executable, "args": [str(HOSTILE)], "options": LIMITS},
            "good": {
                "command": sys.executable,
                "args": [str(FIXTURE), "--transport", "stdio"],
                "options": LIMITS,
            },
        }
    }
    with running_proxy(config, tmp_path_factory.mktemp("fuzz")) as running:
        yield running


class Session:
    """A synchronous raw streamable-HTTP session (hypothesis drives plain functions)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx2.Client(timeout=BOUND_SECONDS)
        self.headers = {"accept": ACCEPT_BOTH, "content-type": "application/json"}
        params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
        reply = self.post(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}))
        assert reply.status_code == 200, reply.text
        self.headers["mcp-session-id"] = reply.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = HANDSHAKE_VERSION
        assert self.post('{"jsonrpc": "2.0", "method": "notifications/initialized"}').status_code == 202

    def post(self, body: str | bytes) -> httpx2.Response:
        return self.http.post(self.url, content=body, headers=self.headers)

    def call(self, method: str, params: dict[str, Any], request_id: Any = "fuzz") -> list[dict[str, Any]]:
        reply = self.post(
            json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        )
        assert reply.status_code == 200, reply.text
        return messages_of(reply)

    def alive(self) -> None:
        (answer,) = self.call("ping", {}, "alive")
        assert answer == {"jsonrpc": "2.0", "id": "alive", "result": {}}, answer


@pytest.fixture(scope="module")
def sessions(proxy: ProxyProcess) -> dict[str, Session]:
    """The fuzzed sessions and a bystander on the same server that must keep working."""
    return {name: Session(proxy.url(f"/{path}")) for name, path in FUZZED.items()}


FUZZED = {"good": "good/mcp", "bad": "bad/mcp", "merged": "mcp", "bystander": "good/mcp"}


def is_request(payload: Any) -> bool:
    """A message the proxy must answer under its id: a well-formed JSON-RPC request."""
    return (
        isinstance(payload, dict)
        and payload.get("jsonrpc") == "2.0"
        and isinstance(payload.get("method"), str)
        and type(payload.get("id")) in (str, int)
        and (payload.get("params") is None or isinstance(payload["params"], dict))  # null: no params
    )


def answers_to(request_id: Any, received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in received if "method" not in m and m.get("id") == request_id]


def assert_well_formed(answer: dict[str, Any]) -> None:
    assert answer.get("jsonrpc") == "2.0", answer
    assert "result" in answer or "error" in answer, answer
    if "error" in answer:
        assert type(answer["error"].get("code")) is int and isinstance(answer["error"].get("message"), str)


def assert_still_serving(proxy: ProxyProcess, sessions: dict[str, Session]) -> None:
    assert proxy.process.poll() is None, proxy.log[-3000:]
    sessions["bystander"].alive()


def fuzz_streamable(proxy: ProxyProcess, sessions: dict[str, Session], target: str, payload: Any) -> None:
    reply = sessions[target].post(json.dumps(payload))
    assert reply.status_code < 500, reply.text
    if is_request(payload):
        assert reply.status_code == 200, reply.text
        received = messages_of(reply)
        (answer,) = answers_to(payload["id"], received)
        assert answer is received[-1]
        assert_well_formed(answer)
    elif reply.status_code != 202:
        body = reply.json()
        assert body["jsonrpc"] == "2.0" and type(body["error"]["code"]) is int, body
    sessions[target].alive()
    assert_still_serving(proxy, sessions)


@fuzz_settings(40)
@given(payloads)
def test_fuzz_the_streamable_http_face(
    proxy: ProxyProcess, sessions: dict[str, Session], payload: Any
) -> None:
    fuzz_streamable(proxy, sessions, "good", payload)


@fuzz_settings(30)
@given(payloads)
def test_fuzz_the_merged_endpoint(proxy: ProxyProcess, sessions: dict[str, Session], payload: Any) -> None:
    fuzz_streamable(proxy, sessions, "merged", payload)


hostile_lines = st.one_of(
    messages.map(json.dumps),
    st.text(max_size=40).map(lambda text: text.replace("\n", " ").replace("\r", " ")),
    st.sampled_from(["[1, 2]", "null", "{", '"text"', "{}"]),
)


@fuzz_settings(30)
@given(st.lists(hostile_lines, max_size=6))
def test_fuzz_a_hostile_upstream(proxy: ProxyProcess, sessions: dict[str, Session], lines: list[str]) -> None:
    received = sessions["bad"].call("tools/call", {"name": "emit", "arguments": {"lines": lines}})
    (answer,) = answers_to("fuzz", received)
    assert answer is received[-1]
    assert_well_formed(answer)
    for msg in received[:-1]:  # what was relayed before it is JSON-RPC too
        assert isinstance(msg, dict) and "method" in msg, msg
    sessions["bad"].alive()
    assert_still_serving(proxy, sessions)


@pytest.mark.anyio
@fuzz_settings(20)
@given(payloads)
async def test_fuzz_the_legacy_sse_face(
    proxy: ProxyProcess, sessions: dict[str, Session], payload: Any
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_sse(proxy.url("/good/sse")) as client:
            reply = await client.http.post(
                client.endpoint, content=json.dumps(payload), headers={"content-type": "application/json"}
            )
            assert reply.status_code < 500, reply.text
            if is_request(payload):
                assert reply.status_code == 202, reply.text
                answer = await client.receive(lambda m: "method" not in m and m.get("id") == payload["id"])
                assert_well_formed(answer)
            await client.request("ping")  # after everything the message caused: nothing more for its id
            if is_request(payload):
                assert not answers_to(payload["id"], client.seen), client.seen
    assert_still_serving(proxy, sessions)
