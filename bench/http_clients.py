"""HTTP client libraries alone against the near-free upstream: what one upstream request costs the client.

    python bench/http_clients.py                    # mcpmux's client, httpx2, aiohttp (if installed)
    python bench/http_clients.py --duration 3 --concurrency 1,16

Each client POSTs `tools/call echo` to `null_server.py`'s streamable-HTTP URL in closed loops (one
request in flight per loop, keep-alive), on uvloop, in this process; the figure that decided which
client mcpmux uses is the client's CPU per request (this process's CPU time / requests). Clients run
in alternation, `--rounds` times, each keeping its best round.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

BODY = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}},
    }
)
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}

Post = Callable[[], Awaitable[bytes]]


async def mcpmux_client(url: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    from mcpmux.upstream.http_client import HttpPool
    from mcpmux.upstream.http_post import Posted

    pool = HttpPool(url, {}, 5.0, None)
    extra = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()).encode()
    loop = asyncio.get_running_loop()

    async def post() -> bytes:
        handler = Posted(loop.create_future())
        await pool.request(b"POST", url, extra, BODY, handler)
        assert handler.done is not None
        await handler.done
        return handler.body()

    async def close() -> None:
        pool.close()

    return post, close


async def httpx2_client(url: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import httpx2

    client = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64))

    async def post() -> bytes:
        response = await client.post(url, content=BODY, headers=HEADERS)
        return response.content

    return post, client.aclose


async def aiohttp_client(url: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def post() -> bytes:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            return await response.read()

    return post, session.close


CLIENTS = {"mcpmux": mcpmux_client, "httpx2": httpx2_client, "aiohttp": aiohttp_client}


async def measure(make: Any, url: str, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    post, close = await make(url)
    calls = 0
    counting = False
    stop = False

    async def loop_() -> None:
        nonlocal calls
        while not stop:
            orjson.loads(await post())
            if counting:
                calls += 1

    tasks = [asyncio.create_task(loop_()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    counting = True
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(duration)
    cpu1, t1 = time.process_time(), time.perf_counter()
    counting = False
    stop = True
    await asyncio.gather(*tasks)
    await close()
    return {
        "calls_per_s": round(calls / (t1 - t0)),
        "client_cpu_per_call_ms": round(1000 * (cpu1 - cpu0) / calls, 4) if calls else None,
    }


def start_upstream() -> tuple[subprocess.Popen[bytes], str]:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    command = [sys.executable, str(ROOT / "bench" / "null_server.py"), "--listen-fd", str(sock.fileno())]
    proc = subprocess.Popen(command, pass_fds=[sock.fileno()], stderr=subprocess.PIPE)
    sock.close()
    assert proc.stderr is not None
    proc.stderr.readline()  # "All clients initialized"
    return proc, f"http://127.0.0.1:{port}/echo/mcp"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = [n for n in CLIENTS if n != "aiohttp" or importlib.util.find_spec("aiohttp")]
    proc, url = start_upstream()
    best: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        for _ in range(args.rounds):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for name in names:
                    got = uvloop.run(measure(CLIENTS[name], url, concurrency, args.warmup, args.duration))
                    key = (name, concurrency)
                    if key not in best or got["calls_per_s"] > best[key]["calls_per_s"]:
                        best[key] = got
    finally:
        proc.terminate()
        proc.wait(5)
    print("| client | in flight | requests/s | client CPU per request ms |")
    print("|---|---|---|---|")
    for (name, concurrency), got in best.items():
        print(f"| {name} | {concurrency} | {got['calls_per_s']:,} | {got['client_cpu_per_call_ms']} |")


if __name__ == "__main__":
    main()
