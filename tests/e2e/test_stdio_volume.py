"""A stdio upstream that writes huge lines and floods stderr still works through the proxy."""

from __future__ import annotations

import sys
import textwrap

import anyio
import pytest

from harness import mcp_client, running_proxy

pytestmark = pytest.mark.anyio

BIG_BYTES = 17 * 1024 * 1024  # one stdout line well past 16 MiB
NOISE_BYTES = 1024 * 1024  # far more than a pipe buffer: an unread stderr would block the server

SERVER = textwrap.dedent(
    f"""
    import json, sys
    noise = ("x" * 1023 + "\\n") * ({NOISE_BYTES} // 1024)
    sys.stderr.write(noise); sys.stderr.flush()
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg:
            continue
        method = msg["method"]
        if method == "initialize":
            result = {{"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {{"tools": {{}}}},
                      "serverInfo": {{"name": "volume", "version": "1"}}}}
        elif method == "tools/list":
            result = {{"tools": [{{"name": "big", "inputSchema": {{"type": "object"}}}}]}}
        elif method == "tools/call":
            sys.stderr.write(noise); sys.stderr.flush()
            result = {{"content": [{{"type": "text", "text": "y" * {BIG_BYTES}}}]}}
        else:
            result = {{}}
        sys.stdout.write(json.dumps({{"jsonrpc": "2.0", "id": msg["id"], "result": result}}) + "\\n")
        sys.stdout.flush()
    """
)


async def test_a_17_mib_result_line_and_a_flood_on_stderr_pass_through_a_stdio_upstream(tmp_path):
    script = tmp_path / "volume_server.py"
    script.write_text(SERVER)
    config = {"mcpServers": {"volume": {"command": sys.executable, "args": [str(script)]}}}
    with running_proxy(config, tmp_path) as proxy:
        with anyio.fail_after(60):
            async with mcp_client(proxy.url("/volume/mcp")) as session:
                for _ in range(2):  # the second call proves stderr kept being drained
                    result = await session.call_tool("big", {})
                    assert len(result.content[0].text) == BIG_BYTES
