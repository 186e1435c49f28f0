"""This replica in a cluster: sealed session ids, its registration, and forwarding to a session's owner."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config.model import ClusterConfig, TokenScope
from ..core.redact import redact_running, redact_tree
from ..oauth.upstream import use_coordinator
from ..protocol.constants import MODERN_VERSIONS
from ..protocol.state import StateKey, StateSealer
from ..relay.client import ClientSession
from ..relay.mrtr import SUSPENSION_SECONDS, use_sealer
from ..relay.route import Route, set_session_ids
from ..upstream.http_post import spawner
from ..web.asgi import (
    BodyTooLargeError,
    ClientDisconnectedError,
    Receive,
    RequestHeaders,
    Scope,
    Send,
    query_param,
    read_body,
    send_error,
    send_json,
)
from ..web.operator import authorized
from .forward import OwnerPools, OwnerUnreachableError, replaying, session_gone
from .oauth_lock import RefreshLock
from .post_streams import POST_ID, RecordedSend, replay
from .registry import Registry
from .reloads import announce_reload, listen_reloads
from .seal import Sealer, new_replica_id, retry_replica
from .streams import SessionStreams, listen_ttl_ms, record_key

log = logging.getLogger("mcpmux.cluster")

PROOF_HEADER = b"x-mcpmux-forwarded"
CONNECT_SECONDS = 5.0
LEAVE_SECONDS = 2.0
MAX_REDIS_CONNECTIONS = 1024  # each open GET stream holds one while it waits


class Incoming(NamedTuple):
    """One request as the app hands it over: its route, the caller's token, ASGI, picked headers."""

    route: Route
    token: TokenScope | None
    scope: Scope
    receive: Receive
    send: Send
    headers: RequestHeaders


class ClusterError(Exception):
    """Cluster mode cannot start (Redis unreachable); the message names no secret."""


def advertised_url(config: ClusterConfig, sock: socket.socket) -> str:
    """`advertise`, else the listener's address (an all-interfaces listener: this host's address)."""
    if config.advertise:
        return config.advertise
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostbyname(socket.gethostname())
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def header_value(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class Cluster:
    """Owns the Redis client and the HTTP client to the other replicas; `intercept` is the app's hook."""

    def __init__(self, config: ClusterConfig, advertise: str, max_body: int) -> None:
        from redis.asyncio import Redis  # the `cluster` extra, imported only in cluster mode

        self.replica = new_replica_id()
        self.sealer = Sealer(config.secret, self.replica)
        self.advertise = advertise
        self.max_body = max_body
        self.redis = Redis.from_url(
            config.redis,
            socket_timeout=CONNECT_SECONDS,
            socket_connect_timeout=CONNECT_SECONDS,
            max_connections=MAX_REDIS_CONNECTIONS,
        )
        self.streams = SessionStreams(self.redis, config.secret)
        self.refresh_lock = RefreshLock(self.redis, config.secret)
        self.pumping: set[str] = set()  # sessions of this replica whose outbox goes to a Redis stream
        self._tg: TaskGroup | None = None
        self.registry = Registry(self.redis, self.replica, advertise)
        self.pools = OwnerPools(CONNECT_SECONDS)  # keep-alive connections to the other replicas
        self.forwarded = 0  # requests relayed to another replica
        self.sessions: Callable[[], int] = int  # this replica's client sessions (set by the proxy)
        self.ready: Callable[[], bool] = lambda: True  # all servers available, as /_readyz (set by the proxy)
        self.config: Callable[[], Any] = lambda: None  # the running ProxyConfig (set by the proxy)
        self.registry.stats = self.stats
        self.on_reload: Callable[[str], Awaitable[None]] | None = None  # set by the proxy when it reloads

    async def connect(self) -> None:
        """Register this replica; raises ClusterError when Redis cannot be reached."""
        try:
            with anyio.fail_after(CONNECT_SECONDS * 2):
                await self.registry.register()
        except ValueError as exc:  # an entry too big for the registry (a huge advertise URL)
            raise ClusterError(f"cluster mode: {exc}") from None
        except Exception as exc:
            raise ClusterError(f"cluster mode: cannot reach Redis: {type(exc).__name__}") from exc
        set_session_ids(self.sealer.session_id)
        use_coordinator(self.refresh_lock)  # upstream OAuth: one token refresh for all replicas
        # MRTR requestStates: one key on every replica (any can verify), its id names the signer
        use_sealer(
            StateSealer([StateKey(self.replica, self.sealer.state_key())], ttl_seconds=SUSPENSION_SECONDS)
        )
        log.info("Cluster: replica %s registered at %s", self.replica, self.advertise)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat until cancelled; then leave the registry (bounded) and close the clients."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.pools.spawn = spawner(tg)
                tg.start_soon(self.registry.heartbeat)
                if self.on_reload is not None:
                    tg.start_soon(listen_reloads, self.redis, self.replica, self.on_reload)
                task_status.started()
        finally:
            set_session_ids(None)
            use_sealer(None)
            use_coordinator(None)
            with anyio.CancelScope(shield=True), anyio.move_on_after(LEAVE_SECONDS):
                try:
                    await self.registry.leave()
                finally:
                    self.pools.close()
                    await self.redis.aclose()

    async def intercept(
        self,
        route: Route,
        token: TokenScope | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: RequestHeaders,
    ) -> tuple[Receive, Send] | None:
        """Serve a GET stream from Redis, or forward a request of another replica's session or call there.

        Streamable HTTP (`…/mcp`, the session in its header), legacy SSE POSTs (`…/message`, the session
        in the query; the stream itself stays on the replica that opened it), and 2026-07-28 MRTR retries
        (the replica holding the suspended call signed their `requestState`). None: answered here; else
        the `receive` and `send` to serve the request with as usual (a streamable POST's event-stream
        answer is then kept in Redis too, for a GET resuming it).
        """
        session_id = headers.session_id or query_param(
            scope.get("query_string", b""), "sessionId", "session_id"
        )
        if session_id:
            if await self._session_request(Incoming(route, token, scope, receive, send, headers), session_id):
                return None
            if headers.session_id and scope["method"] == "POST":
                digest = self.streams.token_digest(token, route.name)
                return receive, RecordedSend(self.redis, send, session_id, digest)
            return receive, send
        if scope["method"] == "POST" and headers.protocol_version in MODERN_VERSIONS:
            replayed = await self._modern_request(scope, receive, send)
            return None if replayed is None else (replayed, send)
        return receive, send

    async def _session_request(self, req: Incoming, session_id: str) -> bool:
        scope, headers = req.scope, req.headers
        owner = self.sealer.owner(session_id)
        if owner is None:
            return False
        if owner != self.replica and self._proof_checked(scope, session_id) is not None:
            return await self._refuse_bad_proof(scope, session_id, req.send)
        if scope["method"] == "GET" and headers.session_id and b"text/event-stream" in headers.accept:
            if headers.last_event_id and POST_ID.fullmatch(headers.last_event_id):
                return await self._resume_post(req, owner, session_id, headers.last_event_id)
            return await self._stream(req, owner, session_id)
        if owner == self.replica:
            return False
        await self._forward(owner, session_id, scope, req.receive, req.send)
        return True

    def _proof_checked(self, scope: Scope, subject: str) -> bool | None:
        """None: no proof (a client's request); else whether a replica's proof is valid."""
        proof = header_value(scope, PROOF_HEADER)
        if proof is None:
            return None
        return self.sealer.proof_ok(proof, scope["method"], scope["path"], subject, time.time())

    async def _refuse_bad_proof(self, scope: Scope, subject: str, send: Send) -> bool:
        """A replica sent it here: no second hop (not found here means gone); a bad proof is refused."""
        if self._proof_checked(scope, subject):
            return False
        await send_error(send, 403, "Forbidden: invalid replica proof")
        return True

    async def _modern_request(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """A 2026 retry whose `requestState` another replica signed goes there; the rest stays here."""
        body = await self._body(scope, receive, send)
        if body is None:
            return None
        owner = retry_replica(body)
        if owner is None or owner == self.replica:
            return replaying(body, receive)
        if self._proof_checked(scope, "") is not None:  # relayed here already: served here, or refused
            return None if await self._refuse_bad_proof(scope, "", send) else replaying(body, receive)
        await self._forward(owner, "", scope, receive, send, body)
        return None

    async def _stream(self, req: Incoming, owner: str, session_id: str) -> bool:
        """A GET stream: read from the session's Redis stream, here whoever owns the session."""
        route, token, scope, receive, send, headers = req
        if owner == self.replica:
            client = route.sessions.get(session_id)
            if client is None or client.scope is not token or client.closed:
                return False  # not found: the usual 404
            if not await self._start_pump(client):
                await send_error(send, 503, "Service Unavailable: cluster store unreachable")
                return True
            client.has_stream = True
            try:
                await self.streams.serve(
                    session_id, headers.last_event_id, receive, send, _open_check(client)
                )
            finally:
                client.has_stream = False
            return True
        try:
            allowed = await self.streams.reader_allowed(session_id, token, route.name)
            gone = allowed is False or await self.registry.address(owner) is None
        except Exception as exc:  # Redis down: no stream can be served here now
            log.warning("Cluster: cannot serve a GET stream: %s", type(exc).__name__)
            await send_error(send, 503, "Service Unavailable: cluster store unreachable")
            return True
        if allowed is None:  # no stream yet: the owner starts it
            await self._forward(owner, session_id, scope, receive, send)
        elif gone:
            await session_gone(scope, send)
        else:
            alive = self._remote_check(owner, session_id)
            listen_ms = listen_ttl_ms(route)
            await self.streams.serve(session_id, headers.last_event_id, receive, send, alive, listen_ms)
        return True

    async def _resume_post(self, req: Incoming, owner: str, session_id: str, last_event_id: str) -> bool:
        """A GET resuming a POST's answer from Redis, served by the session's owner: only it knows
        that the session still lives and is the caller's (an ended session's answers are not replayed;
        elsewhere the GET is relayed there)."""
        if owner != self.replica:
            await self._forward(owner, session_id, req.scope, req.receive, req.send)
            return True
        route, digest = req.route, self.streams.token_digest(req.token, req.route.name)
        client = route.sessions.get(session_id)
        if client is None or client.closed or client.scope is not req.token:
            await send_error(req.send, 404, "Not Found: no such stream in this session")
            return True

        async def alive() -> bool:
            return not client.closed

        try:
            await replay(self.redis, session_id, last_event_id, digest, req.receive, req.send, alive)
        except Exception as exc:  # Redis down before the stream started
            log.warning("Cluster: cannot resume a POST stream: %s", type(exc).__name__)
            await send_error(req.send, 503, "Service Unavailable: cluster store unreachable")
        return True

    async def _start_pump(self, client: ClientSession) -> bool:
        """The session's outbox drained into Redis from now on; False when Redis cannot be reached."""
        if client.id in self.pumping or self._tg is None:
            return True
        try:
            await self.streams.open(client)
        except Exception as exc:  # Redis down: the stream cannot start (the client retries)
            log.warning("Cluster: cannot start a GET stream: %s", type(exc).__name__)
            return False
        self.pumping.add(client.id)

        async def pump() -> None:
            try:
                await self.streams.pump(client)
            except Exception as exc:  # task boundary: one stream's failure must not end the cluster's tasks
                log.warning("Cluster: a GET stream's pump failed: %s", type(exc).__name__)
            finally:
                self.pumping.discard(client.id)

        self._tg.start_soon(pump)
        return True

    def _remote_check(self, owner: str, session_id: str) -> Any:
        async def alive() -> bool:
            if not await self.redis.exists(record_key(session_id)):
                return False
            return await self.registry.address(owner) is not None

        return alive

    async def _forward(
        self,
        owner: str,
        session_id: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None = None,
    ) -> None:
        try:
            url = await self.registry.address(owner)
        except Exception as exc:  # Redis down: this request cannot be placed, the session lives on
            log.warning("Cluster: cannot look up replica %s: %s", owner, type(exc).__name__)
            await send_error(send, 503, "Service Unavailable: cluster registry unreachable")
            return
        if url is None:
            await session_gone(scope, send)
            return
        body = body if body is not None else await self._body(scope, receive, send)
        if body is None:
            return
        query = scope.get("query_string", b"")
        target = f"{url}{scope['path']}" + (f"?{query.decode('latin-1')}" if query else "")
        proof = self.sealer.proof(scope["method"], scope["path"], session_id, time.time())
        self.forwarded += 1
        try:
            await self.pools.relay(url, target, scope, body, receive, send, [(PROOF_HEADER, proof.encode())])
        except OwnerUnreachableError as exc:
            log.info("Cluster: replica %s unreachable (%s): its session ends", owner, exc)
            self.registry.forget(owner)
            self.pools.drop(url)
            await session_gone(scope, send)

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        if scope["method"] != "POST":
            return b""
        try:
            return await read_body(receive, self.max_body)
        except BodyTooLargeError:
            await send_error(send, 413, f"Request body larger than {self.max_body} bytes")
        except ClientDisconnectedError:
            pass
        return None

    async def announce_reload(self) -> None:
        """After a reload that started here: every other replica reloads too (from its own source)."""
        await announce_reload(self.redis, self.replica)

    def stats(self) -> dict[str, Any]:
        """This replica's counters, published with each heartbeat; `sessions` is set by the proxy."""
        return {
            "forwarded": self.forwarded,
            "streams": len(self.pumping),
            "sessions": self.sessions(),
            "ready": self.ready(),
        }

    def paths(self, base: str) -> dict[str, Any]:
        """`/_cluster` at the root and under the baseURL's path (where the status page's script calls it)."""
        return {"/_cluster": self.view, f"{base}/_cluster": self.view}

    async def view(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        """`/_cluster` (operators): every registered replica with the counters of its last heartbeat."""
        if not await authorized(self.config(), headers, send):
            return
        await send_json(send, 200, await self.snapshot(), [(b"cache-control", b"no-store")])

    async def snapshot(self) -> dict[str, Any]:
        """What `/_cluster` and the status page show: this replica, and every registered one (none when
        Redis cannot be reached: `reachable` says so); redacted like every operator view (URLs come from
        configs and Redis)."""
        try:
            members, reachable = await self.registry.members(), True
        except Exception as exc:  # Redis down: say so, with what this replica knows
            members, reachable = [], False
            log.warning("Cluster: cannot list the replicas: %s", type(exc).__name__)
        view: dict[str, Any] = {"replica": self.replica, "advertise": self.advertise, "stats": self.stats()}
        view |= {"reachable": reachable, "replicas": members}
        redacted: dict[str, Any] = redact_tree(view, redact_running)
        return redacted


def _open_check(client: ClientSession) -> Any:
    async def alive() -> bool:
        return not client.closed

    return alive
