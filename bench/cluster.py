"""Cluster mode benchmark: three replicas on one redis-server versus one replica, and the cost of a hop.

    python bench/cluster.py                 # 5 s per phase, 16 sessions
    python bench/cluster.py --quick         # 1 s per phase (smoke test; numbers are noise)

Every replica runs `echo_upstream.py` (stdio, ~0.01 ms a call) behind mcpmux in cluster mode. Each
session is a closed loop of `tools/call echo` POSTs (one in flight, keep-alive, httpx2). Phases:

- `1 replica`: every session on one replica, every call to it;
- `3 replicas`: sessions opened round-robin and every call sent to the next replica in turn (what a
  balancer without stickiness does): two calls in three are relayed to the owner;
- `direct` / `forwarded`: one session, its calls to its owner, then to another replica (the hop's
  added latency, p50 and p99).

All of it shares this machine's cores with the client, so "3 replicas" shows what relaying costs, not
scale-out; on separate machines each replica brings its own cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

Plan = Callable[[int], list[str]]
ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "bench" / "echo_upstream.py"
SECRET = "bench-cluster-secret-0123456789abcdef"
START_SECONDS = 20.0
ACCEPT = "application/json, text/event-stream"
CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "hi"}},
}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


@contextmanager
def running_redis() -> Iterator[str]:
    """redis-server on a unix socket in a fresh temp dir (no port to race for); killed on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
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
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"unix://{sock}"
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def start_replica(redis_url: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = {
        "mcpProxy": {
            "addr": base.split("//")[1],
            "allowedHosts": ["*"],  # clients reach every replica by its own address here
            "cluster": {"redis": redis_url, "secret": SECRET},
        },
        "mcpServers": {"echo": {"command": sys.executable, "args": [str(UPSTREAM)]}},
    }
    path = home / "config.json"
    path.write_text(json.dumps(config))
    fd = sock.fileno()
    command = [
        sys.executable,
        "-m",
        "mcpmux",
        "--config",
        str(path),
        "--listen-fd",
        str(fd),
        "--log-level",
        "error",
    ]
    process = subprocess.Popen(command, pass_fds=(fd,), stdin=subprocess.DEVNULL, cwd=ROOT)
    sock.close()
    return process, base


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the replica at {base} did not become ready")
        time.sleep(0.1)


@contextmanager
def running_replicas(redis_url: str, count: int) -> Iterator[list[str]]:
    with ExitStack() as stack:
        bases = []
        for _ in range(count):
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcpmux-replica-")))
            process, base = start_replica(redis_url, home)
            stack.callback(stop, process)
            bases.append(base)
            wait_ready(base, process)
        yield bases


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def open_session(http: Any, base: str) -> str:
    answer = await http.post(f"{base}/echo/mcp", json=INIT, headers={"accept": ACCEPT})
    session: str = answer.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await http.post(f"{base}/echo/mcp", json=note, headers={"accept": ACCEPT, "mcp-session-id": session})
    return session


async def loop_calls(
    http: Any, session: str, targets: list[str], until: float, latencies: list[float]
) -> int:
    """Calls until `until`, each to the next target; returns the errors."""
    headers = {"accept": ACCEPT, "mcp-session-id": session}
    errors, turn = 0, 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        answer = await http.post(f"{targets[turn % len(targets)]}/echo/mcp", json=CALL, headers=headers)
        latencies.append(time.perf_counter() - started)
        turn += 1
        if answer.status_code != 200 or "result" not in answer.json():
            errors += 1
    return errors


def rotations(bases: list[str]) -> Plan:
    """Session i opens on bases[i % n] and sends its calls to every replica in turn, starting there."""
    return lambda i: bases[i % len(bases) :] + bases[: i % len(bases)]


async def phase(name: str, plan: Plan, sessions: int, seconds: float) -> dict[str, Any]:
    """`plan(i)`: where session i opens (the first) and, in turn, where its calls go (all of them)."""
    import httpx2

    limits = httpx2.Limits(max_connections=sessions * 2, max_keepalive_connections=sessions * 2)
    async with httpx2.AsyncClient(timeout=30, limits=limits, trust_env=False) as http:
        opened = [await open_session(http, plan(i)[0]) for i in range(sessions)]
        latencies: list[float] = []
        until = time.perf_counter() + seconds
        calls = [
            loop_calls(http, opened[i], plan(i)[1:] or plan(i), until, latencies) for i in range(sessions)
        ]
        errors = await asyncio.gather(*calls)
    return report(name, latencies, seconds, sum(errors))


def report(name: str, latencies: list[float], seconds: float, errors: int) -> dict[str, Any]:
    ordered = sorted(latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "phase": name,
        "calls_per_s": round(len(latencies) / seconds),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "errors": errors,
    }


async def run(sessions: int, seconds: float, redis_url: str) -> list[dict[str, Any]]:
    with running_replicas(redis_url, 3) as bases:
        return [
            await phase("1 replica", lambda i: bases[:1], sessions, seconds),
            await phase(
                "3 replicas", lambda i: [rotations(bases)(i)[0], *rotations(bases)(i)], sessions, seconds
            ),
            await phase("direct (1 session)", lambda i: bases[:1], 1, seconds),
            await phase("forwarded (1 session)", lambda i: bases[:2], 1, seconds),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="1 s per phase")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.duration
    print(f"load average at start: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with running_redis() as redis_url:
        results = asyncio.run(run(args.sessions, seconds, redis_url))
    line = "{:24} {:>8} {:>8} {:>8} {:>7}"
    print(line.format("phase", "calls/s", "p50 ms", "p99 ms", "errors"))
    for row in results:
        print(line.format(row["phase"], row["calls_per_s"], row["p50_ms"], row["p99_ms"], row["errors"]))
    print(json.dumps(results))
    sys.exit(1 if any(row["errors"] for row in results) else 0)


if __name__ == "__main__":
    main()
