"""What the relay tests share: a proxy fronting fixture upstreams of every kind, and raw JSON-RPC clients.

The SDK client drops fields its models do not know and hides ids and tokens, so fidelity is checked
with `RawHttp` (streamable HTTP POSTs) and `RawSse` (the legacy SSE face), which see the wire JSON.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest

from harness import FIXTURE, ProxyProcess, running_proxy
from mcpmux.upstream.sse_events import iter_events

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from everything.launch import running_http_fixture
from everything.vendor import (
    VENDOR_PAGE_FIELD,
    VENDOR_RESULT_FIELD,
    VENDOR_TOOL_FIELD,
    VENDOR_TOOL_VALUE,
)

__all__ = [
    "VENDOR_PAGE_FIELD",
    "VENDOR_RESULT_FIELD",
    "VENDOR_TOOL_FIELD",
    "VENDOR_TOOL_VALUE",
    "RawHttp",
    "RawSse",
    "both_faces",
    "every_kind",
    "raw_http",
    "raw_sse",
    "relay_proxy",
    "running_http_fixture",
    "through",
]

UPSTREAM_KINDS = ("stdio", "streamable-http", "sse")
HANDSHAKE_VERSION = "2025-11-25"
BOUND_SECONDS = 20
ACCEPT_BOTH = "application/json, text/event-stream"
CLIENT_INFO = {"name": "relay-test", "version": "1"}
FACES = ("mcp", "sse")  # streamable HTTP and legacy SSE
both_faces = pytest.mark.parametrize("face", FACES)
every_kind = pytest.mark.parametrize("kind", UPSTREAM_KINDS)


def upstream_entry(kind: str, url: str | None, *args: str, **options: Any) -> dict[str, Any]:
    """A `mcpServers` entry: the fixture over stdio, or the HTTP fixture already running at `url`."""
    if kind == "stdio":
        entry: dict[str, Any] = {
            "command": sys.executable,
            "args": [str(FIXTURE), "--transport", "stdio", *args],
        }
    else:
        entry = {"url": url, "transportType": kind}
    if options:
        entry["options"] = options
    return entry


@contextmanager
def relay_proxy(
    tmp_path: Path,
    routes: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]],
    *,
    proxy_options: dict[str, Any] | None = None,
    debug: bool = True,
    groups: dict[str, Any] | None = None,
) -> Iterator[ProxyProcess]:
    """mcpmux (debug logging) with one route per `name: (upstream kind, fixture args, options)`.

    HTTP fixtures are started first (on sockets bound here; routes with the same kind and arguments
    share one) and stopped after the proxy. Their URLs are in the proxy's `upstream_urls` by route.
    """
    with ExitStack() as stack:
        servers = {}
        fixtures: dict[tuple[str, tuple[str, ...]], str] = {}
        urls: dict[str, str] = {}
        for name, (kind, args, options) in routes.items():
            url = None
            if kind != "stdio":
                if (kind, args) not in fixtures:
                    fixtures[kind, args] = stack.enter_context(running_http_fixture(kind, *args)).url
                url = urls[name] = fixtures[kind, args]
            servers[name] = upstream_entry(kind, url, *args, **options)
        config: dict[str, Any] = {
            "mcpProxy": {"name": "mcpmux-relay-test", "version": "7.7.7", **(proxy_options or {})},
            "mcpServers": servers,
        }
        if groups:
            config["mcpGroups"] = groups
        extra = ("--log-level", "debug") if debug else ()
        proxy = stack.enter_context(running_proxy(config, tmp_path, extra_args=extra))
        proxy.upstream_urls = urls  # type: ignore[attr-defined]
        yield proxy


def messages_of(response: httpx2.Response) -> list[dict[str, Any]]:
    """Every JSON-RPC message in a POST's reply, whether it came as JSON or as an event stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [orjson.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    return [response.json()] if response.content else []


class Inbox:
    """Messages a session's stream delivered, read in order; ones skipped while waiting are kept."""

    def __init__(self) -> None:
        self._to_inbox, self.inbox = anyio.create_memory_object_stream[dict[str, Any]](1000)
        self.seen: list[dict[str, Any]] = []

    async def receive(self, predicate: Any) -> dict[str, Any]:
        """The first message (already seen or arriving) that satisfies `predicate`."""
        for index, msg in enumerate(self.seen):
            if predicate(msg):
                return self.seen.pop(index)
        with anyio.fail_after(BOUND_SECONDS):
            while True:
                msg = await self.inbox.receive()
                if predicate(msg):
                    return msg
                self.seen.append(msg)

    async def notification(self, method: str) -> dict[str, Any]:
        return await self.receive(lambda m: m.get("method") == method and "id" not in m)

    async def pump(self, events: AsyncIterator[Any]) -> None:
        async for event in events:
            if event.event == "message" and event.data:
                await self._to_inbox.send(orjson.loads(event.data))


def jsonrpc(method: str, params: dict[str, Any] | None = None, request_id: Any = None) -> dict[str, Any]:
    """A request (with `request_id`) or a notification, `params` left out when None."""
    msg: dict[str, Any] = {"jsonrpc": "2.0"} if request_id is None else {"jsonrpc": "2.0", "id": request_id}
    msg["method"] = method
    if params is not None:
        msg["params"] = params
    return msg


class RawClient(Inbox):
    """What both raw clients share: `result` on top of each one's `request`."""

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request(method, params)
        assert "result" in response, response
        return response["result"]


class RawHttp(RawClient):
    """A raw streamable-HTTP MCP client: the wire JSON of every reply, ids chosen by the test.

    Messages of the standalone GET stream (opened by `raw_http(..., standalone=True)`) land in the inbox.
    """

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        super().__init__()
        self.http = http
        self.url = url
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.init_result: dict[str, Any] = {}
        self.next_id = 0

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"accept": ACCEPT_BOTH, "content-type": "application/json"}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        if self.protocol_version:
            headers["mcp-protocol-version"] = self.protocol_version
        return {**headers, **extra}

    async def post(self, msg: dict[str, Any], **headers: str) -> httpx2.Response:
        return await self.http.post(self.url, content=orjson.dumps(msg), headers=self.headers(**headers))

    async def initialize(
        self, capabilities: dict[str, Any] | None = None, version: str = HANDSHAKE_VERSION
    ) -> dict[str, Any]:
        params = {"protocolVersion": version, "capabilities": capabilities or {}, "clientInfo": CLIENT_INFO}
        response = await self.post({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params})
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        (answer,) = messages_of(response)
        self.init_result = answer["result"]
        self.protocol_version = answer["result"]["protocolVersion"]
        await self.notify("notifications/initialized")
        return answer["result"]

    async def exchange(
        self, method: str, params: dict[str, Any] | None = None, request_id: Any = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send a request; return its response and the messages that came before it on its stream."""
        if request_id is None:
            self.next_id += 1
            request_id = self.next_id
        reply = await self.post(jsonrpc(method, params, request_id))
        assert reply.status_code == 200, reply.text
        *related, response = messages_of(reply)
        assert response.get("id") == request_id, response
        return response, related

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return (await self.exchange(method, params))[0]

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        reply = await self.post(jsonrpc(method, params))
        assert reply.status_code == 202, reply.text

    async def delete(self) -> int:
        return (await self.http.delete(self.url, headers=self.headers())).status_code


@asynccontextmanager
async def raw_http(
    url: str,
    capabilities: dict[str, Any] | None = None,
    *,
    standalone: bool = False,
    token: str | None = None,
) -> AsyncIterator[RawHttp]:
    """An initialized `RawHttp` session (deleted on exit), with its GET stream open if `standalone`,
    sending `Authorization: Bearer <token>` when a token is given."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(BOUND_SECONDS, read=None)) as http,
        anyio.create_task_group() as tg,
    ):
        client = RawHttp(http, url)
        await client.initialize(capabilities)
        if standalone:
            await tg.start(_read_get_stream, client)
        try:
            yield client
        finally:
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await client.delete()


async def _read_get_stream(client: RawHttp, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    headers = client.headers(accept="text/event-stream")
    async with client.http.stream("GET", client.url, headers=headers) as stream:
        assert stream.status_code == 200, await stream.aread()
        task_status.started()
        await client.pump(iter_events(stream.aiter_bytes()))


class RawSse(RawClient):
    """A raw legacy-SSE MCP client: POSTs to the announced endpoint, reads everything from the stream."""

    def __init__(self, http: httpx2.AsyncClient, endpoint: str) -> None:
        super().__init__()
        self.http = http
        self.endpoint = endpoint
        self.next_id = 0
        self.init_result: dict[str, Any] = {}

    async def send(self, msg: dict[str, Any]) -> None:
        reply = await self.http.post(
            self.endpoint, content=orjson.dumps(msg), headers={"content-type": "application/json"}
        )
        assert reply.status_code == 202, reply.text

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        request_id = f"r{self.next_id}"
        await self.send(jsonrpc(method, params, request_id))
        return await self.receive(lambda m: m.get("id") == request_id and "method" not in m)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.send(jsonrpc(method, params))

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        params = {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": capabilities or {},
            "clientInfo": CLIENT_INFO,
        }
        result = self.init_result = await self.result("initialize", params)
        await self.notify("notifications/initialized")
        return result


@asynccontextmanager
async def raw_sse(url: str, capabilities: dict[str, Any] | None = None) -> AsyncIterator[RawSse]:
    """An initialized `RawSse` session on `…/sse`; closing the stream ends it."""
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(BOUND_SECONDS, read=None)) as http,
        http.stream("GET", url, headers={"accept": "text/event-stream"}) as stream,
        anyio.create_task_group() as tg,
    ):
        assert stream.status_code == 200
        events = iter_events(stream.aiter_bytes())
        with anyio.fail_after(BOUND_SECONDS):
            first = await anext(events)
        assert first.event == "endpoint", first

        client = RawSse(http, first.data)
        tg.start_soon(client.pump, events)
        await client.initialize(capabilities)
        yield client
        tg.cancel_scope.cancel()


def through(
    proxy: ProxyProcess, kind: str, face: str, *, standalone: bool = False, **kwargs: Any
) -> AbstractAsyncContextManager[Any]:
    """A raw client of route `kind` on the streamable-HTTP (`mcp`; its GET stream open if `standalone`)
    or the legacy SSE (`sse`) face."""
    if face == "mcp":
        return raw_http(proxy.url(f"/{kind}/mcp"), standalone=standalone, **kwargs)
    return raw_sse(proxy.url(f"/{kind}/sse"), **kwargs)
