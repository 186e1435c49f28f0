"""A misbehaving stdio MCP upstream for bench/soak.py: it connects properly, then errs call after call.

Its one tool, `flaky`, answers the N-th call with the N-th fault of `--faults` (in turn):

    ok        a proper result
    garbage   a line that is not JSON, then the result
    wrong-id  a result for an id nobody asked for, and no answer to the call (the proxy's timeout answers)
    mute      no answer at all
    bad-note  `notifications/message` with list params, then the result
    odd-id    a server-to-client request whose id is an object, then the result
    crash     exit (the proxy restarts it with backoff)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

FAULTS = ("ok", "garbage", "wrong-id", "mute", "bad-note", "odd-id", "ok", "crash")
TOOLS = {
    "tools": [
        {
            "name": "flaky",
            "description": "Answers wrongly, late, never, or crashes.",
            "inputSchema": {"type": "object", "properties": {}},
        }
    ]
}


def result(msg_id: Any, value: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": msg_id, "result": value}) + b"\n"


def answer_call(msg_id: Any, fault: str) -> bytes:
    """The bytes written for one tools/call under `fault` (empty: nothing)."""
    ok = result(msg_id, {"content": [{"type": "text", "text": "ok"}]})
    lines = {
        "ok": ok,
        "garbage": b"}{ this is not JSON\n" + ok,
        "wrong-id": result("nobody-asked", {}),
        "mute": b"",
        "bad-note": b'{"jsonrpc":"2.0","method":"notifications/message","params":[1,2]}\n' + ok,
        "odd-id": b'{"jsonrpc":"2.0","id":{"x":1},"method":"custom/thing"}\n' + ok,
    }
    return lines[fault]


def handle(msg: Any, state: dict[str, Any]) -> bytes:
    if not isinstance(msg, dict) or "method" not in msg or "id" not in msg:
        return b""  # notifications and responses need nothing
    method, msg_id = msg["method"], msg["id"]
    if method == "initialize":
        version = msg.get("params", {}).get("protocolVersion", "2025-06-18")
        info = {"name": "soak-bad", "version": "1"}
        return result(msg_id, {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": info})
    if method == "tools/list":
        return result(msg_id, TOOLS)
    if method == "tools/call":
        faults = state["faults"]
        fault = faults[state["calls"] % len(faults)]
        state["calls"] += 1
        if fault == "crash":
            sys.stdout.buffer.flush()
            os._exit(3)
        return answer_call(msg_id, fault)
    return result(msg_id, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, taken in turn")
    args = parser.parse_args()
    state: dict[str, Any] = {"faults": args.faults.split(","), "calls": 0}
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        reply = handle(msg, state)
        if reply:
            out.write(reply)
            out.flush()


if __name__ == "__main__":
    main()
