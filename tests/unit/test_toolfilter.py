"""Unit tests of core/toolfilter.py: allow/block filters with exact names and globs, token scopes."""

from __future__ import annotations

import pytest

from mcpmux.config.model import TokenScope, ToolFilter
from mcpmux.core import toolfilter
from mcpmux.core.toolfilter import NameFilter, scope_allows


def allow(*patterns: str) -> NameFilter:
    return NameFilter(ToolFilter("allow", patterns))


def block(*patterns: str) -> NameFilter:
    return NameFilter(ToolFilter("block", patterns))


def test_no_filter_allows_everything() -> None:
    name_filter = NameFilter(None)
    assert name_filter.filters_nothing
    assert name_filter.allows("anything")
    assert name_filter.allows("")


@pytest.mark.parametrize("mode", ["allow", "block"])
def test_an_empty_pattern_list_filters_nothing_like_the_original(mode: str) -> None:
    name_filter = NameFilter(ToolFilter(mode, ()))  # type: ignore[arg-type]
    assert name_filter.filters_nothing
    assert name_filter.allows("read_file")


def test_an_unknown_mode_filters_nothing() -> None:
    name_filter = NameFilter(ToolFilter("deny", ("read_file",)))  # type: ignore[arg-type]
    assert name_filter.allows("read_file")


def test_allow_mode_passes_only_listed_exact_names() -> None:
    name_filter = allow("read_file", "list_dir")
    assert not name_filter.filters_nothing
    assert name_filter.allows("read_file")
    assert name_filter.allows("list_dir")
    assert not name_filter.allows("write_file")
    assert not name_filter.allows("read_file2")
    assert not name_filter.allows("READ_FILE")


def test_block_mode_passes_everything_but_listed_exact_names() -> None:
    name_filter = block("delete_file")
    assert not name_filter.allows("delete_file")
    assert name_filter.allows("read_file")
    assert name_filter.allows("delete_file_safely")


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("read_*", "read_file", True),
        ("read_*", "read_", True),
        ("read_*", "write_file", False),
        ("*_file", "read_file", True),
        ("*", "", True),
        ("file?", "file1", True),
        ("file?", "file", False),
        ("file?", "file12", False),
        ("file[0-9]", "file7", True),
        ("file[0-9]", "filex", False),
        ("file[!0-9]", "filex", True),
        ("git*", "GitHub", False),
        ("a.b", "a.b", True),
        ("a.*", "axb", False),
        ("fetch/*", "fetch/secret/x", True),
        ("line*", "line1\nline2", True),
        ("[abc", "[abc", True),
    ],
)
def test_globs_follow_fnmatchcase(pattern: str, name: str, matches: bool) -> None:
    assert allow(pattern).allows(name) is matches
    assert block(pattern).allows(name) is not matches


def test_exact_names_and_globs_combine() -> None:
    name_filter = allow("search", "get_*", "list_?")
    assert name_filter.allows("search")
    assert name_filter.allows("get_issue")
    assert name_filter.allows("list_x")
    assert not name_filter.allows("searches")
    assert not name_filter.allows("list_xy")


def test_glob_characters_are_not_regex_characters() -> None:
    name_filter = allow("a+b*", "(x)|y")
    assert name_filter.allows("a+b-c")
    assert not name_filter.allows("aab")
    assert name_filter.allows("(x)|y")
    assert not name_filter.allows("y")


def test_repeated_questions_get_the_same_answers() -> None:
    name_filter = block("tmp_*")
    for _ in range(3):
        assert not name_filter.allows("tmp_1")
        assert name_filter.allows("keep")


def test_many_distinct_names_keep_giving_correct_answers() -> None:
    name_filter = allow("n1*")
    results = [name_filter.allows(f"n{i}") for i in range(10_000)]
    assert results[1] and results[12] and results[1999]
    assert not results[2] and not results[9999]
    assert name_filter.allows("n1") and not name_filter.allows("n2")


def test_an_unrestricted_scope_reaches_every_server_and_tool() -> None:
    scope = TokenScope("t")
    assert scope_allows(scope, "any", "tool")
    assert scope_allows(scope, "any", None)


def test_a_scope_limits_servers_by_glob() -> None:
    scope = TokenScope("t", servers=("fetch", "git*"))
    assert scope_allows(scope, "fetch", "fetch")
    assert scope_allows(scope, "github", None)
    assert not scope_allows(scope, "fetcher", "fetch")
    assert not scope_allows(scope, "time", None)


def test_a_scope_without_servers_reaches_every_server_through_its_tool_filter() -> None:
    scope = TokenScope("t", tool_filter=ToolFilter("block", ("*__delete_*",)))
    assert scope_allows(scope, "fs", "fs__read")
    assert not scope_allows(scope, "fs", "fs__delete_file")
    assert scope_allows(scope, "fs", None)


def test_a_scope_limits_tools_but_not_other_operations_of_its_servers() -> None:
    scope = TokenScope("t", servers=("fs",), tool_filter=ToolFilter("allow", ("fs__read_*",)))
    assert scope_allows(scope, "fs", "fs__read_file")
    assert not scope_allows(scope, "fs", "fs__write_file")
    assert scope_allows(scope, "fs", None)
    assert not scope_allows(scope, "other", None)
    assert not scope_allows(scope, "other", "fs__read_file")


def test_scope_filters_are_compiled_once_per_scope_object(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[ToolFilter | None] = []

    class CountingNameFilter(NameFilter):
        def __init__(self, tool_filter: ToolFilter | None) -> None:
            compiled.append(tool_filter)
            super().__init__(tool_filter)

    monkeypatch.setattr(toolfilter, "NameFilter", CountingNameFilter)
    scope = TokenScope("t", servers=("a",), tool_filter=ToolFilter("allow", ("x",)))
    assert scope_allows(scope, "a", "x")
    assert not scope_allows(scope, "b", "x")
    assert not scope_allows(scope, "a", "y")
    assert compiled == [ToolFilter("allow", ("a",)), ToolFilter("allow", ("x",))]


def test_distinct_scope_objects_get_their_own_filters() -> None:
    wide, narrow = TokenScope("t", servers=("*",)), TokenScope("t", servers=("a",))
    assert scope_allows(wide, "b", None)
    assert not scope_allows(narrow, "b", None)
    assert scope_allows(wide, "b", None)
