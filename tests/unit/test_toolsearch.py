"""Tool search: the tokenizer, BM25 ranking, and relevance on a fixed catalog with expected top results."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcpmux.core.bm25 import BM25Index, tokenize
from mcpmux.relay.toolsearch import CatalogIndex, Entry, ToolSearch

CATALOG = Path(__file__).resolve().parent.parent / "fixtures" / "search"


def fixed_catalog() -> CatalogIndex:
    entries = []
    for server in ("github", "files", "chat"):
        for tool in json.loads((CATALOG / f"{server}.json").read_text())["tools"]:
            entries.append(
                Entry(
                    f"{server}__{tool['name']}", server, tool, {**tool, "name": f"{server}__{tool['name']}"}
                )
            )
    return CatalogIndex(entries)


def top(index: CatalogIndex, query: str, limit: int = 3, visible: Any = None) -> list[str]:
    return [entry.name for entry, _ in index.search(query, limit, visible or (lambda entry: True))]


def test_tokenize_splits_identifiers_drops_stopwords_and_folds_plurals() -> None:
    assert tokenize("get_file_contents") == ["get", "file", "content"]
    assert tokenize("parseHTTPResponse2 fetchURL") == ["parse", "http", "response", "2", "fetch", "url"]
    assert tokenize("list-the.repositories/of a user") == ["list", "repository", "user"]
    assert tokenize("address status ÅÄ") == ["address", "status"]


def test_bm25_prefers_rare_terms_and_shorter_documents() -> None:
    index = BM25Index(
        [["issue", "create"], ["issue", "list", "issue"], ["create", "branch", "branch", "x", "y"]]
    )
    assert [doc for doc, _ in index.search("create branch")] == [2, 0]
    assert [doc for doc, _ in index.search("issue")] == [1, 0]
    assert index.search("nothing matches") == []
    assert [doc for doc, _ in index.search("issue create", allowed=lambda doc: doc != 0)] == [1, 2]
    assert BM25Index([]).search("x") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("open a new issue", "github__create_issue"),
        ("comment on an issue", "github__add_issue_comment"),
        ("merge PR", "github__merge_pull_request"),
        ("open a pull request from my branch", "github__create_pull_request"),
        ("read a file", "files__read_file"),
        ("rename a file", "files__move_file"),
        ("file permissions size", "files__getFileInfo"),
        ("send a Slack message to a channel", "chat__post_message"),
        ("email", "chat__sendEmail"),
        ("download a web page url", "chat__fetchURL"),
        ("weather in Paris", "chat__get_weather_forecast"),
        ("thread_ts", "chat__reply_to_thread"),
        ("dryRun", "files__edit_file"),
    ],
)
def test_relevance_on_a_fixed_catalog(query: str, expected: str) -> None:
    assert top(fixed_catalog(), query)[0] == expected


def test_related_tools_rank_next() -> None:
    assert set(top(fixed_catalog(), "issues", 3)) == {
        "github__create_issue",
        "github__list_issues",
        "github__add_issue_comment",
    }
    hidden = top(fixed_catalog(), "open a new issue", 2, lambda entry: entry.owner != "github")
    assert all(not name.startswith("github") for name in hidden)


def run_meta(index: CatalogIndex, name: str, arguments: Any, visible: Any = None) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []

    async def call(msg: dict[str, Any]) -> dict[str, Any]:
        calls.append(msg)
        return {"jsonrpc": "2.0", "id": msg["id"], "result": {"called": msg["params"]}}

    msg = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    msg["params"]["_meta"] = {"progressToken": "p"}
    response = anyio.run(ToolSearch().answer, msg, index, visible or (lambda entry: True), call)
    assert response["id"] == 7
    return response["result"]


def test_meta_tools_search_describe_and_call_with_clear_errors() -> None:
    index = fixed_catalog()
    found = run_meta(index, "search_tools", {"query": "weather", "limit": 1})["structuredContent"]["tools"]
    assert [tool["name"] for tool in found] == ["chat__get_weather_forecast"]
    assert found[0]["description"].startswith("Weather forecast") and found[0]["score"] > 0
    described = run_meta(index, "describe_tool", {"name": "files__read_file"})["structuredContent"]["tool"]
    assert described["inputSchema"]["properties"] == {"path": {"type": "string"}}
    hidden = run_meta(index, "describe_tool", {"name": "files__read_file"}, lambda entry: False)
    assert hidden["isError"] and hidden["content"][0]["text"] == "Unknown tool: files__read_file"
    called = run_meta(index, "call_tool", {"name": "chat__sendEmail", "arguments": {"to": "a"}})
    assert called == {
        "called": {"_meta": {"progressToken": "p"}, "name": "chat__sendEmail", "arguments": {"to": "a"}}
    }
    for name, arguments in [
        ("search_tools", {}),
        ("search_tools", {"query": "x", "limit": 0}),
        ("call_tool", {"name": 3}),
    ]:
        assert run_meta(index, name, arguments)["isError"] is True


def test_the_index_is_rebuilt_only_when_the_snapshot_object_changes() -> None:
    search, builds = ToolSearch(), []

    def build() -> list[Entry]:
        builds.append(1)
        return []

    snapshot = object()
    first = search.index(snapshot, build)
    assert search.index(snapshot, build) is first and len(builds) == 1
    assert search.index(object(), build) is not first and len(builds) == 2


def test_pruned_search_ranks_exactly_like_scoring_every_document() -> None:
    rng = random.Random(5)
    words = [f"w{chr(97 + n // 26)}{chr(97 + n % 26)}" for n in range(60)]  # waa, wab, ...: one term each
    weights = [1 / (rank + 1) for rank in range(len(words))]  # a few common words, a long tail
    index = BM25Index([rng.choices(words, weights, k=rng.randint(3, 30)) for _ in range(600)])
    pruned = 0
    for _ in range(300):
        query = " ".join(rng.choices(words, weights, k=rng.randint(1, 6)))
        every = index.scores(query)
        assert every
        pruned += len(index.scores(query, 5)) < len(every)
        expected = sorted(every.items(), key=lambda item: (-item[1], item[0]))
        for limit in (1, 5, 20):
            assert index.search(query, limit) == expected[:limit], query
            odd = [item for item in expected if item[0] % 2][:limit]
            assert index.search(query, limit, allowed=lambda doc: doc % 2 == 1) == odd, query
    assert pruned > 50  # the pruning was exercised
