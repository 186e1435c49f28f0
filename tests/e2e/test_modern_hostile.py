"""Hostile 2026-07-28 requests (issues 11/12 for the sessionless era): bad envelopes, forged or misplaced
`requestState`, huge `inputResponses`, routing-header games, `server/discover` and `subscriptions/listen`
beyond the token's reach. Each gets its JSON-RPC/HTTP error; the process and other callers go on; no
traceback, secret or other server's name reaches the caller.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_kit import deep, fuzz_settings, hostile_values, json_values
from harness import ProxyProcess, fixture_server, running_proxy

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
TOKEN_A = "token-alpha-0123456789"
TOKEN_B = "token-beta-9876543210"
SCOPED = {"token": "token-scoped-5555555555", "servers": ["both"]}  # on /mcp: only `both`
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"
ENVELOPE = {VERSION_KEY: MODERN, CAPS_KEY: {"sampling": {}}}
BOUND_SECONDS = 30
SAMPLED = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
ASK = {"name": "ask_sampling", "arguments": {"prompt": "p"}}


def named(name: str, tokens: list[Any]) -> dict[str, Any]:
    entry = fixture_server("", "--name", name)
    entry["options"] = {"authTokens": tokens}
    return entry


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """`alpha` takes token A, `beta` (a distinctive serverInfo name) token B, `both` either; `/mcp` and
    the group `pair` take both tokens."""
    config = {
        "mcpProxy": {"options": {"authTokens": [TOKEN_A, TOKEN_B, SCOPED]}},
        "mcpServers": {
            "alpha": named("alpha-upstream", [TOKEN_A]),
            "beta": named("zebra-upstream-of-beta", [TOKEN_B]),
            "both": named("both-upstream", [TOKEN_A, TOKEN_B, SCOPED]),
        },
        "mcpGroups": {"pair": {"servers": ["alpha", "beta"]}},
    }
    with running_proxy(
        config, tmp_path_factory.mktemp("hostile2026"), extra_args=("--log-level", "debug")
    ) as p:
        yield p


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    limits = httpx2.Limits(max_connections=100)
    async with httpx2.AsyncClient(timeout=BOUND_SECONDS, limits=limits) as client:
        yield client


def headers_for(token: str, method: str, name: Any = None, **extra: str) -> dict[str, str]:
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if isinstance(name, str):
        headers["mcp-name"] = name
    return {**headers, **extra}


async def post(
    http: httpx2.AsyncClient,
    url: str,
    method: str,
    params: dict[str, Any],
    *,
    token: str = TOKEN_A,
    meta: Any = None,
    headers: dict[str, str] | list[tuple[str, str]] | list[tuple[str, bytes]] | None = None,
) -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta or ENVELOPE}}
    sent = headers if headers is not None else headers_for(token, method, params.get("name"))
    return await http.post(url, content=json.dumps(body), headers=sent)  # json: deeper than orjson writes


def assert_healthy(proxy: ProxyProcess, since: int) -> None:
    assert proxy.process.poll() is None, proxy.log[-3000:]
    assert "Traceback" not in proxy.log[since:], proxy.log[since:][-3000:]
    for secret in (TOKEN_A, TOKEN_B):
        assert secret not in proxy.log, "a token reached the log"


async def assert_bystander_served(http: httpx2.AsyncClient, proxy: ProxyProcess) -> None:
    reply = await post(http, proxy.url("/both/mcp"), "tools/list", {}, token=TOKEN_B)
    assert reply.status_code == 200 and reply.json()["result"]["tools"], reply.text


BAD_META = {
    "log level a list": {**ENVELOPE, "io.modelcontextprotocol/logLevel": ["debug"]},
    "log level an object": {**ENVELOPE, "io.modelcontextprotocol/logLevel": {"a": 1}},
    "log level unknown": {**ENVELOPE, "io.modelcontextprotocol/logLevel": "loud"},
    "capabilities a list": {**ENVELOPE, CAPS_KEY: [1]},
    "capabilities null": {**ENVELOPE, CAPS_KEY: None},
    "client info a string": {**ENVELOPE, "io.modelcontextprotocol/clientInfo": "x"},
    "no version": {CAPS_KEY: {}},
    "capabilities nested too deeply": {**ENVELOPE, CAPS_KEY: {"sampling": deep(300)}},  # isolated: was 503
    "client info nested too deeply": {**ENVELOPE, "io.modelcontextprotocol/clientInfo": {"name": deep(300)}},
    "no capabilities": {VERSION_KEY: MODERN},
}


@pytest.mark.parametrize("case", sorted(BAD_META))
async def test_a_bad_envelope_value_is_invalid_params_never_a_500(
    proxy: ProxyProcess, http: httpx2.AsyncClient, case: str
) -> None:
    since = len(proxy.log)
    reply = await post(http, proxy.url("/alpha/mcp"), "tools/list", {}, meta=BAD_META[case])
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == -32602 and reply.json()["id"] == 7
    await assert_bystander_served(http, proxy)
    assert_healthy(proxy, since)


@pytest.mark.parametrize("version", [7, ["2026-07-28"], {"v": MODERN}, None, True])
async def test_a_protocol_version_of_the_wrong_type_is_refused(
    proxy: ProxyProcess, http: httpx2.AsyncClient, version: Any
) -> None:
    since = len(proxy.log)
    reply = await post(http, proxy.url("/mcp"), "tools/list", {}, meta={**ENVELOPE, VERSION_KEY: version})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] in (-32602, -32020)  # the header no longer equals the body
    assert_healthy(proxy, since)


async def input_required(http: httpx2.AsyncClient, url: str, token: str = TOKEN_A) -> dict[str, Any]:
    name = ASK["name"] if url.endswith(("/alpha/mcp", "/both/mcp")) else "both__ask_sampling"
    reply = await post(http, url, "tools/call", {**ASK, "name": name}, token=token)
    result = reply.json()["result"]
    assert result["resultType"] == "input_required", result
    return result


def retry_params(asked: dict[str, Any], name: str = "ask_sampling", **extra: Any) -> dict[str, Any]:
    ((key, _),) = asked["inputRequests"].items()
    responses = {key: SAMPLED}
    return {**ASK, "name": name, "inputResponses": responses, "requestState": asked["requestState"], **extra}


async def test_a_request_state_works_only_on_the_route_and_for_the_token_that_got_it(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    since = len(proxy.log)
    with anyio.fail_after(BOUND_SECONDS):
        asked = await input_required(http, proxy.url("/both/mcp"))
        retry = retry_params(asked)
        elsewhere = {
            "same tool name on another route": (proxy.url("/alpha/mcp"), TOKEN_A, retry),
            "the merged endpoint": (proxy.url("/mcp"), TOKEN_A, retry_params(asked, "both__ask_sampling")),
            "another token on the same route": (proxy.url("/both/mcp"), TOKEN_B, retry),
        }
        for why, (url, token, params) in elsewhere.items():
            reply = await post(http, url, "tools/call", params, token=token)
            assert reply.json()["error"]["code"] == -32602, (why, reply.text)
            assert asked["requestState"] not in reply.text
        done = await post(http, proxy.url("/both/mcp"), "tools/call", retry)
        assert done.json()["result"]["resultType"] == "complete", done.text
    assert_healthy(proxy, since)


@pytest.mark.parametrize(
    "state",
    [
        "",
        "mx1.",
        "mx1..",
        "mx1.e30.",
        "mx1.bm90IGpzb24.AAAA",
        "x" * 9000,
        "mx1." + "é" * 10,
        12,
        None,
        ["mx1."],
    ],
)
async def test_a_forged_request_state_is_invalid_params(
    proxy: ProxyProcess, http: httpx2.AsyncClient, state: Any
) -> None:
    since = len(proxy.log)
    params = {**ASK, "inputResponses": {"mcpmux-1": SAMPLED}, "requestState": state}
    reply = await post(http, proxy.url("/alpha/mcp"), "tools/call", params)
    assert reply.status_code == 200, reply.text
    assert reply.json()["error"]["code"] == -32602
    assert_healthy(proxy, since)


async def test_huge_input_responses_answer_only_what_was_asked(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    since = len(proxy.log)
    with anyio.fail_after(BOUND_SECONDS):
        asked = await input_required(http, proxy.url("/alpha/mcp"))
        ((key, _),) = asked["inputRequests"].items()
        flood = {f"mcpmux-{n}": {"role": "assistant", "junk": "x" * 64} for n in range(20_000)}
        params = {**retry_params(asked), "inputResponses": {**flood, key: SAMPLED}}
        done = await post(http, proxy.url("/alpha/mcp"), "tools/call", params)
        assert done.json()["result"]["resultType"] == "complete", done.text[:500]
    await assert_bystander_served(http, proxy)
    assert_healthy(proxy, since)


async def test_discover_shows_only_what_the_token_reaches(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    for path in ("/mcp", "/pair/mcp"):
        as_a = await post(http, proxy.url(path), "server/discover", {})
        assert as_a.status_code == 200, as_a.text
        assert "zebra" not in as_a.text and "beta" not in as_a.text, as_a.text
        as_b = await post(http, proxy.url(path), "server/discover", {}, token=TOKEN_B)
        assert "zebra" in as_b.text or "beta" in as_b.text, as_b.text  # the check above can fail
        assert "alpha" not in as_b.text, as_b.text
    scoped = await post(http, proxy.url("/mcp"), "server/discover", {}, token=str(SCOPED["token"]))
    assert scoped.status_code == 200 and "both" in scoped.text, scoped.text
    assert not any(name in scoped.text for name in ("alpha", "beta", "zebra")), scoped.text
    nobody = await post(http, proxy.url("/beta/mcp"), "server/discover", {})
    assert nobody.status_code == 401 and "zebra" not in nobody.text


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"mcp-method": "tools/list"}, "echo"),  # the header says another method
        ({"mcp-name": "=?base64?!!!?="}, "echo"),  # a malformed encoded name
        ({"mcp-name": "=?base64?ZWNobw?="}, "echo"),  # non-canonical base64 of the right name
        ({"mcp-name": "=?base64?\x80\xff?="}, "echo"),  # obs-text inside the encoding (was a ValueError)
        ({"mcp-name": "other"}, "echo"),
        ({"mcp-protocol-version": "2025-06-18"}, "echo"),  # a handshake version, no session
    ],
)
async def test_routing_headers_that_disagree_with_the_body_are_refused(
    proxy: ProxyProcess, http: httpx2.AsyncClient, extra: dict[str, str], name: str
) -> None:
    since = len(proxy.log)
    headers = [(k, v.encode("latin-1")) for k, v in headers_for(TOKEN_A, "tools/call", name, **extra).items()]
    reply = await post(
        http, proxy.url("/alpha/mcp"), "tools/call", {"name": name, "arguments": {}}, headers=headers
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] in (-32020, -32600), reply.text
    assert_healthy(proxy, since)


async def open_listen(http: httpx2.AsyncClient, url: str, stack: Any, sub: int) -> httpx2.Response:
    params = {"notifications": {"toolsListChanged": True}, "_meta": ENVELOPE}
    body = {"jsonrpc": "2.0", "id": sub, "method": "subscriptions/listen", "params": params}
    headers = headers_for(TOKEN_A, "subscriptions/listen")
    stream = http.stream("POST", url, content=orjson.dumps(body), headers=headers)
    return await stack.enter_async_context(stream)


async def test_listen_streams_per_token_are_bounded_and_others_unaffected(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    from contextlib import AsyncExitStack

    since = len(proxy.log)
    url = proxy.url("/both/mcp")
    with anyio.fail_after(BOUND_SECONDS * 2):
        async with AsyncExitStack() as stack:
            for sub in range(64):
                stream = await open_listen(http, url, stack, sub)
                assert stream.status_code == 200
            refused = await open_listen(http, url, stack, 64)
            assert refused.status_code == 400
            assert "at most 64 listen streams" in (await refused.aread()).decode()
            await assert_bystander_served(http, proxy)  # token B on the same route is not affected
        async with AsyncExitStack() as stack:  # closed streams free their places
            assert (await open_listen(http, url, stack, 99)).status_code == 200
    assert_healthy(proxy, since)


envelopes = st.fixed_dictionaries(
    {},
    optional={
        VERSION_KEY: st.one_of(st.just(MODERN), hostile_values),
        CAPS_KEY: st.one_of(st.just({}), hostile_values),
        "io.modelcontextprotocol/clientInfo": hostile_values,
        "io.modelcontextprotocol/logLevel": st.one_of(st.sampled_from(["debug", "error"]), json_values),
    },
)
modern_methods = st.sampled_from(
    ["tools/list", "tools/call", "prompts/get", "resources/read", "server/discover", "subscriptions/listen"]
)
modern_params = st.fixed_dictionaries(
    {"_meta": st.one_of(envelopes, hostile_values)},
    optional={
        "name": hostile_values,
        "uri": hostile_values,
        "arguments": hostile_values,
        "requestState": hostile_values,
        "inputResponses": hostile_values,
        "notifications": st.one_of(json_values, st.just({"resourceSubscriptions": [1, "x", None]})),
    },
)
printable = st.characters(min_codepoint=32, max_codepoint=126)
header_values = st.one_of(st.none(), st.text(alphabet=printable, max_size=30).map(str.strip))


@pytest.fixture(scope="module")
def sync_http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=BOUND_SECONDS) as client:  # one client: no TLS context per example
        yield client


def sync_post(
    http: httpx2.Client,
    proxy: ProxyProcess,
    method: str,
    params: dict[str, Any],
    name: str | None,
    mcp_method: str | None,
) -> httpx2.Response:
    headers = headers_for(TOKEN_A, mcp_method or method, name, accept="application/json")
    if mcp_method is None:
        del headers["mcp-method"]
    body = json.dumps({"jsonrpc": "2.0", "id": "fz", "method": method, "params": params})
    return http.post(proxy.url("/alpha/mcp"), content=body, headers=headers)


@fuzz_settings(40)
@given(modern_methods, modern_params, header_values, header_values)
def test_fuzz_2026_requests(
    proxy: ProxyProcess,
    sync_http: httpx2.Client,
    method: str,
    params: dict[str, Any],
    name: str | None,
    mcp_method: str | None,
) -> None:
    since = len(proxy.log)
    if method == "subscriptions/listen":
        method = "tools/list"  # a well-formed listen stream stays open: covered above
    reply = sync_post(sync_http, proxy, method, params, name, mcp_method)
    assert reply.status_code in (200, 400, 404, 406), reply.text
    answer = reply.json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] == "fz", answer
    assert ("result" in answer) != ("error" in answer), answer
    if "error" in answer:
        assert type(answer["error"]["code"]) is int and "Traceback" not in answer["error"]["message"]
    assert_healthy(proxy, since)
    ok = sync_post(sync_http, proxy, "tools/list", {"_meta": ENVELOPE}, None, "tools/list")
    assert ok.status_code == 200 and ok.json()["result"]["tools"], ok.text


def twice(name: str, first: str, second: str, method: str = "tools/list") -> list[tuple[str, str]]:
    """The headers of a 2026 request with `name` sent twice (first, then second)."""
    plain = [(k, v) for k, v in headers_for(TOKEN_A, method).items() if k != name]
    return [*plain, (name, first), (name, second)]


@pytest.mark.parametrize(
    "sent",
    [
        twice("authorization", f"Bearer {TOKEN_A}", "Bearer wrong-token-xxxx"),
        twice("authorization", "Bearer wrong-token-xxxx", f"Bearer {TOKEN_A}"),
        twice("authorization", f"Bearer {TOKEN_B}", f"Bearer {TOKEN_A}"),
        twice("mcp-method", "tools/list", "tools/call"),
        twice("mcp-method", "tools/list", "tools/list"),
        twice("mcp-protocol-version", MODERN, MODERN),
        twice("mcp-session-id", "a", "b"),
        twice("origin", "http://127.0.0.1", "http://evil.example"),
    ],
    ids=[
        "auth-good-bad",
        "auth-bad-good",
        "auth-b-a",
        "method",
        "method-same",
        "version",
        "session",
        "origin",
    ],
)
async def test_a_header_that_must_come_once_sent_twice_is_refused(
    proxy: ProxyProcess, http: httpx2.AsyncClient, sent: list[tuple[str, str]]
) -> None:
    since = len(proxy.log)
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": ENVELOPE}}
    reply = await http.post(proxy.url("/alpha/mcp"), content=orjson.dumps(body), headers=sent)
    assert reply.status_code == 400, reply.text
    assert "more than one" in reply.text and "result" not in reply.json()
    assert_healthy(proxy, since)


async def test_an_mcp_param_header_sent_twice_is_a_mismatch(
    proxy: ProxyProcess, http: httpx2.AsyncClient
) -> None:
    call = {"name": "routed_echo", "arguments": {"region": "eu"}}
    single = [*headers_for(TOKEN_A, "tools/call", "routed_echo").items(), ("mcp-param-region", "eu")]
    ok = await post(http, proxy.url("/alpha/mcp"), "tools/call", call, headers=single)
    assert ok.status_code == 200 and ok.json()["result"]["content"][0]["text"] == "routed to eu", ok.text
    for second in ("us", "eu"):
        doubled = [*single, ("Mcp-Param-Region", second)]
        reply = await post(http, proxy.url("/alpha/mcp"), "tools/call", call, headers=doubled)
        assert (reply.status_code, reply.json()["error"]["code"]) == (400, -32020), reply.text
