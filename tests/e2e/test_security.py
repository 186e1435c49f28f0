"""The HTTP face refuses what it must: foreign Host/Origin (403), no token (401), big bodies (413), bad input.

Every refusal of an MCP endpoint has a JSON-RPC error body, as the SDK's own server answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from relay_kit import RawHttp, relay_proxy

from harness import ProxyProcess

pytestmark = pytest.mark.anyio

TOKEN = "s3cret"
MAX_BYTES = 4096
INIT_PARAMS = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"},
}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    options = {
        "allowedHosts": ["mcp.example.test"],
        "allowedOrigins": ["https://app.example.test"],
        "maxRequestBytes": MAX_BYTES,
    }
    routes = {"fx": ("stdio", (), {"authTokens": [TOKEN]})}
    with relay_proxy(
        tmp_path_factory.mktemp("security"), routes, proxy_options=options, debug=False
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=None), headers=headers) as client:
        yield client


def rpc_error(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC error of an HTTP error response (checking the envelope)."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["jsonrpc"] == "2.0" and "id" in body, body
    return body["error"]


async def post(http: httpx2.AsyncClient, url: str, body: Any, **headers: str) -> httpx2.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    base = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    return await http.post(url, content=content, headers={**base, **headers})


async def open_sse(http: httpx2.AsyncClient, url: str, **headers: str) -> httpx2.Response:
    """The status of `GET …/sse` (the stream is closed at once when it opened)."""
    async with http.stream("GET", url, headers={"accept": "text/event-stream", **headers}) as response:
        await response.aclose()
        return response


async def test_a_host_that_is_not_allowed_gets_403_on_both_faces(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    with anyio.fail_after(10):
        refused = await post(http, proxy.url("/fx/mcp"), INITIALIZE, host="evil.example")
        assert refused.status_code == 403
        assert rpc_error(refused) == {
            "code": -32600,
            "message": "Forbidden: Host 'evil.example' is not allowed",
        }
        assert (await open_sse(http, proxy.url("/fx/sse"), host="evil.example:80")).status_code == 403
        for allowed in ("mcp.example.test", f"localhost:{proxy.port}", f"127.0.0.1:{proxy.port}"):
            accepted = await post(http, proxy.url("/fx/mcp"), INITIALIZE, host=allowed)
            assert accepted.status_code == 200, allowed


async def test_an_origin_that_is_not_allowed_gets_403_on_both_faces(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    with anyio.fail_after(10):
        refused = await post(http, proxy.url("/fx/mcp"), INITIALIZE, origin="http://evil.example")
        assert refused.status_code == 403
        assert rpc_error(refused)["message"] == "Forbidden: Origin 'http://evil.example' is not allowed"
        assert (await open_sse(http, proxy.url("/fx/sse"), origin="http://evil.example")).status_code == 403
        for allowed in ("https://app.example.test", proxy.base):
            accepted = await post(http, proxy.url("/fx/mcp"), INITIALIZE, origin=allowed)
            assert accepted.status_code == 200, allowed


async def test_a_request_without_a_valid_token_gets_401_with_a_bearer_challenge(proxy: ProxyProcess) -> None:
    with anyio.fail_after(10):
        for authorization in (None, "Bearer wrong", "Basic czNjcmV0"):
            headers = {"authorization": authorization} if authorization else {}
            async with httpx2.AsyncClient(timeout=10, headers=headers) as bare:
                refused = await post(bare, proxy.url("/fx/mcp"), INITIALIZE)
                assert refused.status_code == 401, authorization
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert rpc_error(refused) == {"code": -32600, "message": "Unauthorized"}
                assert (await open_sse(bare, proxy.url("/fx/sse"))).status_code == 401
        async with httpx2.AsyncClient(timeout=10, headers={"authorization": TOKEN}) as raw_token:
            assert (await post(raw_token, proxy.url("/fx/mcp"), INITIALIZE)).status_code == 200


async def test_a_body_larger_than_max_request_bytes_gets_413(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    big = {**INITIALIZE, "params": {**INIT_PARAMS, "padding": "x" * MAX_BYTES}}
    with anyio.fail_after(10):
        refused = await post(http, proxy.url("/fx/mcp"), big)
        assert refused.status_code == 413
        assert rpc_error(refused) == {
            "code": -32600,
            "message": f"Request body larger than {MAX_BYTES} bytes",
        }

        async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit holds while reading
            for _ in range(3):
                yield b"x" * (MAX_BYTES // 2)

        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        streamed = await http.post(proxy.url("/fx/mcp"), content=chunks(), headers=headers)
        assert streamed.status_code == 413


async def test_malformed_posts_get_400_or_415_with_the_matching_json_rpc_error(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    url = proxy.url("/fx/mcp")
    with anyio.fail_after(10):
        not_json = await post(http, url, b"{not json")
        assert not_json.status_code == 400
        assert rpc_error(not_json)["code"] == -32700
        batch = await post(http, url, [INITIALIZE])
        assert batch.status_code == 400
        assert rpc_error(batch) == {
            "code": -32600,
            "message": "Invalid Request: JSON-RPC batches are not supported",
        }
        no_version = await post(http, url, {"id": 1, "method": "ping"})
        assert (no_version.status_code, rpc_error(no_version)["code"]) == (400, -32600)
        no_session = await post(http, url, {"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
        assert no_session.status_code == 400
        assert no_session.json() == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {"code": -32600, "message": "Bad Request: Missing session ID"},
        }
        wrong_type = await post(http, url, INITIALIZE, **{"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        assert rpc_error(wrong_type)["code"] == -32600
        client = RawHttp(http, url)
        await client.initialize()
        unsupported = await client.post(
            {"jsonrpc": "2.0", "id": 2, "method": "ping"}, **{"mcp-protocol-version": "1999-01-01"}
        )
        assert unsupported.status_code == 400
        assert rpc_error(unsupported)["code"] == -32600
        assert await client.delete() == 200


async def test_an_unknown_session_or_path_gets_404(proxy: ProxyProcess, http: httpx2.AsyncClient) -> None:
    with anyio.fail_after(10):
        unknown = await post(
            http,
            proxy.url("/fx/mcp"),
            {"jsonrpc": "2.0", "id": 3, "method": "ping"},
            **{"mcp-session-id": "nope"},
        )
        assert unknown.status_code == 404
        assert unknown.json() == {
            "jsonrpc": "2.0",
            "id": 3,
            "error": {"code": -32600, "message": "Session not found"},
        }
        ended = await http.delete(proxy.url("/fx/mcp"), headers={"mcp-session-id": "nope"})
        assert (ended.status_code, rpc_error(ended)["message"]) == (404, "Session not found")
        message = await post(http, proxy.url("/fx/message?sessionId=nope"), {"jsonrpc": "2.0", "method": "x"})
        assert (message.status_code, rpc_error(message)["message"]) == (404, "Session not found")
        nowhere = await post(http, proxy.url("/nowhere/mcp"), INITIALIZE)
        assert (nowhere.status_code, rpc_error(nowhere)["message"]) == (404, "Not Found")
