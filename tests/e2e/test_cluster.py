"""Cluster mode: three replicas on a real redis-server behind a round-robin balancer, no sticky sessions.

Each HTTP request of a client goes to the next replica; the ones that do not own the session relay it
to the owner (sealed session ids name it). A replica killed with SIGKILL takes only its own sessions:
their clients get 404 and start again on a live replica.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from cluster_kit import (
    KINDS,
    SECRET,
    GetStream,
    RoundRobin,
    announce,
    list_status,
    new_session,
    replica_config,
    running_cluster,
    running_redis,
)

from harness import ProxyProcess, fixture_server, mcp_client

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RoundRobin, list[ProxyProcess]]]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), 3) as running:
        yield running


async def test_an_sdk_client_on_every_replica_gets_tools_progress_sampling_elicitation_subscriptions_streams(
    cluster: tuple[str, RoundRobin, list[ProxyProcess]],
) -> None:
    url, balancer, replicas = cluster
    progress: list[float] = []
    changed, updated = anyio.Event(), anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.set()

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "across"})

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        text = types.TextContent(type="text", text="sampled across replicas")
        return types.CreateMessageResult(role="assistant", content=text, model="m")

    balancer.hits.clear()
    with anyio.fail_after(40):
        async with mcp_client(
            f"{url}/everything/mcp",
            token="tok-a",
            message_handler=on_message,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
        ) as session:
            tools = await session.list_tools()
            assert "slow" in {tool.name for tool in tools.tools}
            result = await session.call_tool("slow", {"seconds": 0.2}, progress_callback=on_progress)
            assert not result.is_error and progress == [1, 2]
            # the server's request rides the forwarded POST stream; the client's answer is a new POST
            sampled = await session.call_tool("ask_sampling", {"prompt": "hi"})
            assert "sampled across replicas" in sampled.content[0].text
            elicited = await session.call_tool("ask_elicitation", {"message": "Who?"})
            assert json.loads(elicited.content[0].text)["content"] == {"name": "across"}
            await session.subscribe_resource("test://watched-resource")
            await session.call_tool("touch_resource", {"uri": "test://watched-resource"})
            await updated.wait()
            # a notification outside any request: on the GET stream, which another replica relays
            await session.call_tool("notify_list_changed", {"standalone": True})
            await changed.wait()
            for _ in range(3):
                assert (await session.list_tools()).tools
    assert set(balancer.hits) == {r.base for r in replicas}  # every replica served some of it


async def test_a_2026_client_needs_no_affinity_and_its_mrtr_retry_reaches_the_suspended_call(
    cluster: tuple[str, RoundRobin, list[ProxyProcess]],
) -> None:
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    url, balancer, replicas = cluster
    asked: list[str] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)  # type: ignore[union-attr]
        text = types.TextContent(type="text", text="sampled in 2026")
        return types.CreateMessageResult(role="assistant", content=text, model="m")

    balancer.hits.clear()
    with anyio.fail_after(40):
        async with httpx2.AsyncClient(headers={"authorization": "Bearer tok-a"}, timeout=30) as http:
            transport = streamable_http_client(f"{url}/everything/mcp", http_client=http)
            async with Client(transport, mode="2026-07-28", sampling_callback=sampling) as client:
                for _ in replicas:
                    assert "slow" in {tool.name for tool in (await client.list_tools()).tools}
                for round_ in range(len(replicas)):  # the retry lands on another replica than the call
                    result = await client.call_tool("ask_sampling", {"prompt": f"round {round_}"})
                    assert not result.is_error and "sampled in 2026" in result.content[0].text  # type: ignore[union-attr]
    assert asked == [f"round {n}" for n in range(len(replicas))]
    assert set(balancer.hits) == {r.base for r in replicas}


async def test_a_legacy_sse_clients_posts_reach_the_replica_holding_its_stream(
    cluster: tuple[str, RoundRobin, list[ProxyProcess]],
) -> None:
    url, balancer, replicas = cluster
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    balancer.hits.clear()
    with anyio.fail_after(40):
        async with mcp_client(f"{url}/everything/sse", transport="sse", token="tok-a") as session:
            for _ in replicas:
                assert "slow" in {tool.name for tool in (await session.list_tools()).tools}
            result = await session.call_tool("slow", {"seconds": 0.2}, progress_callback=on_progress)
            assert not result.is_error and progress == [1, 2]
    assert set(balancer.hits) == {r.base for r in replicas}


async def test_the_cluster_view_lists_every_replica_for_operators_only(
    cluster: tuple[str, RoundRobin, list[ProxyProcess]],
) -> None:
    url, _balancer, replicas = cluster
    async with httpx2.AsyncClient(timeout=20) as http:
        assert (await http.get(f"{url}/_cluster")).status_code == 401
        view = (await http.get(f"{url}/_cluster", headers={"authorization": "Bearer tok-a"})).json()
    members = view["replicas"]
    assert sorted(m["url"] for m in members) == sorted(r.base for r in replicas)
    assert [m["replica"] for m in members if m["self"]] == [view["replica"]]
    assert all({"forwarded", "sessions", "streams"} <= set(m["stats"]) for m in members)


def test_a_replica_that_cannot_reach_redis_exits_with_an_error_naming_no_secret(tmp_path: Path) -> None:
    config = replica_config(f"unix://{tmp_path}/absent.sock", "http://127.0.0.1:1")
    replica = ProxyProcess(config, tmp_path)
    try:
        assert replica.process.wait(30) == 1
        replica.wait_for_line(r"Exiting: cluster mode: cannot reach Redis")
        assert SECRET not in replica.log
    finally:
        replica.stop()


def owner_of(session: str, replicas: list[ProxyProcess]) -> ProxyProcess:
    replica_id = session.split(".")[0]
    (owner,) = [r for r in replicas if any(f"replica {replica_id} registered" in line for line in r.lines)]
    return owner


async def test_sessions_are_bound_to_their_token_and_a_forged_id_is_not_found_on_any_replica(
    cluster: tuple[str, RoundRobin, list[ProxyProcess]],
) -> None:
    url, _balancer, replicas = cluster
    endpoint = f"{url}/everything/mcp"
    async with httpx2.AsyncClient(timeout=20) as http:
        session = await new_session(http, endpoint)
        for _ in replicas:  # each request on the next replica
            assert await list_status(http, endpoint, session) == 200
            assert await list_status(http, endpoint, session, token="tok-b") == 404
        replica_id, random, mac = session.split(".")
        forged = f"{replica_id}.{random}.{'0' * len(mac)}"
        for _ in replicas:
            assert await list_status(http, endpoint, forged) == 404


async def test_a_killed_replica_takes_only_its_own_sessions_whose_clients_start_again(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, 3) as (url, _balancer, replicas):
        endpoint = f"{url}/everything/mcp"
        async with httpx2.AsyncClient(timeout=20) as http:
            sessions = [await new_session(http, endpoint) for _ in replicas]  # round-robin: one each
            owners = [owner_of(s, replicas) for s in sessions]
            assert len(set(map(id, owners))) == 3
            victim = owners[0]
            victim.stop(signal.SIGKILL)
            for _ in replicas:  # whichever live replica gets it: 404, the session is gone
                assert await list_status(http, endpoint, sessions[0]) == 404
            for session in sessions[1:]:
                for _ in replicas:
                    assert await list_status(http, endpoint, session) == 200
            again = await new_session(http, endpoint)
            assert owner_of(again, replicas) is not victim
            for _ in replicas:
                assert await list_status(http, endpoint, again) == 200


async def test_a_get_stream_resumes_with_last_event_id_on_another_replica_after_its_replica_is_killed(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, 3) as (url, _balancer, replicas):
        # straight to chosen replicas, with the public Host a balancer would pass on
        async with httpx2.AsyncClient(timeout=20, headers={"host": url.split("//")[1]}) as http:
            owner = replicas[0]
            session = await new_session(http, owner.url("/everything/mcp"))
            first, second = replicas[1], replicas[2]  # neither holds the session
            stream = GetStream(http, first.url("/everything/mcp"), session)
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    await tg.start(stream.read, 2)
                    for kind in KINDS[:2]:
                        await announce(http, owner.url("/everything/mcp"), session, kind)
            assert stream.status == 200
            assert [m for _, m in stream.events] == [f"notifications/{k}/list_changed" for k in KINDS[:2]]
            first_id = stream.events[0][0]
            first.stop(signal.SIGKILL)  # the replica serving the stream dies; the session lives on
            await announce(http, owner.url("/everything/mcp"), session, KINDS[2])
            resumed = GetStream(http, second.url("/everything/mcp"), session, last_event_id=first_id)
            with anyio.fail_after(30):
                await resumed.read(2)
            # from the event after the one named on: the second again, and the one sent while none listened
            assert resumed.events == [
                stream.events[1],
                (resumed.events[1][0], "notifications/resources/list_changed"),
            ]
            # without Last-Event-ID a new stream gets what comes next (opened first: the resumed stream's
            # close may not have reached its replica yet on a loaded machine)
            fresh = GetStream(http, owner.url("/everything/mcp"), session)
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    await tg.start(fresh.read, 1)
                    await announce(http, owner.url("/everything/mcp"), session, KINDS[0])
            assert [m for _, m in fresh.events] == ["notifications/tools/list_changed"]
            refused = GetStream(http, second.url("/everything/mcp"), session)
            refused.headers["authorization"] = "Bearer tok-b"
            await refused.read(1)
            assert refused.status == 404


@contextmanager
def served_config(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The config at an http URL on 127.0.0.1 (what every replica loads); change `holder["body"]`."""
    holder = {"body": json.dumps(document).encode()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(holder["body"])))
            self.end_headers()
            self.wfile.write(holder["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/config.json", holder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_reload_on_one_replica_reloads_every_replica(tmp_path: Path) -> None:
    with running_redis() as redis_url:
        document = replica_config(redis_url, "http://127.0.0.1:9")
        document["mcpProxy"]["allowedHosts"] = ["*"]
        with served_config(document) as (url, holder), ExitStack() as stack:
            replicas = []
            for index in range(2):
                home = tmp_path / f"r{index}"
                home.mkdir()
                replica = ProxyProcess({}, home, extra_args=("--config", url))
                stack.callback(replica.stop)
                replicas.append(replica)
            for replica in replicas:
                replica.wait_ready()
                replica.wait_for_line(r"Cluster: replica \w+ registered")
            document["mcpServers"]["added"] = fixture_server("added_")
            holder["body"] = json.dumps(document).encode()
            replicas[0].process.send_signal(signal.SIGHUP)  # only this one is told
            for replica in replicas:
                replica.wait_for_line(r"Reloaded config from .*added added")
            replicas[1].wait_for_line(r"Reloading config \(replica \w+ reloaded its config\)")
            assert not any("reloaded its config" in line for line in replicas[0].lines)


async def test_with_redis_gone_a_replica_keeps_its_own_sessions_and_refuses_what_needs_redis(
    tmp_path: Path,
) -> None:
    import redis

    with running_cluster(tmp_path, 2) as (url, _balancer, replicas):
        async with httpx2.AsyncClient(timeout=20, headers={"host": url.split("//")[1]}) as http:
            owner, other = (r.url("/everything/mcp") for r in replicas)
            session = await new_session(http, owner)
            redis_url = json.loads(replicas[0].config_path.read_text())["mcpProxy"]["cluster"]["redis"]
            redis.Redis(unix_socket_path=redis_url.removeprefix("unix://")).shutdown(nosave=True)
            assert await list_status(http, owner, session) == 200  # its own session: no Redis needed
            elsewhere = await new_session(http, other)  # a new session needs no Redis either
            assert await list_status(http, owner, elsewhere) == 503  # where is its owner? unknown now
            stream = GetStream(http, other, session)
            await stream.read(1)
            assert stream.status == 503
            assert await list_status(http, owner, session) == 200
            assert all(replica.process.poll() is None for replica in replicas)
