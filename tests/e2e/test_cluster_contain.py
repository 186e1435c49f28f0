"""Containment of the cluster's relay hook: Redis going away in the middle of what a replica does for
a request (a GET stream it pumps into Redis, a POST answer it records, a session ending) gives clean
answers and log lines, never a traceback, a 500 or a dead replica."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx2
import pytest
from cluster_kit import GetStream, list_status, new_session, running_cluster

pytestmark = pytest.mark.anyio
BOUND_SECONDS = 30


async def test_redis_going_away_under_open_streams_and_requests_leaves_clean_answers(tmp_path: Path) -> None:
    import redis

    with running_cluster(tmp_path, 2) as (url, _balancer, replicas):
        async with httpx2.AsyncClient(timeout=20, headers={"host": url.split("//")[1]}) as http:
            owner, other = (r.url("/everything/mcp") for r in replicas)
            session = await new_session(http, owner)
            stream = GetStream(http, owner, session)
            with anyio.fail_after(BOUND_SECONDS):
                async with anyio.create_task_group() as tg:
                    await tg.start(stream.read, 1)  # the owner pumps the session's stream into Redis
                    assert stream.status == 200
                    redis_url = json.loads(replicas[0].config_path.read_text())["mcpProxy"]["cluster"][
                        "redis"
                    ]
                    redis.Redis(unix_socket_path=redis_url.removeprefix("unix://")).shutdown(nosave=True)
                    again = GetStream(http, owner, session)
                    await again.read(1)
                    assert again.status in (200, 503)
                    assert await list_status(http, owner, session) == 200
                    headers = {"authorization": "Bearer tok-a", "mcp-session-id": session}
                    ended = await http.delete(owner, headers=headers)  # ends the pump: its keys cannot go
                    assert ended.status_code == 200, ended.text
                    tg.cancel_scope.cancel()
            assert await list_status(http, owner, session) == 404  # the replica died here before
            fresh = await new_session(http, owner)
            assert await list_status(http, owner, fresh) == 200  # the replica goes on serving
            assert await list_status(http, other, fresh) in (502, 503)
            replicas[0].wait_for_line(r"an ended session's stream stays until it expires", BOUND_SECONDS)
    for (
        replica
    ) in replicas:  # stopped with Redis gone: a clean exit (it ended with "unexpected error" before)
        assert replica.process.returncode == 0, replica.log[-4000:]
        assert "Traceback" not in replica.log and "unexpected error" not in replica.log, replica.log[-4000:]
        print("FULLLOG", replica.log[-6000:])
