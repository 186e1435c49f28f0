"""Cluster mode without sockets: `mcpProxy.cluster` parsing, sealed session ids, forwarding proofs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcpmux.cluster.seal import Sealer, new_replica_id
from mcpmux.config.model import ClusterConfig
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError

SECRET = "x" * 40
ROOT = Path(__file__).resolve().parents[2]


def cluster_of(spec: Any, environ: dict[str, str] | None = None) -> ClusterConfig | None:
    document = {"mcpProxy": {"cluster": spec} if spec is not None else {}, "mcpServers": {}}
    config, _ = parse_config(json.dumps(document), "config.json", environ=environ or {}, expand_env=True)
    return config.cluster


def test_absent_means_one_process() -> None:
    assert cluster_of(None) is None


def test_the_keys_are_read_with_env_expansion_and_the_secret_stays_out_of_repr() -> None:
    spec = {"redis": "redis://10.0.0.2:6379/0", "secret": "${S}", "advertise": "http://10.0.0.5:9090/"}
    cluster = cluster_of(spec, {"S": SECRET})
    assert cluster == ClusterConfig("redis://10.0.0.2:6379/0", SECRET, "http://10.0.0.5:9090")
    assert SECRET not in repr(cluster)


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        ({"redis": "http://x", "secret": SECRET}, "mcpProxy.cluster.redis", "redis://host:6379/0"),
        ({"redis": "redis://r", "secret": "short"}, "mcpProxy.cluster.secret", "at least 32 characters"),
        (
            {"redis": "redis://r", "secret": SECRET, "advertise": "10.0.0.5:9090"},
            "mcpProxy.cluster.advertise",
            "URL",
        ),
    ],
)
def test_a_bad_cluster_section_names_its_path_and_what_was_expected(
    spec: dict[str, Any], path: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        cluster_of(spec)
    assert path in str(raised.value) and expected in str(raised.value)


def test_an_unknown_cluster_key_is_a_warning_naming_it() -> None:
    document = {"mcpProxy": {"cluster": {"redis": "redis://r", "secret": SECRET, "advertize": "x"}}}
    _, warnings = parse_config(json.dumps(document), "c.json", environ={}, expand_env=True)
    assert any("mcpProxy.cluster.advertize" in w and "advertise" in w for w in warnings)


def test_the_compose_examples_config_is_a_valid_cluster_config() -> None:
    text = (ROOT / "deploy" / "compose" / "config.json").read_text()
    environ = {
        "MCPMUX_CLUSTER_REDIS": "redis://valkey:6379/0",
        "MCPMUX_CLUSTER_SECRET": SECRET,
        "MCPMUX_TOKEN": "t",
    }
    config, warnings = parse_config(text, "config.json", environ=environ, expand_env=True, strict=True)
    assert config.cluster == ClusterConfig("redis://valkey:6379/0", SECRET, None) and not warnings


def test_a_sealed_id_names_its_replica_on_every_replica_and_nothing_else_opens() -> None:
    one, two = Sealer(SECRET, new_replica_id()), Sealer(SECRET, new_replica_id())
    session = one.session_id()
    assert one.owner(session) == two.owner(session) == one.replica
    assert one.session_id() != session
    replica, random, mac = session.split(".")
    assert Sealer("y" * 40, two.replica).owner(session) is None  # another cluster's secret
    assert one.owner(f"{two.replica}.{random}.{mac}") is None  # re-pointed at another replica
    assert one.owner(f"{replica}.{random}.{'0' * len(mac)}") is None
    assert one.owner("0123456789abcdef0123456789abcdef") is None  # a plain (single-process) id
    assert one.owner("") is None and one.owner("...") is None


def test_a_forwarding_proof_binds_the_request_and_expires() -> None:
    one, two = Sealer(SECRET, new_replica_id()), Sealer(SECRET, new_replica_id())
    proof = one.proof("POST", "/a/mcp", "sid", 1000.0)
    assert two.proof_ok(proof, "POST", "/a/mcp", "sid", 1030.0)
    assert not two.proof_ok(proof, "GET", "/a/mcp", "sid", 1000.0)
    assert not two.proof_ok(proof, "POST", "/b/mcp", "sid", 1000.0)
    assert not two.proof_ok(proof, "POST", "/a/mcp", "other", 1000.0)
    assert not two.proof_ok(proof, "POST", "/a/mcp", "sid", 1061.0)
    assert not Sealer("y" * 40, "r").proof_ok(proof, "POST", "/a/mcp", "sid", 1000.0)
    assert not two.proof_ok("garbage", "POST", "/a/mcp", "sid", 1000.0)


def test_without_cluster_mode_the_redis_client_is_never_imported() -> None:
    code = (
        "import sys, mcpmux.cli, mcpmux.proxy, mcpmux.serve, mcpmux.web.app\n"
        "assert not [m for m in sys.modules if m == 'redis' or m.startswith('redis.')], 'redis imported'\n"
        "assert 'mcpmux.cluster.node' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_retry_names_the_replica_whose_key_signed_its_request_state() -> None:
    from mcpmux.cluster.seal import retry_replica
    from mcpmux.protocol.state import StateKey, StateSealer

    replica = new_replica_id()
    sealer = StateSealer([StateKey(replica, Sealer(SECRET, replica).state_key())])
    state = sealer.seal({"h": 1}, caller="tok", request="r", now=1000.0)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"requestState": state}})
    assert retry_replica(body.encode()) == replica
    # every replica derives the same key from the cluster secret (and no other cluster does)
    assert Sealer(SECRET, new_replica_id()).state_key() == Sealer(SECRET, replica).state_key()
    assert Sealer("z" * 40, replica).state_key() != Sealer(SECRET, replica).state_key()
    for junk in (b"", b"[]", b'{"params": 3}', b'{"params": {"requestState": "mx1.!!"}}', b'{"params": {}}'):
        assert retry_replica(junk) is None


def test_registry_entries_from_redis_are_checked_not_trusted() -> None:
    from mcpmux.cluster.registry import entry_url, parse_entry

    good = b'{"url": "http://10.0.0.5:9090", "stats": {"sessions": 3}, "at": 1700000000.5}'
    assert parse_entry(good) == {"url": "http://10.0.0.5:9090", "stats": {"sessions": 3}, "at": 1700000000.5}
    assert entry_url(good) == "http://10.0.0.5:9090"
    bare = {"url": "http://x", "stats": {}, "at": None}
    assert parse_entry(b'{"url": "http://x", "stats": [1], "at": "x"}') == bare
    assert parse_entry(b'{"url": "http://x", "at": true}') == bare
    for junk in (None, b"", b"not json", b"[]", b'{"url": 5}', b'{"stats": {}}'):
        assert parse_entry(junk) is None and entry_url(junk) is None


@pytest.mark.parametrize(
    "url", ["gopher://[::1", "http://[::1", "http://", "ftp://h", "javascript:x", "http://h:99999"]
)
def test_a_registered_url_that_cannot_be_relayed_to_is_no_address(url: str) -> None:
    from mcpmux.cluster.forward import OwnerPools, OwnerUnreachableError
    from mcpmux.cluster.registry import entry_url

    assert entry_url(json.dumps({"url": url}).encode()) is None  # was a ValueError (HTTP 500) or a pool
    if url.startswith(("gopher", "http://[")):
        with pytest.raises(OwnerUnreachableError):
            OwnerPools(1.0).to(url)


def test_a_members_health_comes_from_its_heartbeats_age_and_its_servers_readiness() -> None:
    from mcpmux.cluster.registry import LATE_SECONDS, with_health

    def member(at: float | None, **stats: object) -> dict[str, object]:
        return {"replica": "r", "self": False, "url": "http://x", "stats": stats, "at": at}

    assert with_health(member(100.0, ready=True), 102.04) == {
        **{k: v for k, v in member(0.0, ready=True).items() if k != "at"},
        "heartbeatSeconds": 2.0,
        "health": "ready",
    }
    assert with_health(member(100.0, ready=False), 101.0)["health"] == "not ready"
    assert with_health(member(100.0, ready=True), 100.0 + LATE_SECONDS + 1)["health"] == "late"
    assert with_health(member(100.0), 90.0)["heartbeatSeconds"] == 0.0  # a clock behind: never negative
    assert with_health(member(None), 90.0)["health"] == "unknown"


def test_relayed_headers_drop_hop_by_hop_ones_and_any_replica_proof_a_client_sent() -> None:
    from mcpmux.cluster.forward import relayed_headers

    headers = [
        (b"Host", b"mcp.example.com"),
        (b"Authorization", b"Bearer t"),
        (b"Connection", b"keep-alive"),
        (b"Content-Length", b"12"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Mcpmux-Forwarded", b"forged"),
        (b"Mcp-Session-Id", b"a.b.c"),
    ]
    assert relayed_headers(headers) == [
        (b"host", b"mcp.example.com"),
        (b"authorization", b"Bearer t"),
        (b"mcp-session-id", b"a.b.c"),
    ]


def test_a_relayed_request_head_carries_the_clients_host_else_the_owners_and_the_proof() -> None:
    from mcpmux.cluster.forward import request_head

    proof = [(b"x-mcpmux-forwarded", b"p")]
    scope = {"headers": [(b"Host", b"mcp.example.com"), (b"Connection", b"close"), (b"Accept", b"*/*")]}
    assert request_head(scope, "10.0.0.5:9090", proof) == (
        b"host: mcp.example.com\r\naccept: */*\r\nx-mcpmux-forwarded: p\r\n"
    )
    no_host = {"headers": [(b"accept", b"*/*")]}
    assert request_head(no_host, "10.0.0.5:9090", proof) == (
        b"accept: */*\r\nx-mcpmux-forwarded: p\r\nhost: 10.0.0.5:9090\r\n"
    )


def test_a_pool_without_its_own_host_line_sends_only_the_requests_headers() -> None:
    from mcpmux.upstream.http_client import HttpPool

    assert HttpPool("http://10.0.0.5:9090", {}, 1.0, print, host_header=False).fixed == b""
    with_host = HttpPool("http://10.0.0.5:9090", {"x-a": "1"}, 1.0, print).fixed
    assert with_host == b"host: 10.0.0.5:9090\r\nx-a: 1\r\n"


def test_a_streams_reader_is_the_same_principal_of_the_same_issuer_with_the_same_grants() -> None:
    from mcpmux.cluster.streams import SessionStreams
    from mcpmux.config.model import OAuthResource, TokenScope

    streams = SessionStreams(None, "s" * 40)
    first = OAuthResource(issuer="https://one.example/", authorization_servers=("https://one.example/",))
    second = OAuthResource(issuer="https://two.example/", authorization_servers=("https://two.example/",))
    alice = TokenScope("oauth:alice", oauth=first)
    same = TokenScope("oauth:alice", oauth=first)
    assert streams.token_digest(alice, "r") == streams.token_digest(same, "r")
    other_issuer = TokenScope("oauth:alice", oauth=second)  # another issuer's `alice` is someone else
    narrower = TokenScope("oauth:alice", any_of=(TokenScope("oauth:alice", servers=("a",)),), oauth=first)
    static = TokenScope("oauth:alice")  # a static token spelled like the label
    digests = {streams.token_digest(scope, "r") for scope in (alice, other_issuer, narrower, static)}
    assert len(digests) == 4


def test_a_streams_reader_is_bound_to_the_route_and_to_fields_that_cannot_run_into_each_other() -> None:
    from mcpmux.cluster.streams import SessionStreams
    from mcpmux.config.model import TokenScope

    streams = SessionStreams(None, "s" * 40)
    token = TokenScope("t", servers=("a",))
    assert streams.token_digest(token, "r1") != streams.token_digest(token, "r2")
    # the old encoding joined the token and its servers with a newline: these two were one reader
    spelled = TokenScope("t\na")
    assert streams.token_digest(token, "r") != streams.token_digest(spelled, "r")
    assert streams.token_digest(None, "r") != streams.token_digest(TokenScope(""), "r")
