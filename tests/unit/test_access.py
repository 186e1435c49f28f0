"""Who reaches which member of a merged endpoint or group (`core/access.py`), without sockets."""

from __future__ import annotations

from mcpmux.config.model import TokenScope, ToolFilter
from mcpmux.core.access import AccessTable

A, B = TokenScope("ta"), TokenScope("tb")
ECHO_ONLY = TokenScope("tb-echo", tool_filter=ToolFilter("allow", ("b__echo",)))


def reached(table: AccessTable, token: str | None) -> set[str] | None:
    """The members `token` reaches, or None when the HTTP layer would answer 401."""
    scope = table.tokens.match(token)
    if scope is None and table.tokens.enabled:
        return None
    return set(table.access(scope).members)


def test_a_token_reaches_only_members_whose_own_routes_accept_it() -> None:
    table = AccessTable((A, B), {"a": (A,), "b": (B, ECHO_ONLY), "open": ()})
    assert reached(table, "ta") == {"a", "open"}
    assert reached(table, "tb") == {"b", "open"}
    assert reached(table, "tb-echo") is None  # not one of the endpoint's own tokens
    assert reached(table, None) is None
    assert reached(table, "wrong") is None


def test_without_endpoint_tokens_anonymous_callers_reach_only_servers_with_auth_off() -> None:
    table = AccessTable((), {"a": (A,), "open": ()})
    assert reached(table, None) == {"open"}
    assert reached(table, "wrong") == {"open"}
    assert reached(table, "ta") == {"a", "open"}


def test_nobody_reachable_without_a_token_means_401_for_anonymous_callers() -> None:
    table = AccessTable((), {"a": (A,)})
    assert table.tokens.enabled
    assert reached(table, None) is None
    assert reached(table, "ta") == {"a"}


def test_both_scopes_narrow_the_tools() -> None:
    route_scope = TokenScope("tb-echo", servers=("b",))
    table = AccessTable((route_scope,), {"a": (TokenScope("tb-echo"),), "b": (ECHO_ONLY,)})
    scope = table.tokens.match("tb-echo")
    access = table.access(scope)
    assert set(access.members) == {"b"}  # the endpoint's scope takes a away
    assert access.allows("b", "b__echo") and not access.allows("b", "b__other")
    assert not access.allows("a", "a__echo")


def test_the_objects_standing_for_tokens_are_kept_across_rebuilds() -> None:
    first = AccessTable((A,), {"a": (A,)})
    second = AccessTable((TokenScope("ta"),), {"a": (TokenScope("ta"),)}, first.by_token)
    assert second.tokens.match("ta") is first.tokens.match("ta")


def test_a_member_that_takes_only_oauth_is_reached_by_no_static_token_and_not_anonymously() -> None:
    oauth = object()  # any `oauth` setting: the member's route wants an OAuth access token
    table = AccessTable((), {"a": (), "open": ()}, member_oauth={"a": oauth})  # type: ignore[dict-item]
    assert reached(table, None) == {"open"}
    mixed = AccessTable((), {"a": (A,), "open": ()}, member_oauth={"a": oauth})  # type: ignore[dict-item]
    assert reached(mixed, "ta") == {"a", "open"}  # its static tokens still work
