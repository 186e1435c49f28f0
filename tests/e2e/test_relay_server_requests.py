"""Sampling, elicitation and roots requests from an upstream reach the client whose call caused them.

Two clients are connected at once and answer differently, so a misrouted request shows in the result.
On an isolated upstream the routing is always exact; on a shared stdio upstream it is exact while one
client has requests in flight, and a clear error goes back to the upstream otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import mcp_types as types
import orjson
import pytest
from relay_kit import RawHttp, raw_http, relay_proxy

from harness import ProxyProcess, mcp_client
from mcpmux.upstream.sse_events import iter_events

pytestmark = pytest.mark.anyio

ISOLATED_KINDS = ("streamable-http", "sse")
FACES = {"mcp": "streamable-http", "sse": "sse"}
ASKS: dict[str, dict[str, Any]] = {
    "ask_sampling": {"prompt": "hi"},
    "ask_elicitation": {"message": "Who?"},
    "ask_elicitation_url": {"url": "https://example.com/verify", "elicitationId": "e-1"},
    "ask_roots": {},
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    routes = {kind: (kind, (), {}) for kind in ("stdio", *ISOLATED_KINDS)}
    routes["http_shared"] = ("streamable-http", (), {"sessionMode": "shared"})
    with relay_proxy(tmp_path_factory.mktemp("server-requests"), routes) as running:
        yield running


class Answerer:
    """The callbacks of one client: each answer names the client; every request's params are kept."""

    def __init__(self, name: str, rendezvous: Callable[[], Any] | None = None) -> None:
        self.name = name
        self.rendezvous = rendezvous
        self.asked: list[tuple[str, Any]] = []

    async def _arrived(self, method: str, params: Any) -> None:
        self.asked.append((method, params))
        if self.rendezvous is not None:
            await self.rendezvous()

    async def sampling(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        await self._arrived("sampling", params)
        text = types.TextContent(type="text", text=f"sampled by {self.name}")
        return types.CreateMessageResult(role="assistant", content=text, model=f"model-{self.name}")

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        await self._arrived("elicitation", params)
        if isinstance(params, types.ElicitRequestURLParams):
            return types.ElicitResult(action="decline" if self.name == "b" else "accept")
        return types.ElicitResult(action="accept", content={"name": self.name})

    async def roots(self, context: Any) -> types.ListRootsResult:
        await self._arrived("roots", None)
        return types.ListRootsResult(roots=[types.Root(uri=f"file:///{self.name}", name=self.name)])

    def callbacks(self) -> dict[str, Any]:
        return {
            "sampling_callback": self.sampling,
            "elicitation_callback": self.elicitation,
            "list_roots_callback": self.roots,
        }


def expected_answer(tool: str, name: str) -> dict[str, Any]:
    if tool == "ask_sampling":
        return {
            "role": "assistant",
            "content": {"type": "text", "text": f"sampled by {name}"},
            "model": f"model-{name}",
        }
    if tool == "ask_elicitation":
        return {"action": "accept", "content": {"name": name}}
    if tool == "ask_elicitation_url":
        return {"action": "decline" if name == "b" else "accept"}
    return {"roots": [{"uri": f"file:///{name}", "name": name}]}


def answer_in(result: types.CallToolResult) -> dict[str, Any]:
    answer = json.loads(result.content[0].text)
    answer.pop("_meta", None)
    return answer


def rendezvous_of(count: int) -> Callable[[], Any]:
    """A barrier: each caller waits until `count` callers arrived (bounded by the test's timeout)."""
    arrived = [0]
    everyone = anyio.Event()

    async def meet() -> None:
        arrived[0] += 1
        if arrived[0] == count:
            everyone.set()
        await everyone.wait()

    return meet


async def ask_both_at_once(sessions: dict[str, Any], answerers: dict[str, Answerer], tool: str) -> None:
    """Both clients call `tool` together; each must answer (and be asked) while the other is asked too."""
    meet = rendezvous_of(len(sessions))
    for answerer in answerers.values():
        answerer.rendezvous = meet
        answerer.asked.clear()
    results: dict[str, types.CallToolResult] = {}

    async def call(name: str) -> None:
        results[name] = await sessions[name].call_tool(tool, ASKS[tool])

    async with anyio.create_task_group() as tg:
        for name in sessions:
            tg.start_soon(call, name)
    for name, answerer in answerers.items():
        assert not results[name].is_error, results[name]
        assert answer_in(results[name]) == expected_answer(tool, name), tool
        assert len(answerer.asked) == 1, tool


@pytest.mark.parametrize("kind", ISOLATED_KINDS)
@pytest.mark.parametrize("face", FACES)
async def test_two_clients_asked_at_once_by_an_isolated_upstream_each_get_their_own_requests(
    proxy: ProxyProcess, kind: str, face: str
) -> None:
    answerers = {name: Answerer(name) for name in ("a", "b")}
    url = proxy.url(f"/{kind}/{face}")
    with anyio.fail_after(20):
        async with (
            mcp_client(url, transport=FACES[face], **answerers["a"].callbacks()) as a,
            mcp_client(url, transport=FACES[face], **answerers["b"].callbacks()) as b,
        ):
            for tool in ASKS:
                await ask_both_at_once({"a": a, "b": b}, answerers, tool)


async def test_a_shared_http_upstream_says_which_call_a_request_belongs_to_so_both_clients_get_their_own(
    proxy: ProxyProcess,
) -> None:
    answerers = {name: Answerer(name) for name in ("a", "b")}
    url = proxy.url("/http_shared/mcp")
    with anyio.fail_after(20):
        async with (
            mcp_client(url, **answerers["a"].callbacks()) as a,
            mcp_client(url, **answerers["b"].callbacks()) as b,
        ):
            whoami = [(await c.call_tool("whoami", {})).structured_content for c in (a, b)]
            assert whoami[0]["sessionId"] == whoami[1]["sessionId"]  # one upstream session for both
            for tool in ASKS:
                await ask_both_at_once({"a": a, "b": b}, answerers, tool)


async def test_a_url_elicitation_and_its_completion_notice_reach_the_client(proxy: ProxyProcess) -> None:
    answerer = Answerer("a")
    completed = anyio.Event()
    seen: list[Any] = []

    async def on_message(message: Any) -> None:
        seen.append(message)
        if isinstance(message, types.ElicitCompleteNotification):
            completed.set()

    with anyio.fail_after(20):
        async with mcp_client(
            proxy.url("/stdio/mcp"), message_handler=on_message, **answerer.callbacks()
        ) as a:
            arguments = {**ASKS["ask_elicitation_url"], "complete": True}
            assert answer_in(await a.call_tool("ask_elicitation_url", arguments)) == {"action": "accept"}
            await completed.wait()
    ((_, params),) = answerer.asked
    assert (params.mode, params.url, params.elicitation_id) == ("url", "https://example.com/verify", "e-1")
    notice = next(m for m in seen if isinstance(m, types.ElicitCompleteNotification))
    assert notice.params.elicitation_id == "e-1"


@pytest.mark.parametrize("kind", ISOLATED_KINDS)
async def test_a_server_request_sent_outside_any_call_reaches_the_owner_of_the_isolated_session(
    proxy: ProxyProcess, kind: str
) -> None:
    answerers = {name: Answerer(name) for name in ("a", "b")}
    with anyio.fail_after(20):
        async with (
            mcp_client(proxy.url(f"/{kind}/mcp"), **answerers["a"].callbacks()) as a,
            mcp_client(proxy.url(f"/{kind}/sse"), transport="sse", **answerers["b"].callbacks()) as b,
        ):
            for session, name in ((a, "a"), (b, "b")):
                result = await session.call_tool("ask_sampling", {"standalone": True})
                assert answer_in(result) == expected_answer("ask_sampling", name)
    assert [method for method, _ in answerers["a"].asked] == ["sampling"]
    assert [method for method, _ in answerers["b"].asked] == ["sampling"]


async def test_on_a_shared_stdio_upstream_the_only_client_with_a_call_in_flight_is_asked(
    proxy: ProxyProcess,
) -> None:
    answerers = {name: Answerer(name) for name in ("a", "b")}
    with anyio.fail_after(20):
        async with (
            mcp_client(proxy.url("/stdio/mcp"), **answerers["a"].callbacks()) as a,
            mcp_client(proxy.url("/stdio/sse"), transport="sse", **answerers["b"].callbacks()) as b,
        ):
            for tool in ASKS:
                assert answer_in(await b.call_tool(tool, ASKS[tool])) == expected_answer(tool, "b")
                assert answer_in(await a.call_tool(tool, ASKS[tool])) == expected_answer(tool, "a")
    assert len(answerers["a"].asked) == len(answerers["b"].asked) == len(ASKS)


async def test_on_a_shared_stdio_upstream_a_request_with_two_possible_clients_gets_a_clear_error(
    proxy: ProxyProcess,
) -> None:
    answerers = {name: Answerer(name) for name in ("a", "b")}
    busy = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        busy.set()

    with anyio.fail_after(20):
        async with (
            mcp_client(proxy.url("/stdio/mcp"), **answerers["a"].callbacks()) as a,
            mcp_client(proxy.url("/stdio/mcp"), **answerers["b"].callbacks()) as b,
            anyio.create_task_group() as tg,
        ):

            async def keep_a_busy() -> None:
                await a.call_tool("slow", {"seconds": 30}, progress_callback=on_progress)

            tg.start_soon(keep_a_busy)
            await busy.wait()
            refused = await b.call_tool("ask_sampling", {})
            tg.cancel_scope.cancel()
        assert refused.is_error
        error = json.loads(refused.content[0].text)["error"]
        assert error["code"] == -32603
        assert error["message"] == (
            "mcpmux: cannot tell which client sampling/createMessage is for"
            " (2 clients have requests in flight)"
        )
        assert answerers["a"].asked == answerers["b"].asked == []


@pytest.mark.parametrize("kind", ["stdio", *ISOLATED_KINDS])
async def test_a_client_without_the_capability_gets_none_and_the_upstream_gets_a_clear_error(
    proxy: ProxyProcess, kind: str
) -> None:
    with anyio.fail_after(20):
        async with mcp_client(proxy.url(f"/{kind}/mcp")) as session:
            for tool, capability in (
                ("ask_sampling", "sampling"),
                ("ask_elicitation", "elicitation"),
                ("ask_roots", "roots"),
            ):
                result = await session.call_tool(tool, ASKS[tool])
                assert result.is_error
                error = json.loads(result.content[0].text)["error"]
                assert error["code"] == -32601
                assert error["message"] == f"the client did not declare the {capability} capability"


async def call_answering(client: RawHttp, tool: str, arguments: dict[str, Any], answer: Any) -> list[Any]:
    """POST a tool call, answer each server request on its stream with `answer`; every message, in order."""
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    seen: list[dict[str, Any]] = []
    body = orjson.dumps(call)
    async with client.http.stream("POST", client.url, content=body, headers=client.headers()) as reply:
        if reply.headers["content-type"] == "application/json":  # nothing had to go before the result
            return [orjson.loads(await reply.aread())]
        async for event in iter_events(reply.aiter_bytes()):
            seen.append(msg := orjson.loads(event.data))
            if "method" in msg and "id" in msg:
                accepted = await client.post({"jsonrpc": "2.0", "id": msg["id"], "result": answer})
                assert accepted.status_code == 202
    return seen


@pytest.mark.parametrize("kind", ["stdio", "streamable-http"])
async def test_a_server_request_reaches_the_client_verbatim_on_the_calls_stream_and_its_answer_goes_back(
    proxy: ProxyProcess, kind: str
) -> None:
    """A raw client sees the upstream's request as sent, under an id of the proxy, and answers it."""
    answer = {"role": "assistant", "content": {"type": "text", "text": "raw"}, "model": "m", "x-extra": 1}
    with anyio.fail_after(20):
        async with raw_http(proxy.url(f"/{kind}/mcp"), {"sampling": {}}) as client:
            asked, response = await call_answering(client, "ask_sampling", {"prompt": "ü"}, answer)
    assert asked["params"]["messages"] == [{"role": "user", "content": {"type": "text", "text": "ü"}}]
    assert asked["params"]["maxTokens"] == 100
    assert str(asked["id"]).startswith("mcpmux-")
    assert response["id"] == 1
    assert json.loads(response["result"]["content"][0]["text"]) == answer


@pytest.mark.parametrize("kind", ["stdio", "streamable-http"])
async def test_a_custom_server_request_is_forwarded_verbatim_and_answered(
    proxy: ProxyProcess, kind: str
) -> None:
    params = {"q": [1, {"deep": None}], "_meta": {"com.example/m": "v"}}
    answer = {"a": 42, "x-any": {"nested": [True]}}
    with anyio.fail_after(20):
        async with raw_http(proxy.url(f"/{kind}/mcp")) as client:
            asked, response = await call_answering(client, "ask_custom", {"params": params}, answer)
    assert (asked["method"], asked["params"]) == ("x/question", params)
    assert json.loads(response["result"]["content"][0]["text"]) == answer


@pytest.mark.parametrize("kind", ["stdio", "streamable-http"])
async def test_a_client_declaring_only_form_elicitation_gets_form_requests_and_url_ones_are_refused(
    proxy: ProxyProcess, kind: str
) -> None:
    accept = {"action": "accept", "content": {"name": "form"}}
    with anyio.fail_after(20):
        async with raw_http(proxy.url(f"/{kind}/mcp"), {"elicitation": {}}) as client:
            asked, answered = await call_answering(client, "ask_elicitation", {}, accept)
            assert asked["method"] == "elicitation/create"
            assert json.loads(answered["result"]["content"][0]["text"]) == accept
            (refused,) = await call_answering(
                client, "ask_elicitation_url", ASKS["ask_elicitation_url"], None
            )
    assert refused["result"]["isError"] is True
    assert json.loads(refused["result"]["content"][0]["text"])["error"] == {
        "code": -32601,
        "message": "the client did not declare the elicitation.url capability",
    }
