"""Cluster-mode test kit: a real redis-server, N mcpmux replicas on it, and a round-robin HTTP balancer.

The balancer is a tiny asyncio reverse proxy (uvicorn in a thread): each HTTP request goes to the next
replica in turn, with no stickiness, so a client's requests land on every replica. Like a load
balancer with health checks, it skips a replica that refuses connections.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from harness import ProxyProcess, bound_socket, fixture_server
from mcpmux.cluster.forward import relay_stream
from mcpmux.web.asgi import read_body

START_SECONDS = 10.0
SECRET = "s" * 16 + "e" * 16 + "cret"
HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})


@contextmanager
def running_redis() -> Iterator[str]:
    """redis-server on a unix socket in a fresh temp dir (no port to race for); killed on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/setup-test-env installs Debian's package)")
    home = Path(tempfile.mkdtemp(prefix="mcpmux-redis-"))
    sock = home / "redis.sock"
    args = ["--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no", "--dir", str(home)]
    process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(unix_socket_path=str(sock))
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                assert process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()
        yield f"unix://{sock}"
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(home, ignore_errors=True)


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
