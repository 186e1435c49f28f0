"""Cluster-mode test kit: a real redis-server, N mcpmux replicas on it, and a round-robin HTTP balancer.

The balancer is a tiny asyncio reverse proxy (uvicorn in a thread): each HTTP request goes to the next
replica in turn, with no stickiness, so a client's requests land on every replica. Like a load
balancer with health checks, it skips a replica that refuses connections.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from harness import ROOT, ProxyProcess, bound_socket, fixture_server
from mcpmux.cluster.forward import relay_stream
from mcpmux.web.asgi import read_body

SECRET = "s" * 16 + "e" * 16 + "cret"
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


def replica_config(redis_url: str, public_url: str) -> dict[str, Any]:
    return {
        "mcpProxy": {
            "baseURL": public_url,  # the balancer's, as in a real deployment (Host stays the client's)
            "cluster": {"redis": redis_url, "secret": SECRET},
            "options": {"authTokens": ["tok-a", "tok-b"]},
        },
        "mcpServers": {"everything": fixture_server()},
    }


@contextmanager
def running_replicas(
    redis_url: str, tmp_path: Path, count: int, public_url: str
) -> Iterator[list[ProxyProcess]]:
    with ExitStack() as stack:
        replicas = []
        for index in range(count):
            home = tmp_path / f"replica-{index}"
            home.mkdir()
            replica = ProxyProcess(replica_config(redis_url, public_url), home)
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
        self.client: httpx2.AsyncClient | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self.client is None:  # made in the balancer's own event loop
            self.client = httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=None), trust_env=False)
        body = await read_body(receive, 1 << 22)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP]
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
def running_cluster(tmp_path: Path, count: int) -> Iterator[tuple[str, RoundRobin, list[ProxyProcess]]]:
    """redis-server, `count` replicas and the balancer in front of them: (its URL, it, the replicas)."""
    from oauth_as import serving

    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    balancer = RoundRobin([])
    with running_redis() as redis_url, running_replicas(redis_url, tmp_path, count, url) as replicas:
        balancer.backends.extend(r.base for r in replicas)
        with serving(balancer, sock, "the test balancer"):
            yield url, balancer, replicas
