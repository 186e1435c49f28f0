"""Cluster mode, GET streams across replicas: a client that only listens, through a replica other than its
session's owner, keeps its session alive past the idle timeout; once it stops listening, the timeout applies.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest
from cluster_kit import GetStream, announce, list_status, new_session, running_cluster

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
