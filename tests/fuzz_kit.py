"""Hypothesis strategies for hostile JSON-RPC traffic, and how many examples a fuzz test runs.

`MCPMUX_FUZZ_EXAMPLES=N` raises every fuzz test's example count to N (default: a few dozen, so the
suite stays fast); a longer run is `MCPMUX_FUZZ_EXAMPLES=2000 pytest -k fuzz`.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

METHODS = (
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/resources/updated",
    "notifications/tools/list_changed",
    "notifications/roots/list_changed",
    "custom/thing",
)
FIELDS = ("name", "uri", "level", "cursor", "requestId", "progressToken", "ref", "arguments", "progress")


def examples(default: int) -> int:
    """The example count of one fuzz test: `default`, or MCPMUX_FUZZ_EXAMPLES when that is set."""
    return int(os.environ.get("MCPMUX_FUZZ_EXAMPLES") or default)


def fuzz_settings(default: int) -> Any:
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if depth % 2 else {"d": value}
    return value


hostile_values = st.one_of(
    json_values,
    st.integers(min_value=200, max_value=400).map(deep),  # deeper than JSON can be re-encoded
    st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n),  # huge
)
meta = st.one_of(
    hostile_values, st.fixed_dictionaries({}, optional={"progressToken": hostile_values, "x": json_values})
)
params = st.one_of(
    hostile_values,
    st.fixed_dictionaries(
        {},
        optional={
            "_meta": meta,
            **{field: hostile_values for field in FIELDS},
            "level": st.sampled_from(["debug", "info", "error", "nope"]),
        },
    ),
)
ids = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2)
)


def _message(draw_keys: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in draw_keys.items() if v is not _ABSENT}


_ABSENT = object()
messages = st.fixed_dictionaries(
    {
        "jsonrpc": st.one_of(st.just("2.0"), st.just("2.0"), json_values, st.just(_ABSENT)),
        "id": st.one_of(ids, st.just(_ABSENT)),
        "method": st.one_of(st.sampled_from(METHODS), json_values, st.just(_ABSENT)),
        "params": st.one_of(params, st.just(_ABSENT)),
        "result": st.one_of(st.just(_ABSENT), json_values),
        "error": st.one_of(st.just(_ABSENT), json_values),
    }
).map(_message)
# What a client may POST: one message, a batch, or any JSON value at all
payloads = st.one_of(messages, messages, st.lists(messages, min_size=0, max_size=3), json_values)
