"""Cluster mode, streams across replicas: a client that only listens, through a replica other than its
session's owner, keeps its session alive past the idle timeout (once it stops listening, the timeout
applies); a POST's event-stream answer whose relaying replica dies resumes with `Last-Event-ID` on another.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from cluster_kit import ACCEPT, GetStream, announce, list_status, new_session, raw_post, running_cluster

from harness import mcp_client

pytestmark = pytest.mark.anyio

IDLE_SECONDS = 2


async def test_a_client_listening_through_another_replica_is_not_ended_by_its_owners_idle_timeout(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, 2, {"idleTimeout": f"{IDLE_SECONDS}s"}) as (url, _balancer, replicas):
        owner, other = replicas
        mcp_owner, mcp_other = owner.url("/everything/mcp"), other.url("/everything/mcp")
        async with httpx2.AsyncClient(timeout=20, headers={"host": url.split("//")[1]}) as http:
            session = await new_session(http, mcp_owner)
            # the session's first GET stream is relayed to its owner, which starts its Redis stream
            first = GetStream(http, mcp_other, session)
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    await tg.start(first.read, 1)
                    await announce(http, mcp_owner, session, "tools")
            # from now on `other` serves the session's GET stream from Redis: the owner holds no stream
            listening = GetStream(http, mcp_other, session)
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    await tg.start(listening.read, 1)
                    # only listening, for several idle timeouts: no request reaches the owner meanwhile
                    await anyio.sleep(4 * IDLE_SECONDS)
                    await announce(http, mcp_owner, session, "prompts")
            assert listening.status == 200
            assert [m for _, m in listening.events] == ["notifications/prompts/list_changed"]
            assert not any("idle for more than" in line for line in owner.lines)
            # nobody listens now: the listening key expires and the idle timeout ends the session
            owner.wait_for_line(rf"ending session {session}, idle for more than", timeout=60)
            assert await list_status(http, mcp_other, session) == 404


async def sse_events(response: httpx2.Response) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    from mcpmux.upstream.sse_events import iter_events

    async for event in iter_events(response.aiter_raw()):
        yield event.id, json.loads(event.data)


async def test_a_post_answer_resumes_with_last_event_id_on_another_replica_after_its_relay_is_killed(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, 3) as (url, _balancer, replicas):
        owner, relay, other = (r.url("/everything/mcp") for r in replicas)
        async with httpx2.AsyncClient(timeout=20, headers={"host": url.split("//")[1]}) as http:
            session = await new_session(http, owner, {"sampling": {}})
            headers = {"accept": ACCEPT, "authorization": "Bearer tok-a", "mcp-session-id": session}
            call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
            call["params"] = {"name": "ask_sampling", "arguments": {"prompt": "resume me"}}
            with anyio.fail_after(30):
                async with http.stream("POST", relay, json=call, headers=headers) as response:
                    assert response.headers["content-type"].startswith("text/event-stream")
                    # the server's sampling request, on the POST's own stream
                    event_id, asked = await anext(sse_events(response))
                    replicas[1].stop(signal.SIGKILL)  # the replica relaying the answer dies
            assert asked["method"] == "sampling/createMessage" and event_id is not None
            assert event_id.startswith("p.")
            # the call waits for the answer, which the client sends to a live replica
            sampled = {"role": "assistant", "content": {"type": "text", "text": "resumed"}, "model": "m"}
            answer = {"jsonrpc": "2.0", "id": asked["id"], "result": sampled}
            assert (await raw_post(http, other, answer, session)).status_code == 202
            stranger = {**headers, "accept": "text/event-stream", "last-event-id": event_id}
            stranger["authorization"] = "Bearer tok-b"
            assert (await http.get(other, headers=stranger)).status_code == 404
            resumed: list[tuple[str | None, dict[str, Any]]] = []
            resume = {**headers, "accept": "text/event-stream", "last-event-id": event_id}
            with anyio.fail_after(30):
                async with http.stream("GET", other, headers=resume) as response:
                    assert response.status_code == 200
                    resumed = [event async for event in sse_events(response)]  # ends after the answer
            ((final_id, final),) = resumed
            assert final["id"] == 7 and "resumed" in final["result"]["content"][0]["text"]
            assert final_id is not None and final_id.startswith(event_id.rsplit(".", 1)[0])


async def test_an_sdk_client_whose_post_streams_replica_dies_resumes_it_through_the_balancer(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, 3) as (url, balancer, replicas):
        owner, relay, other = (r.base for r in replicas)
        balancer.backends[:] = [owner]  # the session (and its GET stream) starts on the first replica
        Sampled = types.CreateMessageResult

        async def sampling(context: Any, params: types.CreateMessageRequestParams) -> Sampled:
            replicas[1].stop(signal.SIGKILL)  # the replica relaying the call's answer dies meanwhile
            text = types.TextContent(type="text", text="answered after a replica died")
            return Sampled(role="assistant", content=text, model="m")

        endpoint = f"{url}/everything/mcp"
        with anyio.fail_after(60):
            async with mcp_client(endpoint, token="tok-a", sampling_callback=sampling) as session:
                while not balancer.methods["GET"]:  # the SDK opens its GET stream in the background
                    assert (await session.list_tools()).tools
                balancer.backends[:] = [relay, other]  # the call to the second; after its death, the third
                balancer.turn = 0
                result = await session.call_tool("ask_sampling", {"prompt": "hi"})
        assert not result.is_error
        assert "answered after a replica died" in result.content[0].text  # type: ignore[union-attr]
        assert any(event_id.startswith("p.") for event_id in balancer.resumed)  # it resumed the POST's stream
