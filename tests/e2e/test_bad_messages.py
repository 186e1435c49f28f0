"""Bad messages from upstreams and clients stay contained: the proxy lives, the answer after them arrives,
and every malformed client request gets a JSON-RPC error instead of an HTTP 500 (issue 12)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mini_http
import orjson
import pytest
from fault_kit import DEBUG, faulty
from relay_kit import raw_http, raw_sse

from harness import FIXTURE, ProxyProcess, running_proxy, wait_for_log

pytestmark = pytest.mark.anyio

HOSTILE = Path(__file__).resolve().parent.parent / "fixtures" / "hostile_server.py"
BOUND_SECONDS = 20
JSON = {"content-type": "application/json"}


def hostile_entry(**options: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(HOSTILE)], "options": options}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """A hostile stdio upstream beside a well-behaved one; requests time out long after the test's bound."""
    config = {
        "mcpServers": {
            "bad": hostile_entry(requestTimeout="120s"),
            "good": {"command": sys.executable, "args": [str(FIXTURE), "--transport", "stdio"]},
        }
    }
    with running_proxy(config, tmp_path_factory.mktemp("bad_messages")) as running:
        yield running


async def emit(client: Any, *lines: Any) -> dict[str, Any]:
    """Have the hostile upstream write `lines` and then its answer to this call, in one write."""
    raw = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    return await client.request("tools/call", {"name": "emit", "arguments": {"lines": raw}})


async def assert_everyone_still_served(proxy: ProxyProcess) -> None:
    assert proxy.process.poll() is None, proxy.log[-3000:]
    async with raw_http(proxy.url("/good/mcp")) as other:
        echoed = await other.result("tools/call", {"name": "echo", "arguments": {"text": "still here"}})
        assert "still here" in orjson.dumps(echoed).decode()
    assert httpx2.get(proxy.url("/_readyz"), timeout=5).status_code == 200


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def nested_log(depth: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "data": nested(depth)},
    }


HOSTILE_LINES = {
    "server request with an array id": {"jsonrpc": "2.0", "id": [7], "method": "custom/thing"},
    "server request with an object id": {"jsonrpc": "2.0", "id": {"a": 1}, "method": "custom/thing"},
    "server request with a float id": {"jsonrpc": "2.0", "id": 1.5, "method": "custom/thing"},
    "response with an array id": {"jsonrpc": "2.0", "id": [1], "result": {}},
    "cancelled with an object requestId": {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": {"x": 1}},
    },
    "log message with list params": {"jsonrpc": "2.0", "method": "notifications/message", "params": [1, 2]},
    "progress with an object token": {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": {"t": 1}, "progress": 1},
    },
    "resource updated with a list uri": {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": ["x"]},
    },
    "method that is a number": {"jsonrpc": "2.0", "id": 5, "method": 5},
    "a JSON array": [1, 2, 3],
    "not JSON": "{not json",
    "nested deeper than JSON can be re-encoded": nested_log(300),
}


@pytest.mark.parametrize("case", list(HOSTILE_LINES))
async def test_a_bad_upstream_message_is_dropped_and_the_answer_after_it_arrives(
    proxy: ProxyProcess, case: str
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/bad/mcp")) as client:
            response = await emit(client, HOSTILE_LINES[case])
            assert response["result"]["content"][0]["text"] == "ok", response
            # and a second call on the same session still works
            again = await emit(client)
            assert again["result"]["content"][0]["text"] == "ok", again
        await assert_everyone_still_served(proxy)


async def test_all_the_bad_upstream_messages_in_one_read_do_not_lose_the_answer(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/bad/mcp")) as client:
            response = await emit(client, *HOSTILE_LINES.values())
            assert response["result"]["content"][0]["text"] == "ok", response
        await assert_everyone_still_served(proxy)
    assert "Traceback" not in proxy.log


MALFORMED_REQUESTS = {
    "_meta a string": ("tools/call", {"name": "echo", "arguments": {}, "_meta": "x"}),
    "progressToken an object": ("tools/call", {"name": "echo", "_meta": {"progressToken": {"a": 1}}}),
    "setLevel with a list": ("logging/setLevel", {"level": ["debug"]}),
    "tool name a list": ("tools/call", {"name": ["echo"], "arguments": {}}),
    "uri an object": ("resources/read", {"uri": {"u": 1}}),
    "cursor a number": ("tools/list", {"cursor": 7}),
    "arguments nested deeper than 255": ("tools/call", {"name": "echo", "arguments": {"x": nested(300)}}),
}


@pytest.mark.parametrize("case", list(MALFORMED_REQUESTS))
@pytest.mark.parametrize("route", ["good", "bad"])
async def test_a_malformed_client_request_gets_a_json_rpc_error_on_the_streamable_face(
    proxy: ProxyProcess, case: str, route: str
) -> None:
    method, params = MALFORMED_REQUESTS[case]
    mark = len(proxy.lines)
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url(f"/{route}/mcp")) as client:
            body = json.dumps({"jsonrpc": "2.0", "id": 41, "method": method, "params": params})
            reply = await client.http.post(client.url, content=body, headers=client.headers())
            assert reply.status_code == 200, reply.text
            answer = reply.json()
            assert answer["id"] == 41 and answer["error"]["code"] == -32602, answer
            assert (await client.request("ping"))["result"] == {}
    assert not any("Traceback" in line for line in proxy.lines[mark:]), proxy.log[-3000:]


@pytest.mark.parametrize("case", list(MALFORMED_REQUESTS))
async def test_a_malformed_client_request_gets_a_json_rpc_error_on_the_legacy_sse_face(
    proxy: ProxyProcess, case: str
) -> None:
    method, params = MALFORMED_REQUESTS[case]
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_sse(proxy.url("/good/sse")) as client:
            body = json.dumps({"jsonrpc": "2.0", "id": "m1", "method": method, "params": params})
            reply = await client.http.post(client.endpoint, content=body, headers=JSON)
            assert reply.status_code == 202, reply.text
            answer = await client.receive(lambda m: m.get("id") == "m1")
            assert answer["error"]["code"] == -32602, answer
            assert (await client.request("ping"))["result"] == {}


async def test_a_client_response_with_an_array_id_is_a_bad_request_not_a_500(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/good/mcp")) as client:
            reply = await client.post({"jsonrpc": "2.0", "id": [1], "result": {}})
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"]["code"] == -32600
            bad_object = await client.post(
                {"jsonrpc": "2.0", "id": {"x": 1}, "error": {"code": 1, "message": ""}}
            )
            assert bad_object.status_code == 400, bad_object.text
            assert (await client.request("ping"))["result"] == {}


async def test_a_stdio_line_longer_than_max_line_bytes_restarts_that_server_only(tmp_path: Path) -> None:
    config = {
        "mcpServers": {
            "bad": hostile_entry(maxLineBytes=100000, restart={"initialDelay": "50ms", "jitter": 0}),
            "good": {"command": sys.executable, "args": [str(FIXTURE), "--transport", "stdio"]},
        }
    }
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/bad/mcp")) as client:
            mark = len(proxy.lines)
            params = {"name": "unterminated", "arguments": {"bytes": 1_000_000}}
            failed = await client.request("tools/call", params)
            assert failed["error"]["code"] == -32000, failed
            assert "longer than 100000 bytes" in failed["error"]["message"]
            await anyio.to_thread.run_sync(lambda: proxy.wait_for_line(r"bad>? Connected", 15, mark))
        await assert_everyone_still_served(proxy)
    assert "maxLineBytes" in proxy.log


async def test_a_flood_of_requests_to_clients_is_refused_beyond_the_limit_and_the_call_is_answered(
    tmp_path: Path,
) -> None:
    config = {
        "mcpServers": {
            "bad": hostile_entry(),
            "good": {"command": sys.executable, "args": [str(FIXTURE), "--transport", "stdio"]},
        }
    }
    flood = [{"jsonrpc": "2.0", "id": n, "method": "custom/thing"} for n in range(300)]
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/bad/mcp")) as client:
            response = await emit(client, *flood)
            assert response["result"]["content"][0]["text"] == "ok", response
            await anyio.to_thread.run_sync(
                lambda: proxy.wait_for_line(r"bad has 256 requests to clients", 10)
            )
        await assert_everyone_still_served(proxy)
    assert "bad has 256 requests to clients waiting; refused 1 more" in proxy.log


HOSTILE_EVENTS = [
    "{not json",
    "[1, 2]",
    "7",
    json.dumps({"jsonrpc": "2.0", "id": [1], "result": {}}),
    json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": [1]}),
    json.dumps({"jsonrpc": "2.0", "id": {"x": 1}, "method": "custom/thing"}),
]


class HostileHttpHandler(mini_http.Handler):
    """Answers tools/call with an event stream: hostile events first, then the valid response."""

    def do_POST(self) -> None:
        body = self._record()
        request = json.loads(body)
        if request.get("method") != "tools/call":
            super_answer = mini_http.answer(request) if "id" in request else None
            if super_answer is None:
                self._send(202)
                return
            headers = {"content-type": "application/json", "mcp-session-id": "s1"}
            self._send(200, json.dumps(super_answer).encode(), headers)
            return
        events = [*HOSTILE_EVENTS, json.dumps(mini_http.answer(request))]
        stream = "".join(f"event: message\ndata: {data}\n\n" for data in events).encode()
        self._send(200, stream, {"content-type": "text/event-stream"})


@pytest.mark.parametrize("transport", ["streamable-http"])
async def test_bad_messages_from_an_http_upstream_do_not_lose_the_answer_after_them(
    tmp_path: Path, transport: str
) -> None:
    handler = type("Scripted", (HostileHttpHandler,), {"script": mini_http.Script()})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        serving.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
            config = {"mcpServers": {"web": {"url": url, "transportType": transport}}}
            with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
                async with raw_http(proxy.url("/web/mcp")) as client:
                    for text in ("one", "two"):
                        params = {"name": "echo", "arguments": {"text": text}}
                        response = await client.request("tools/call", params)
                        assert "result" in response, response
                        assert response["result"]["content"][0]["text"] == text, response
                assert proxy.process.poll() is None
        finally:
            server.shutdown()


async def test_a_request_with_more_related_messages_waiting_than_max_request_queue_gets_an_error(
    tmp_path: Path,
) -> None:
    """20 log lines in one atomic pipe write (< PIPE_BUF) reach the session before its client reads one."""
    config = {"mcpServers": {"bad": hostile_entry(maxRequestQueue=5)}}
    notes = [
        {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": n}}
        for n in range(20)
    ]
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_http(proxy.url("/bad/mcp")) as client:
            response = await emit(client, *notes)
            assert response["error"]["code"] == -32603, response
            assert "maxRequestQueue" in response["error"]["message"]
            assert (await emit(client))["result"]["content"][0]["text"] == "ok"
    assert "(maxRequestQueue); the request is abandoned" in proxy.log


async def test_closing_a_legacy_sse_stream_with_a_request_in_flight_leaves_the_http_server_serving(
    tmp_path: Path,
) -> None:
    """The request is cancelled (the upstream is told), never the HTTP server's task that runs it."""
    config = {"mcpServers": {"fx": faulty()}}
    with running_proxy(config, tmp_path, extra_args=DEBUG) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_sse(proxy.url("/fx/sse")) as client:
            mark = len(proxy.lines)
            params = {"name": "sleep", "arguments": {"seconds": 60}}
            await client.send({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": params})
            await wait_for_log(proxy, r"fx stderr: sleep started", mark)
        # the stream is closed with the call in flight
        await wait_for_log(proxy, r"fx stderr: .*cancel", mark)
        async with httpx2.AsyncClient(timeout=5) as http:
            assert (await http.get(proxy.url("/_healthz"))).status_code == 200
        async with raw_sse(proxy.url("/fx/sse")) as again:
            echoed = await again.result("tools/call", {"name": "echo", "arguments": {"text": "up"}})
            assert echoed["content"][0]["text"] == "up"
