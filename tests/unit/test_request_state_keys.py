"""`mcpProxy.requestStateKeys`: parsed with clear errors, installed by the proxy, rotated on reload."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from mcpmux.config.model import RequestStateKey
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError
from mcpmux.protocol.state import StateError
from mcpmux.proxy import Proxy
from mcpmux.relay.mrtr import process_sealer, use_state_keys

OLD = RequestStateKey("2026-11", "o" * 40)
NEW = RequestStateKey("2026-12", "n" * 40)


def parse(keys: Any, environ: dict[str, str] | None = None) -> Any:
    document = {"mcpProxy": {"requestStateKeys": keys}, "mcpServers": {}}
    config, _ = parse_config(json.dumps(document), "config.json", environ=environ or {}, expand_env=True)
    return config


def parse_error(keys: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(keys)
    return str(caught.value)


@pytest.fixture(autouse=True)
def random_key_afterwards() -> Iterator[None]:
    yield
    use_state_keys(())


def seal(payload: str) -> str:
    return process_sealer().seal(payload, caller="tok", request="tools/call\nx", now=1000.0)


def open_state(state: str) -> Any:
    return process_sealer().open(state, caller="tok", request="tools/call\nx", now=1001.0)


def test_keys_are_read_in_order_with_secrets_from_the_environment() -> None:
    secret = "e" * 64
    config = parse(
        [{"id": "k2", "secret": "${STATE_KEY}"}, {"id": "k1", "secret": "s" * 32}], {"STATE_KEY": secret}
    )
    assert config.request_state_keys == (RequestStateKey("k2", secret), RequestStateKey("k1", "s" * 32))
    assert parse_config('{"mcpProxy": {}}', "c", environ={}, expand_env=True)[0].request_state_keys == ()


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([], 'mcpProxy.requestStateKeys: expected a list of {"id"'),
        ("k", 'mcpProxy.requestStateKeys: expected a list of {"id"'),
        (["k"], "mcpProxy.requestStateKeys[0]: expected an object"),
        ([{"secret": "s" * 32}], "mcpProxy.requestStateKeys[0].id: expected a non-empty key id"),
        ([{"id": "k1", "secret": "short"}], "requestStateKeys[0].secret: expected a secret of at least 32"),
        (
            [{"id": "k1", "secret": "a" * 32}, {"id": "k1", "secret": "b" * 32}],
            "mcpProxy.requestStateKeys[1].id: duplicate key id 'k1'",
        ),
    ],
)
def test_bad_keys_are_errors_naming_the_path(keys: Any, expected: str) -> None:
    message = parse_error(keys)
    assert expected in message
    assert "short" not in message and "a" * 32 not in message  # a secret never shows in an error


def test_rotation_the_first_key_signs_and_every_listed_key_verifies() -> None:
    use_state_keys([OLD])
    old_state = seal("before")
    use_state_keys([NEW, OLD])  # rotation, step 1: the new key first, the old one still listed
    assert open_state(old_state) == "before"
    new_state = seal("after")
    assert json.loads(_body(new_state))["kid"] == "2026-12"
    use_state_keys([NEW])  # step 2, once the old states have expired: the old key dropped
    assert open_state(new_state) == "after"
    with pytest.raises(StateError, match="unknown key"):
        open_state(old_state)


def test_without_configured_keys_a_random_key_seals_and_states_of_a_dropped_key_fail() -> None:
    use_state_keys([OLD])
    configured = seal("x")
    use_state_keys(())
    assert process_sealer().signing.id == "p1"
    with pytest.raises(StateError):
        open_state(configured)


@pytest.mark.anyio
async def test_the_proxy_installs_the_configured_keys_and_a_reload_rotates_them() -> None:
    proxy = Proxy(parse([{"id": "k1", "secret": "k" * 32}]))
    assert process_sealer().signing.id == "k1"
    before = seal("x")
    async with anyio.create_task_group() as tg:
        await proxy.start_servers(tg)  # no servers: returns at once
        await proxy.reload(parse([{"id": "k2", "secret": "m" * 32}, {"id": "k1", "secret": "k" * 32}]))
        assert process_sealer().signing.id == "k2"
        assert open_state(before) == "x"
        await proxy.reload(parse_config('{"mcpProxy": {}}', "c", environ={}, expand_env=True)[0])
        assert process_sealer().signing.id == "p1"


def _body(state: str) -> bytes:
    text = state.removeprefix("mx1.").rpartition(".")[0]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
