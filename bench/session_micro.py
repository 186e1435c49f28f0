"""Micro-benchmark of one upstream session's hot path in process: requests, progress, responses (no I/O).

    python bench/session_micro.py               # 5 rounds of 20,000 calls per case, least CPU kept
    python bench/session_micro.py --calls 2000  # a quick run

Each call goes through `UpstreamSession.request` over a connection that answers inline, as the HTTP
transports may (the reply reaches the receiver before `send` returns): what is measured is the id
mapping, the in-flight table, progress-token rewriting and response correlation, not a transport.
Cases: a plain call, and a call with a progress token that gets two progress notifications first.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from mcpmux.upstream.session import UpstreamSession

Message = dict[str, Any]


class Quiet:
    """Everything around the session that the hot path touches, doing nothing: its owner (the runtime),
    the downstream request (origin) and the request's client."""

    id = "bench"
    busy = 0
    request_id = 1

    def __init__(self) -> None:
        self.client = self

    def on_notification(self, session: Any, msg: Message, related: Any) -> None: ...

    def on_server_request(self, session: Any, msg: Message, related: Any) -> None: ...

    def spawn(self, fn: Any, *args: Any) -> None: ...

    def touch(self) -> None: ...

    def wants_log(self, level: Any) -> bool:
        return True

    async def emit(self, msg: Message) -> None: ...


class Echo:
    """A connection that answers each request inline; with `progress`, two progress notifications first."""

    name = "bench"
    closed = False

    def __init__(self, session: UpstreamSession, progress: bool) -> None:
        self.session = session
        self.progress = progress

    async def send(self, msg: Message, related: Any = None) -> None:
        if "id" not in msg:
            return
        uid = msg["id"]
        if self.progress:
            token = msg["params"]["_meta"]["progressToken"]
            for n in (1, 2):
                params = {"progressToken": token, "progress": n}
                self.session.receive(
                    {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}, uid
                )
        self.session.receive({"jsonrpc": "2.0", "id": uid, "result": {"content": []}}, uid)


async def run_case(calls: int, progress: bool) -> float:
    """Seconds per call for `calls` sequential calls."""
    quiet = Quiet()
    session = UpstreamSession("bench", quiet)  # type: ignore[arg-type]
    session.connection = Echo(session, progress)  # type: ignore[assignment]
    meta = {"_meta": {"progressToken": "tok"}} if progress else {}
    start = time.process_time()  # CPU time: other processes on a shared machine count less
    for n in range(calls):
        msg = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "echo", **meta}}
        response = await session.request(msg, quiet, 30.0)
        assert response["id"] == n
    return (time.process_time() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for progress in (False, True):
        best = min(asyncio.run(run_case(args.calls, progress)) for _ in range(args.rounds))
        label = "call + 2 progress" if progress else "plain call"
        print(f"{label:18} {best * 1e6:7.2f} us/call  ({1 / best:,.0f} calls/s)")


if __name__ == "__main__":
    main()
