"""Cluster-mode test kit: a real redis-server, N mcpmux replicas on it, and a round-robin HTTP balancer.

The balancer is a tiny asyncio reverse proxy (uvicorn in a thread): each HTTP request goes to the next
replica in turn, with no stickiness, so a client's requests land on every replica. Like a load
balancer with health checks, it skips a replica that refuses connections.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from harness import ROOT, ProxyProcess, bound_socket, fixture_server
from mcpmux.cluster.forward import relay_stream
from mcpmux.web.asgi import read_body

SECRET = "s" * 16 + "e" * 16 + "cret"
ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "cluster-test", "version": "1"},
}
HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})


def bench_cluster() -> Any:
    """bench/cluster.py as a module (bench/ is not a package): its redis-server launcher is shared."""
    name = "bench_cluster"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "cluster.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@contextmanager
def running_redis() -> Iterator[str]:
    """redis-server on a unix socket in a fresh temp dir (no port to race for); killed on exit."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (scripts/setup-test-env installs Debian's package)")
    with bench_cluster().running_redis() as url:
        yield url


def replica_config(redis_url: str, public_url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "mcpProxy": {
            "baseURL": public_url,  # the balancer's, as in a real deployment (Host stays the client's)
            "cluster": {"redis": redis_url, "secret": SECRET},
            "options": {"authTokens": ["tok-a", "tok-b"], **(options or {})},
        },
        "mcpServers": {"everything": fixture_server()},
    }


@contextmanager
def running_replicas(
    redis_url: str, tmp_path: Path, count: int, public_url: str, options: dict[str, Any] | None = None
) -> Iterator[list[ProxyProcess]]:
    with ExitStack() as stack:
        replicas = []
        for index in range(count):
            home = tmp_path / f"replica-{index}"
            home.mkdir()
            replica = ProxyProcess(replica_config(redis_url, public_url, options), home)
            stack.callback(replica.stop)
            replicas.append(replica)
        for replica in replicas:
            replica.wait_ready()
            replica.wait_for_line(r"Cluster: replica \w+ registered")
        yield replicas


class RoundRobin:
    """The balancer's ASGI app: every request to the next live backend, the response streamed back."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = 0
        self.hits: Counter[str] = Counter()
        self.resumed: list[str] = []  # the Last-Event-ID of every request that carried one
        self.methods: Counter[str] = Counter()  # requests by HTTP method
        self.client: httpx2.AsyncClient | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self.client is None:  # made in the balancer's own event loop
            self.client = httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=None), trust_env=False)
        body = await read_body(receive, 1 << 22)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP]
        self.resumed += [v.decode() for k, v in headers if k.lower() == b"last-event-id"]
        self.methods[scope["method"]] += 1
        path = scope["raw_path"].decode() + (
            f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        )
        for _attempt in range(len(self.backends)):
            backend = self.backends[self.turn % len(self.backends)]
            self.turn += 1
            request = self.client.build_request(
                scope["method"], backend + path, headers=headers, content=body
            )
            try:
                response = await self.client.send(request, stream=True)
            except httpx2.TransportError:
                continue  # a dead backend (refused, or a pooled connection reset): the next one
            self.hits[backend] += 1
            try:
                await self._relay(response, receive, send)
            finally:
                await response.aclose()
            return
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"no backend"})

    @staticmethod
    async def _relay(response: httpx2.Response, receive: Any, send: Any) -> None:
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await relay_stream(response, receive, send)  # mcpmux's own chunk relay, whatever the type


@contextmanager
def running_cluster(
    tmp_path: Path, count: int, options: dict[str, Any] | None = None
) -> Iterator[tuple[str, RoundRobin, list[ProxyProcess]]]:
    """redis-server, `count` replicas (`mcpProxy.options` added) and the balancer in front of them:
    (its URL, it, the replicas)."""
    from oauth_as import serving

    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    balancer = RoundRobin([])
    with running_redis() as redis_url, running_replicas(redis_url, tmp_path, count, url, options) as replicas:
        balancer.backends.extend(r.base for r in replicas)
        with serving(balancer, sock, "the test balancer"):
            yield url, balancer, replicas


async def raw_post(
    http: httpx2.AsyncClient, url: str, body: dict[str, Any], session: str | None, token: str = "tok-a"
) -> httpx2.Response:
    headers = {"accept": ACCEPT, "authorization": f"Bearer {token}"}
    if session is not None:
        headers["mcp-session-id"] = session
    return await http.post(url, json=body, headers=headers)


async def new_session(http: httpx2.AsyncClient, url: str, capabilities: dict[str, Any] | None = None) -> str:
    params = {**INITIALIZE, "capabilities": capabilities or {}}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    response = await raw_post(http, url, initialize, None)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await raw_post(http, url, note, session)).status_code == 202
    return session


async def list_status(http: httpx2.AsyncClient, url: str, session: str, token: str = "tok-a") -> int:
    response = await raw_post(http, url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session, token)
    if response.status_code == 200:
        assert response.json()["result"]["tools"]
    return response.status_code


KINDS = ("tools", "prompts", "resources")


async def announce(http: httpx2.AsyncClient, url: str, session: str, kind: str) -> None:
    """Make the upstream send `notifications/<kind>/list_changed` outside any request (the GET stream)."""
    params = {"name": "notify_list_changed", "arguments": {"kind": kind, "standalone": True}}
    response = await raw_post(
        http, url, {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}, session
    )
    assert response.status_code == 200, response.text


class GetStream:
    """A raw GET stream: its events (id, method) as they come."""

    def __init__(
        self, http: httpx2.AsyncClient, url: str, session: str, last_event_id: str | None = None
    ) -> None:
        self.headers = {
            "accept": "text/event-stream",
            "authorization": "Bearer tok-a",
            "mcp-session-id": session,
        }
        if last_event_id is not None:
            self.headers["last-event-id"] = last_event_id
        self.http, self.url = http, url
        self.events: list[tuple[str, str]] = []
        self.status = 0

    async def read(self, count: int, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        from mcpmux.upstream.sse_events import iter_events

        async with self.http.stream("GET", self.url, headers=self.headers) as response:
            self.status = response.status_code
            task_status.started()
            if response.status_code != 200:
                return
            async for event in iter_events(response.aiter_raw()):
                assert event.id is not None
                self.events.append((event.id, json.loads(event.data)["method"]))
                if len(self.events) >= count:
                    return
