"""Hostile input against cluster mode (issues 11/12): forged, tampered and replayed sealed session ids,
client-sent forwarding proofs, tokens reaching through another replica, forged 2026 retries, garbage in
Redis, and no secret in any view or log. Real redis-server, two replicas addressed directly.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import orjson
import pytest
from cluster_kit import ACCEPT, INITIALIZE, SECRET, running_redis
from hypothesis import given
from hypothesis import strategies as st

from fuzz_kit import fuzz_settings
from harness import ProxyProcess, fixture_server
from mcpmux.cluster.seal import Sealer

pytestmark = pytest.mark.anyio

TOKEN_A = "cluster-token-alpha-0001"  # alpha only
TOKEN_B = "cluster-token-beta-0002"  # beta only
TOKEN_C = "cluster-token-both-0003"  # alpha and beta
OPERATOR = "cluster-operator-0004"
BOUND_SECONDS = 30
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
}


def config(redis_url: str) -> dict[str, Any]:
    alpha, beta = fixture_server(), fixture_server()
    alpha["options"] = {"authTokens": [TOKEN_A, TOKEN_C]}
    beta["options"] = {"authTokens": [TOKEN_B, TOKEN_C]}
    return {
        "mcpProxy": {
            "cluster": {"redis": redis_url, "secret": SECRET},
            "operatorTokens": [OPERATOR],
            "allowedHosts": ["*"],  # replicas addressed directly: a relayed request keeps the client's Host
            "options": {"authTokens": [TOKEN_A, TOKEN_B, TOKEN_C]},
        },
        "mcpServers": {"alpha": alpha, "beta": beta},
    }


class Cluster:
    def __init__(self, redis_url: str, replicas: list[ProxyProcess]) -> None:
        self.redis_url = redis_url
        self.replicas = replicas
        self.ids = [
            re.search(r"Cluster: replica (\w+) registered", r.log).group(1)  # type: ignore[union-attr]
            for r in replicas
        ]

    def redis(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=self.redis_url.removeprefix("unix://"))

    def alive(self) -> None:
        for replica in self.replicas:
            assert replica.process.poll() is None, replica.log[-3000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster-hostile")
    with running_redis() as redis_url, ExitStack() as stack:
        replicas = []
        for index in range(2):
            home = tmp / f"replica-{index}"
            home.mkdir()
            replica = ProxyProcess(config(redis_url), home, extra_args=("--log-level", "debug"))
            stack.callback(replica.stop)
            replicas.append(replica)
        for replica in replicas:
            replica.wait_ready()
            replica.wait_for_line(r"Cluster: replica \w+ registered")
        yield Cluster(redis_url, replicas)


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=BOUND_SECONDS) as client:
        yield client


def headers(token: str, session: str | None = None, **extra: str) -> dict[str, bytes]:
    """Values as bytes (latin-1): a forged id or proof may carry obs-text, as a client's bytes can."""
    sent = {"accept": ACCEPT, "authorization": f"Bearer {token}", "content-type": "application/json"}
    if session is not None:
        sent["mcp-session-id"] = session
    return {name: value.encode("latin-1") for name, value in {**sent, **extra}.items()}


async def post(
    http: httpx2.AsyncClient, url: str, body: dict[str, Any], token: str, session: str | None, **extra: str
) -> httpx2.Response:
    return await http.post(url, content=orjson.dumps(body), headers=headers(token, session, **extra))


async def open_session(http: httpx2.AsyncClient, replica: ProxyProcess, token: str = TOKEN_A) -> str:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}
    reply = await post(http, replica.url("/alpha/mcp"), init, token, None)
    assert reply.status_code == 200, reply.text
    session = reply.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await post(http, replica.url("/alpha/mcp"), note, token, session)).status_code == 202
    return session


LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


async def list_status(
    http: httpx2.AsyncClient,
    replica: ProxyProcess,
    session: str,
    token: str = TOKEN_A,
    path: str = "/alpha/mcp",
) -> int:
    return (await post(http, replica.url(path), LIST, token, session)).status_code


async def get_stream_status(http: httpx2.AsyncClient, replica: ProxyProcess, session: str, token: str) -> int:
    sent = headers(token, session, accept="text/event-stream")
    with anyio.fail_after(BOUND_SECONDS):
        async with http.stream("GET", replica.url("/alpha/mcp"), headers=sent) as stream:
            return stream.status_code


def forgeries(session: str, ids: list[str]) -> dict[str, str]:
    replica, random, mac = session.split(".")
    other = Sealer("another-secret-of-at-least-32-chars!!", replica).session_id()
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    return {
        "mac flipped": f"{replica}.{random}.{flipped}",
        "truncated": session[:-4],
        "sealed with another secret": other,
        "pointed at the other replica": f"{ids[1]}.{random}.{mac}",
        "no mac": f"{replica}.{random}",
        "random": "0123456789ab.deadbeef.00112233445566778899aabbccddeeff",
        "huge": session + "a" * 4000,
        "obs-text mac": f"{replica}.{random}.{chr(0xE9) * 32}",
    }


async def test_forged_and_tampered_session_ids_are_not_found_on_any_replica(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    for why, forged in forgeries(session, cluster.ids).items():
        for replica in cluster.replicas:
            assert await list_status(http, replica, forged) == 404, why
            assert await get_stream_status(http, replica, forged, TOKEN_A) == 404, why
    assert await list_status(http, other, session) == 200  # the real one, through the other replica
    cluster.alive()


async def test_a_session_is_bound_to_its_token_and_route_through_any_replica(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    for replica in cluster.replicas:
        assert await list_status(http, replica, session, TOKEN_B) == 401  # not a token of alpha at all
        assert await list_status(http, replica, session, TOKEN_C) == 404  # alpha's token, not this session's
        assert await list_status(http, replica, session, TOKEN_C, "/beta/mcp") == 404  # another route
        assert await list_status(http, replica, session, TOKEN_B, "/beta/mcp") == 404
    assert await get_stream_status(http, other, session, TOKEN_C) == 404
    assert await list_status(http, other, session) == 200
    cluster.alive()


async def test_a_session_ended_through_another_replica_is_gone_everywhere(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    assert await get_stream_status(http, other, session, TOKEN_A) == 200  # its Redis stream exists now
    reply = await http.delete(other.url("/alpha/mcp"), headers=headers(TOKEN_A, session))
    assert reply.status_code == 200, reply.text
    for replica in cluster.replicas:
        assert await list_status(http, replica, session) == 404
        assert await get_stream_status(http, replica, session, TOKEN_A) == 404
    cluster.alive()


async def test_forwarding_proofs_sent_by_clients_are_not_trusted(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    now = time.time()
    honest = Sealer(SECRET, cluster.ids[1])  # what a replica would send, replayed for another request
    proofs = {
        "garbage": "x",
        "forged mac": f"{cluster.ids[1]}.{int(now)}.{'0' * 64}",
        "another secret": Sealer("z" * 40, cluster.ids[1]).proof("POST", "/alpha/mcp", session, now),
        "another path": honest.proof("POST", "/beta/mcp", session, now),
        "another session": honest.proof("POST", "/alpha/mcp", "someone-else", now),
        "expired": honest.proof("POST", "/alpha/mcp", session, now - 3600),
        "obs-text mac": f"{cluster.ids[1]}.{int(now)}.{chr(0xE9) * 64}",
        "superscript stamp": f"{cluster.ids[1]}.\u00b2.{'0' * 64}",
    }
    for why, proof in proofs.items():
        reply = await post(
            http, other.url("/alpha/mcp"), LIST, TOKEN_A, session, **{"x-mcpmux-forwarded": proof}
        )
        assert reply.status_code == 403, (why, reply.text)
        assert session not in reply.text and SECRET not in reply.text
        wrong = await post(
            http, other.url("/alpha/mcp"), LIST, TOKEN_B, session, **{"x-mcpmux-forwarded": proof}
        )
        assert wrong.status_code == 401, why  # the token is checked before anything else
    # on the owner a client's proof header changes nothing: the session is served as always, and a
    # client's proof never reaches the owner through the other replica (it is replaced by the replica's)
    served = await post(http, owner.url("/alpha/mcp"), LIST, TOKEN_A, session, **{"x-mcpmux-forwarded": "x"})
    assert served.status_code == 200
    cluster.alive()


def forged_state(kid: str) -> str:
    body = orjson.dumps(
        {"kid": kid, "exp": time.time() + 600, "sub": "0" * 64, "req": "tools/call\necho", "data": {}}
    )
    return "mx1." + base64.urlsafe_b64encode(body).rstrip(b"=").decode() + ".AAAA"


async def test_a_forged_2026_retry_is_refused_wherever_it_lands(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    other = cluster.replicas[1]
    params = {"name": "echo", "arguments": {}, "inputResponses": {}, "_meta": ENVELOPE}
    modern = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "echo"}
    for kid in (cluster.ids[0], "ffffffffffff", "../../x*?[]#"):
        body = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {**params, "requestState": forged_state(kid)},
        }
        reply = await post(http, other.url("/alpha/mcp"), body, TOKEN_A, None, **modern)
        if kid == cluster.ids[0]:  # relayed to the replica it names, which checks it in full
            assert reply.status_code == 200 and reply.json()["error"]["code"] == -32602, reply.text
        else:
            assert reply.status_code in (200, 404), reply.text
        refused = await post(http, other.url("/alpha/mcp"), body, TOKEN_B, None, **modern)
        assert refused.status_code == 401  # never relayed for a token the route refuses
    cluster.alive()


async def test_garbage_in_redis_does_not_break_a_replica(cluster: Cluster, http: httpx2.AsyncClient) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    assert await get_stream_status(http, other, session, TOKEN_A) == 200
    store = cluster.redis()
    try:
        store.xadd(f"mcpmux:stream:{session}", {"not-m": b"x"})  # an entry without a message
        store.xadd(f"mcpmux:stream:{session}", {"m": b"\xff\x00 not json"})
        store.set("mcpmux:replica:bbbbbbbbbbbb", b"\x00 not json")
        store.set("mcpmux:replica:cccccccccccc", orjson.dumps({"url": "gopher://[::1", "at": "x"}))
        store.publish("mcpmux:reload", b"\xff" * 100_000)
        credentials = {
            "url": "http://user:pw-in-url-SECRET@10.0.0.9:1/?key=key-in-url-SECRET",
            "at": time.time(),
        }
        store.set("mcpmux:replica:dddddddddddd", orjson.dumps(credentials), ex=60)
    finally:
        store.close()
    with anyio.fail_after(BOUND_SECONDS):
        for kid in ("bbbbbbbbbbbb", "cccccccccccc"):
            body = {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {
                    "name": "echo",
                    "arguments": {},
                    "requestState": forged_state(kid),
                    "_meta": ENVELOPE,
                },
            }
            modern = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "echo"}
            reply = await post(http, other.url("/alpha/mcp"), body, TOKEN_A, None, **modern)
            assert reply.status_code in (404, 502, 503), reply.text
        view = await http.get(other.url("/_cluster"), headers={"authorization": f"Bearer {OPERATOR}"})
        assert view.status_code == 200, view.text
        assert "dddddddddddd" in view.text and "-in-url-SECRET" not in view.text  # redacted by shape
    for replica in cluster.replicas:
        assert await list_status(http, replica, session) == 200
    cluster.alive()


async def test_no_secret_in_views_errors_or_debug_logs(cluster: Cluster, http: httpx2.AsyncClient) -> None:
    session = await open_session(http, cluster.replicas[0])
    assert (
        await list_status(http, cluster.replicas[1], session) == 200
    )  # a forwarded request, logged at debug
    secrets = (SECRET, TOKEN_A, TOKEN_B, TOKEN_C, OPERATOR)
    for replica in cluster.replicas:
        for path in ("/_cluster", "/_status/api", "/metrics", "/_readyz", "/_healthz"):
            for token in (OPERATOR, None):
                sent = {"authorization": f"Bearer {token}"} if token else {}
                reply = await http.get(replica.url(path), headers=sent)
                assert not any(secret in reply.text for secret in secrets), (path, reply.text[:500])
        assert not any(secret in replica.log for secret in secrets), "a secret reached the log"


async def post_answer_event_id(http: httpx2.AsyncClient, replica: ProxyProcess, session: str) -> str:
    """A POST answered with an event stream (the client prefers it): the id of its event."""
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "m"}},
    }
    sse_first = headers(TOKEN_A, session, accept="text/event-stream, application/json")
    reply = await http.post(replica.url("/alpha/mcp"), content=orjson.dumps(call), headers=sse_first)
    assert reply.headers["content-type"].startswith("text/event-stream"), reply.text
    ids = [line[3:].strip() for line in reply.text.splitlines() if line.startswith("id:")]
    assert ids and ids[0].startswith("p."), reply.text
    return ids[0]


async def resume_status(
    http: httpx2.AsyncClient, replica: ProxyProcess, session: str, event_id: str, token: str
) -> int:
    sent = headers(token, session, accept="text/event-stream", **{"last-event-id": event_id})
    with anyio.fail_after(BOUND_SECONDS):
        async with http.stream("GET", replica.url("/alpha/mcp"), headers=sent) as stream:
            return stream.status_code


async def test_a_post_answer_cannot_be_resumed_by_another_token_or_after_the_session_ended(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner = cluster.replicas[0]
    session = await open_session(http, owner)
    event_id = await post_answer_event_id(http, owner, session)
    for replica in cluster.replicas:
        assert (
            await resume_status(http, replica, session, event_id, TOKEN_C) == 404
        )  # alpha's, not the session's
    reply = await http.delete(owner.url("/alpha/mcp"), headers=headers(TOKEN_A, session))
    assert reply.status_code == 200, reply.text
    for replica in cluster.replicas:  # the session ended: its answers are gone with it
        assert await resume_status(http, replica, session, event_id, TOKEN_A) == 404
    cluster.alive()


async def test_streams_relayed_to_one_replica_are_bounded_and_requests_still_get_through(
    cluster: Cluster,
) -> None:
    from contextlib import AsyncExitStack

    from mcpmux.cluster.forward import MAX_OWNER_STREAMS

    owner, other = cluster.replicas
    limits = httpx2.Limits(max_connections=MAX_OWNER_STREAMS + 20)
    async with httpx2.AsyncClient(timeout=BOUND_SECONDS, limits=limits) as http, AsyncExitStack() as stack:
        sessions = [await open_session(http, owner) for _ in range(MAX_OWNER_STREAMS + 1)]
        with anyio.fail_after(BOUND_SECONDS * 4):
            for session in sessions[:-1]:  # each session's first GET stream is relayed to its owner
                sent = headers(TOKEN_A, session, accept="text/event-stream")
                stream = await stack.enter_async_context(
                    http.stream("GET", other.url("/alpha/mcp"), headers=sent)
                )
                assert stream.status_code == 200
            assert await get_stream_status(http, other, sessions[-1], TOKEN_A) == 503
            # the connections left to the owner still carry requests
            assert await list_status(http, other, sessions[0]) == 200
    cluster.alive()


latin1 = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=70
)
hostile_ids = st.one_of(
    latin1,
    st.builds(lambda r, m: f"{r}.{m}", latin1, latin1),
    st.builds(lambda x, m: f"{x[:12]:0<12}.{m}.{'0' * 32}", latin1, latin1),
)


@fuzz_settings(40)
@given(
    st.sampled_from(["GET", "POST", "DELETE"]),
    st.sampled_from(["/alpha/mcp", "/alpha/message"]),
    hostile_ids,
    st.one_of(st.none(), latin1, st.builds(lambda n: f"p.{'a' * 16}.{n}", st.integers(0, 10**12))),
    st.one_of(st.none(), hostile_ids),
)
def test_fuzz_cluster_ids_proofs_and_event_ids(
    cluster: Cluster, method: str, path: str, session: str, last_event: str | None, proof: str | None
) -> None:
    extra = {"last-event-id": last_event.strip()} if last_event and last_event.strip() else {}
    if proof is not None and proof.strip():
        extra["x-mcpmux-forwarded"] = proof.strip()  # a header value has no edge whitespace
    sent = headers(TOKEN_A, session.strip() or "x", accept="text/event-stream, application/json", **extra)
    url = cluster.replicas[1].url(path) + ("?sessionId=" + quote(session) if path.endswith("message") else "")
    body = orjson.dumps(LIST) if method == "POST" else b""
    with httpx2.Client(timeout=BOUND_SECONDS) as http:
        with http.stream(method, url, headers=sent, content=body) as reply:
            assert reply.status_code < 500 or reply.status_code == 503, reply.read()[:300]
    cluster.alive()


async def test_an_oversized_entry_in_a_get_stream_is_skipped_and_the_stream_goes_on(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    since = len(owner.lines)
    store = cluster.redis()
    try:
        store.xadd(f"mcpmux:stream:{session}", {"m": b'"' + b"x" * (5 * 1024 * 1024) + b'"'})  # above 4 MiB
        store.xadd(f"mcpmux:stream:{session}", {"m": b'{"jsonrpc":"2.0","method":"notifications/after"}'})
    finally:
        store.close()
    sent = headers(TOKEN_A, session, accept="text/event-stream")
    with anyio.fail_after(BOUND_SECONDS):
        async with http.stream("GET", other.url("/alpha/mcp"), headers=sent) as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("data:"):  # the huge entry never reaches the client
                    assert "notifications/after" in line, line[:200]
                    break
    owner.wait_for_line(r"a GET stream entry skipped \(too big\)", BOUND_SECONDS, since)
    cluster.alive()


async def test_a_json_answer_bigger_than_the_relays_high_water_mark_gets_through(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner)
    text = "x" * (3 * 1024 * 1024)  # above forward.HIGH_WATER (1 MiB): reading from the owner paused for ever
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}},
    }
    sent = headers(TOKEN_A, session, accept="application/json")
    with anyio.fail_after(BOUND_SECONDS):
        reply = await http.post(other.url("/alpha/mcp"), content=orjson.dumps(call), headers=sent)
    assert reply.status_code == 200, reply.text[:300]
    assert reply.headers["content-type"].startswith("application/json")
    assert text in reply.text
    cluster.alive()


async def test_a_sessions_redis_stream_is_not_served_on_another_route(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    owner, other = cluster.replicas
    session = await open_session(http, owner, TOKEN_C)  # on alpha, with the token that reaches beta too
    assert await get_stream_status(http, other, session, TOKEN_C) == 200  # its Redis stream now exists
    sent = headers(TOKEN_C, session, accept="text/event-stream")
    with anyio.fail_after(BOUND_SECONDS):
        async with http.stream("GET", other.url("/beta/mcp"), headers=sent) as stream:
            status = stream.status_code
    assert status == 404  # alpha's stream was served at /beta/mcp before (the record named no route)
    cluster.alive()
