"""Decide which names a tool filter or a token scope lets through (exact names and globs)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

from ..config.model import TokenScope, ToolFilter

__all__ = ["NameFilter", "scope_allows"]

_GLOB_CHARS = frozenset("*?[")
_RESULT_CACHE_LIMIT = 4096
_SCOPE_CACHE_LIMIT = 1024


def _is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


def _compile_globs(globs: Iterable[str]) -> Callable[[str], re.Match[str] | None] | None:
    """One regex for all globs, with `fnmatch.fnmatchcase` semantics; None when there are none."""
    parts = [f"(?:{fnmatch.translate(glob)})" for glob in sorted(set(globs))]
    if not parts:
        return None
    return re.compile("|".join(parts)).match


class NameFilter:
    """A compiled `ToolFilter`: `allows(name)` is a set lookup, then at most one regex match.

    No filter, an empty pattern list or an unknown mode filters nothing (what the original does).
    """

    __slots__ = ("_allow_mode", "_exact", "_glob", "_results", "filters_nothing")

    def __init__(self, tool_filter: ToolFilter | None) -> None:
        patterns = tool_filter.patterns if tool_filter is not None else ()
        mode = tool_filter.mode if tool_filter is not None else None
        self.filters_nothing: bool = not patterns or mode not in ("allow", "block")
        self._allow_mode: bool = mode == "allow"
        self._exact: frozenset[str] = frozenset(p for p in patterns if not _is_glob(p))
        self._glob = _compile_globs(p for p in patterns if _is_glob(p))
        # Bounded: clients choose the names they ask about, and every answer is cheap to redo.
        self._results: dict[str, bool] = {}

    def allows(self, name: str) -> bool:
        """Whether `name` passes the filter."""
        if self.filters_nothing:
            return True
        if name in self._exact:
            return self._allow_mode
        if self._glob is None:
            return not self._allow_mode
        cached = self._results.get(name)
        if cached is None:
            cached = self._allow_mode == (self._glob(name) is not None)
            if len(self._results) >= _RESULT_CACHE_LIMIT:
                self._results.clear()
            self._results[name] = cached
        return cached


# Keyed by id() for a cheap lookup; each entry holds its scope, so that id cannot be reused while cached.
_scope_filters: dict[int, tuple[TokenScope, NameFilter, NameFilter]] = {}


def _compile_scope(scope: TokenScope) -> tuple[TokenScope, NameFilter, NameFilter]:
    entry = _scope_filters.get(id(scope))
    if entry is None or entry[0] is not scope:
        entry = (scope, NameFilter(ToolFilter("allow", scope.servers)), NameFilter(scope.tool_filter))
        if len(_scope_filters) >= _SCOPE_CACHE_LIMIT:
            _scope_filters.clear()
        _scope_filters[id(scope)] = entry
    return entry


def scope_allows(scope: TokenScope, server: str, tool: str | None) -> bool:
    """Whether a token scope reaches `server` and, unless `tool` is None, that published tool name.

    `tool` None stands for any non-tool operation on the server (lists, prompts, resources...),
    allowed whenever the server is.
    """
    if scope.any_of:  # OAuth: several granted scopes, any one of which may allow it
        return any(scope_allows(grant, server, tool) for grant in scope.any_of)
    if not scope.servers and scope.tool_filter is None:
        return True
    _, servers, tools = _compile_scope(scope)
    if not servers.allows(server):
        return False
    return tool is None or tools.allows(tool)
