"""The merged endpoint and groups serve a token only the members its own routes would serve it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from merged_kit import auth_status, colliding_server, raw_client, raw_list_all

from harness import ProxyProcess, running_proxy

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 20


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = {
        "mcpProxy": {"name": "mux", "options": {"authTokens": ["ta", "tb"]}},
        "mcpServers": {
            "a": colliding_server(authTokens=["ta"]),
            "b": colliding_server(
                authTokens=["tb", {"token": "tb-echo", "toolFilter": {"mode": "allow", "list": ["b__echo"]}}]
            ),
            "open": colliding_server(authTokens=[]),
        },
        "mcpGroups": {
            "ab": {"servers": ["a", "b"], "options": {"authTokens": ["ta", "tb", "tb-echo"]}},
            "anyone": {"servers": ["a", "open"], "options": {"authTokens": []}},
            "closed": {"servers": ["a"], "options": {"authTokens": []}},
        },
    }
    with running_proxy(config, tmp_path_factory.mktemp("merged-access")) as running:
        yield running


async def servers_seen(url: str, token: str | None) -> dict[str, set[str]]:
    """Per kind (tools, prompts, resources), the namespaces the token sees on a merged route."""
    async with raw_client(url, token) as client:
        seen = {}
        for method, key, field in (
            ("tools/list", "tools", "name"),
            ("prompts/list", "prompts", "name"),
            ("resources/list", "resources", "uri"),
        ):
            items = await raw_list_all(client, method, key)
            seen[key] = {namespace(str(item[field])) for item in items}
    return seen


def namespace(name: str) -> str:
    if name.startswith("mcpmux://"):
        return name.removeprefix("mcpmux://").split("/", 1)[0]
    return name.split("__", 1)[0] if "__" in name else "<bare>"


async def test_each_token_sees_on_the_merged_endpoint_only_the_servers_it_may_use(
    proxy: ProxyProcess,
) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        ta = await servers_seen(proxy.url("/mcp"), "ta")
        tb = await servers_seen(proxy.url("/mcp"), "tb")
    assert ta == {"tools": {"a", "open"}, "prompts": {"a", "open"}, "resources": {"a", "open"}}
    assert tb == {"tools": {"b", "open"}, "prompts": {"b", "open"}, "resources": {"b", "open"}}


async def test_groups_narrow_each_token_to_its_servers_and_their_scopes(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        ta = await servers_seen(proxy.url("/ab/mcp"), "ta")
        anonymous = await servers_seen(proxy.url("/anyone/mcp"), None)
        with_ta = await servers_seen(proxy.url("/anyone/mcp"), "ta")
        async with raw_client(proxy.url("/ab/mcp"), "tb-echo") as client:
            scoped = {t["name"] for t in await raw_list_all(client, "tools/list", "tools")}
    assert ta["tools"] == {"a"}
    assert anonymous["tools"] == {"open"}
    assert with_ta["tools"] == {"a", "open"}
    assert scoped == {"b__echo"}


async def test_calls_prompts_resources_completions_and_subscriptions_of_other_servers_are_refused(
    proxy: ProxyProcess,
) -> None:
    """`ta` on /mcp: b's names exist in the merged catalog, but are answered as unknown."""
    requests: dict[str, tuple[str, dict[str, Any]]] = {
        "call": ("tools/call", {"name": "b__echo", "arguments": {"text": "x"}}),
        "prompt": ("prompts/get", {"name": "b__test_simple_prompt"}),
        "read": ("resources/read", {"uri": "mcpmux://b/test://static-text"}),
        "subscribe": ("resources/subscribe", {"uri": "mcpmux://b/test://watched-resource"}),
        "complete": (
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "b__test_prompt_with_arguments"},
                "argument": {"name": "arg1", "value": "par"},
            },
        ),
    }
    with anyio.fail_after(BOUND_SECONDS):
        async with raw_client(proxy.url("/mcp"), "ta") as client:
            answers = {
                what: await client.request(method, params) for what, (method, params) in requests.items()
            }
            own = await client.result("tools/call", {"name": "a__echo", "arguments": {"text": "x"}})
        async with raw_client(proxy.url("/mcp"), "tb") as client:
            allowed = await client.result("tools/call", {"name": "b__echo", "arguments": {"text": "y"}})
    assert {what: "error" in answer for what, answer in answers.items()} == dict.fromkeys(requests, True)
    assert answers["call"]["error"]["message"] == "Unknown tool: b__echo"
    assert own["structuredContent"] == {"text": "x"}
    assert allowed["structuredContent"] == {"text": "y"}


async def test_a_token_that_reaches_no_member_gets_401(proxy: ProxyProcess) -> None:
    with anyio.fail_after(BOUND_SECONDS):
        statuses = {
            ("/ab/mcp", None): await auth_status(proxy.url("/ab/mcp"), None),
            ("/ab/sse", "nobody"): await auth_status(proxy.url("/ab/sse"), "nobody"),
            ("/mcp", None): await auth_status(proxy.url("/mcp"), None),
            ("/closed/mcp", None): await auth_status(
                proxy.url("/closed/mcp"), None
            ),  # a group without tokens
            ("/mcp", "tb-echo"): await auth_status(proxy.url("/mcp"), "tb-echo"),  # not a merged token
        }
    assert statuses == dict.fromkeys(statuses, 401)


async def test_a_reload_that_takes_a_server_from_a_token_applies_to_its_open_merged_session(
    tmp_path: Path,
) -> None:
    config: dict[str, Any] = {
        "mcpProxy": {"options": {"authTokens": ["ta", "tb"]}},
        "mcpServers": {"a": colliding_server(), "b": colliding_server()},
    }
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        async with raw_client(proxy.url("/mcp"), "ta", standalone=True) as merged:
            before = {namespace(t["name"]) for t in await raw_list_all(merged, "tools/list", "tools")}
            written = json.loads(proxy.config_path.read_text())
            written["mcpServers"]["b"] = colliding_server(authTokens=["tb"])  # b no longer takes ta
            mark = len(proxy.lines)
            proxy.config_path.write_text(json.dumps(written))
            await anyio.to_thread.run_sync(lambda: proxy.wait_for_line(r"Reloaded config from", 15, mark))
            await merged.notification("notifications/tools/list_changed")
            after = {namespace(t["name"]) for t in await raw_list_all(merged, "tools/list", "tools")}
            refused = await merged.request("tools/call", {"name": "b__echo", "arguments": {"text": "x"}})
    assert (before, after) == ({"a", "b"}, {"a"})
    assert refused["error"]["message"] == "Unknown tool: b__echo"


async def test_a_server_that_takes_only_oauth_tokens_is_not_merged_for_anonymous_callers(
    tmp_path: Path,
) -> None:
    oauth_only = colliding_server(oauth={"issuer": "https://login.example.invalid"})
    config = {"mcpServers": {"a": oauth_only, "open": colliding_server()}}
    with running_proxy(config, tmp_path) as proxy, anyio.fail_after(BOUND_SECONDS):
        seen = await servers_seen(proxy.url("/mcp"), None)
        own_route = await auth_status(proxy.url("/a/mcp"), None)
    assert seen["tools"] == {"open"}
    assert own_route == 401
