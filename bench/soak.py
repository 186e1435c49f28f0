"""Soak: mcpmux for N minutes under mixed load, abusive clients and a misbehaving upstream beside good ones.

    python bench/soak.py                  # 1 minute
    python bench/soak.py --minutes 10     # longer
    python bench/soak.py --quick          # a few seconds, small timeouts (tests/test_bench.py runs this)

mcpmux runs as a subprocess on a socket bound here, with two stdio upstreams: `echo`
(bench/echo_upstream.py) and `bad` (bench/soak_upstream.py: garbage lines, wrong ids, silence,
crashes). Beside the well-behaved clients (one keep-alive session each, calling `echo` at a steady
pace), abusers attack the HTTP server (bench/soak_clients.py): slowloris heads, stalled bodies, garbage,
junk after a valid request, endless headers, pipelining floods, clients that never read, connection
floods past `maxConnections`; other clients call the bad upstream.

Prints the proxy's RSS and CPU over time, what every abuser got, and the errors the well-behaved
clients saw. Exit code 1 when a well-behaved client saw an error or the proxy died.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadgen import read_cpu_seconds, read_rss_kib
from run import ServerProcess, http_status, readyz_probe, upstream_command
from soak_clients import ABUSERS, Tally, abuse, flood, mcp_caller
from soak_upstream import FAULTS

BENCH = Path(__file__).resolve().parent
GRACE_SECONDS = 2.0  # after the end, for the last answers; what is still under way then is cut short


@dataclass(frozen=True)
class Plan:
    seconds: float
    limit: float  # the proxy's head/body/write timeouts
    good_clients: int
    good_pace: float  # seconds between calls of one good client
    bad_callers: int
    abusers: int  # of each kind
    slow_abusers: int  # slowloris and stalled bodies: these hold connections
    max_connections: int
    flood_every: float

    def http_limits(self) -> dict[str, Any]:
        limit = f"{int(self.limit * 1000)}ms"
        return {
            "headTimeout": limit,
            "bodyTimeout": limit,
            "writeTimeout": limit,
            "keepAliveTimeout": "30s",
            "maxConnections": self.max_connections,
        }


def plan_for(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(4.0, 0.3, 2, 0.05, 1, 1, 2, 40, 1.0)
    return Plan(args.minutes * 60, 2.0, args.good_clients, 0.02, 2, 2, 20, 200, 5.0)


def write_config(directory: Path, port: int, plan: Plan, faults: str) -> Path:
    echo = upstream_command()
    bad = [sys.executable, str(BENCH / "soak_upstream.py"), "--faults", faults]
    quick_restart = {"initialDelay": "100ms", "maxDelay": "1s"}
    config = {
        "mcpProxy": {
            "baseURL": f"http://127.0.0.1:{port}",
            "addr": f"127.0.0.1:{port}",
            "name": "soak",
            "http": plan.http_limits(),
            "options": {"logEnabled": False},
        },
        "mcpServers": {
            "echo": {"command": echo[0], "args": echo[1:]},
            "bad": {
                "command": bad[0],
                "args": bad[1:],
                "options": {"requestTimeout": "1s", "restart": quick_restart},
            },
        },
    }
    path = directory / "config.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


class Sampler:
    """The proxy's RSS and CPU once a second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[dict[str, float]] = []
        self.start_cpu = read_cpu_seconds(pid)
        self.started = time.monotonic()

    def sample(self) -> None:
        cpu = read_cpu_seconds(self.pid)
        at = time.monotonic() - self.started
        previous = self.samples[-1] if self.samples else {"t": 0.0, "cpu_s": 0.0}
        used = cpu - self.start_cpu
        share = (used - previous["cpu_s"]) / max(at - previous["t"], 1e-9)
        self.samples.append(
            {
                "t": round(at, 1),
                "rss_mib": round(read_rss_kib(self.pid) / 1024, 1),
                "cpu_s": round(used, 2),
                "cpu_share": round(share, 2),
            }
        )

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            self.sample()


async def load(port: int, plan: Plan, sampler: Sampler) -> dict[str, Tally]:
    """Every client at once until the plan's end; attacks still under way shortly after it are cut short."""
    deadline = time.monotonic() + plan.seconds
    tallies: dict[str, Tally] = {"good": Tally(), "bad-upstream": Tally(), "connection-flood": Tally()}
    base = f"http://127.0.0.1:{port}"
    jobs = [sampler.run(deadline)]
    good, bad = tallies["good"], tallies["bad-upstream"]
    for _ in range(plan.good_clients):
        jobs.append(mcp_caller(f"{base}/echo/mcp", "echo", plan.good_pace, deadline, good, True))
    for _ in range(plan.bad_callers):
        jobs.append(mcp_caller(f"{base}/bad/mcp", "flaky", 0.1, deadline, bad, False))
    for kind in ABUSERS:
        tally = tallies[kind] = Tally()
        count = plan.slow_abusers if kind in ("slowloris", "stalled-body") else plan.abusers
        jobs += [abuse(kind, port, plan.limit, deadline, tally) for _ in range(count)]
    jobs.append(
        flood(port, plan.max_connections + 20, plan.flood_every, deadline, tallies["connection-flood"])
    )
    try:
        async with asyncio.timeout(plan.seconds + GRACE_SECONDS), asyncio.TaskGroup() as tasks:
            for job in jobs:
                tasks.create_task(job)
    except TimeoutError:
        pass
    return tallies


def report(
    plan: Plan, tallies: dict[str, Tally], sampler: Sampler, alive: bool, startup: float
) -> dict[str, Any]:
    good = tallies["good"]
    rss = [s["rss_mib"] for s in sampler.samples] or [0.0]
    cpu = sampler.samples[-1]["cpu_s"] if sampler.samples else 0.0
    return {
        "seconds": plan.seconds,
        "plan": plan.__dict__,
        "proxy_alive": alive,
        "startup_s": round(startup, 3),
        "good_calls": good.outcomes["ok"],
        "good_errors": good.outcomes["error"],
        "good_error_samples": good.samples,
        "proxy_cpu_s": cpu,
        "proxy_cpu_share": round(cpu / max(plan.seconds, 1e-9), 3),
        "rss_mib": {"first": rss[0], "last": rss[-1], "max": max(rss)},
        "rss_samples": sampler.samples,
        "clients": {kind: dict(t.outcomes) for kind, t in tallies.items() if kind != "good"},
    }


def print_report(result: dict[str, Any]) -> None:
    samples = result["rss_samples"]
    step = max(1, len(samples) // 12)
    print("  t s | proxy RSS MiB | proxy CPU share")
    for sample in samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else []):
        print(f"{sample['t']:5.0f} | {sample['rss_mib']:13.1f} | {sample['cpu_share']:.2f}")
    rss, seconds = result["rss_mib"], result["seconds"]
    print(f"RSS MiB first {rss['first']}, last {rss['last']}, max {rss['max']}")
    print(f"proxy CPU {result['proxy_cpu_s']} s over {seconds:g} s ({result['proxy_cpu_share']} of a core)")
    for kind, outcomes in result["clients"].items():
        print(f"{kind:18} {dict(sorted(outcomes.items()))}")
    calls, errors = result["good_calls"], result["good_errors"]
    print(f"well-behaved clients: {calls} calls, {errors} errors {result['good_error_samples']}")
    print(f"proxy alive at the end: {result['proxy_alive']}")
    for line in result.get("proxy_stderr_tail", []):
        print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="soak length (default 1)")
    parser.add_argument("--quick", action="store_true", help="a few seconds with small timeouts")
    parser.add_argument("--good-clients", type=int, default=8, help="well-behaved sessions (default 8)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument(
        "--upstream-faults",
        default=",".join(FAULTS),
        help="the bad upstream's faults, in turn (soak_upstream.py)",
    )
    args = parser.parse_args(argv)
    plan = plan_for(args)
    with tempfile.TemporaryDirectory(prefix="mcpmux-soak-") as tmp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        port = sock.getsockname()[1]
        config = write_config(Path(tmp), port, plan, args.upstream_faults)
        command = [sys.executable, "-m", "mcpmux", "--config", str(config), "--listen-fd", str(sock.fileno())]
        proxy = ServerProcess("mcpmux", command, port, pass_fds=(sock.fileno(),))
        sock.close()
        try:
            startup = proxy.wait_ready(30.0, readyz_probe)
            print(f"mcpmux ready in {startup:.2f} s (via {proxy.ready_via}); soaking {plan.seconds:g} s ...")
            sampler = Sampler(proxy.pid)
            tallies = asyncio.run(load(port, plan, sampler))
            alive = proxy.proc.poll() is None and http_status(port, "/_healthz", 5.0) == 200
            result = report(plan, tallies, sampler, alive, startup)
            if not alive:
                result["proxy_stderr_tail"] = list(proxy.stderr_tail)
        finally:
            proxy.stop()
    print_report(result)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0 if result["proxy_alive"] and result["good_errors"] == 0 and result["good_calls"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
