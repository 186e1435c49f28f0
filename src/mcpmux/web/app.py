"""The raw ASGI app: one dict lookup from path to endpoint, security checks, health endpoints."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.oauth import route_oauth
from ..core.auth import token_from_authorization
from ..core.hostcheck import HostPolicy, is_loopback_listener
from ..core.redact import Redactor, redact_tree
from ..logs import set_redactor
from ..relay.route import Route
from ..tracing import open_tracing
from .asgi import (
    Receive,
    RecordingSend,
    RequestHeaders,
    Scope,
    Send,
    send_bytes,
    send_error,
    send_json,
)
from .cors import CorsSend, preflight_headers, requested_headers
from .hook import intercepted
from .oauth_callback import callback_paths
from .operator import operator_of
from .sse import handle_sse_message, handle_sse_stream
from .state import ProxyState, StateSource
from .status import StatusEndpoints
from .streamable import handle_post, handle_streamable
from .telemetry import Telemetry, route_label

if TYPE_CHECKING:
    from ..config.model import ProxyConfig, TokenScope

log = logging.getLogger("mcpmux.http")
access_log = logging.getLogger("mcpmux.access")

PROBES = frozenset({"healthz", "readyz"})
UNAUTHORIZED_HEADERS = [(b"www-authenticate", b'Bearer realm="mcpmux"')]


def base_path(base_url: str) -> str:
    return urlsplit(base_url).path.rstrip("/")


def host_policy(config: ProxyConfig) -> HostPolicy:
    """DNS-rebinding protection; a non-loopback listener without baseURL takes any Host (containers,
    probes) and only same-origin (or configured) browser Origins."""
    any_host = not config.base_url_set and not is_loopback_listener(config.addr)
    hosts, origins = config.allowed_hosts, config.allowed_origins
    return HostPolicy(config.addr, config.base_url, hosts, origins, any_host=any_host)


class ProxyApp:
    """Serves every route's endpoints plus `/_healthz` and `/_readyz`."""

    def __init__(self, source: StateSource) -> None:
        self.source = source  # publishes the proxy's state (a new snapshot at each reload)
        self.state: ProxyState = source.state  # the snapshot the path table was built from
        self.table: dict[str, tuple[str, Any]] = {}
        self.hosts = host_policy(self.state.config)
        self.extra: dict[
            str, Any
        ] = {}  # more operator endpoints: path -> async handler(scope, receive, send)
        # more operator endpoints, given the baseURL's path (they choose where they are served)
        self.tables: list[Callable[[str], dict[str, Any]]] = []
        self.oauth: Any = None  # OAuthFront, imported only when a route has OAuth on
        self.cluster: Any = None  # cluster.node.Cluster in cluster mode: forwards others' sessions
        self.telemetry = Telemetry(open_tracing(self.state.config))
        self.status = StatusEndpoints(self)
        self.metrics = LazyMetricsEndpoint(self, self.telemetry)
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute the path table from the state's routes (at start, and for each new state)."""
        self.state = state = self.source.state
        config = state.config
        base = base_path(config.base_url)
        public = config.base_url.rstrip("/")
        table: dict[str, tuple[str, Any]] = {
            "/_healthz": ("healthz", None),
            "/_readyz": ("readyz", None),
        }
        for route in state.routes.values():
            prefix = f"/{route.name}" if route.name else ""
            table[f"{base}{prefix}/mcp"] = ("mcp", route)
            table[f"{base}{prefix}/sse"] = ("sse", (route, f"{public}{prefix}/message"))
            table[f"{base}{prefix}/message"] = ("message", route)
        operator = {
            **self.status.table(base),
            "/metrics": self.metrics,
            **self._rebuild_oauth(),
            **callback_paths(self, base),
            **{path: handler for table in self.tables for path, handler in table(base).items()},
        }
        for path, handler in {**operator, **self.extra}.items():
            table[path] = ("extra", handler)
        self.table = table
        self.hosts = host_policy(config)
        self.redactor = Redactor.for_config(config)
        set_redactor(self.redactor)  # log lines too

    def _rebuild_oauth(self) -> dict[str, Any]:
        """The OAuth metadata endpoints; the OAuth modules (and PyJWT) load only when OAuth is on."""
        config, routes = self.state.config, self.state.routes.values()
        if self.oauth is None:
            if config.defaults.oauth is None and all(route_oauth(config, r.name) is None for r in routes):
                return {}
            from .oauth_front import OAuthFront

            self.oauth = OAuthFront()
        self.oauth.rebuild(config, routes)
        paths: dict[str, Any] = self.oauth.paths()
        return paths

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The ASGI app. Not a coroutine itself: it returns the one that answers the request, for the
        server to await (every resume of a request passes each frame of its await chain)."""
        if scope["type"] != "http":
            return _nothing()
        if self.source.state is not self.state:  # a reload published a new state
            self.rebuild()
        path: str = scope["path"]
        entry = self.table.get(path)
        if entry is None and path.endswith("/"):
            entry = self.table.get(path.rstrip("/"))
        if entry is None:
            return send_error(send, 404, "Not Found")
        headers = RequestHeaders(scope["headers"], client=scope.get("client"))
        kind, target = entry
        refusal = self._refuse_host(scope, headers, kind)
        if refusal is not None:
            return send_error(send, *refusal)
        if kind == "healthz":
            return self._healthz(send)
        if kind == "readyz":
            return self._readyz(send, headers)
        if kind == "extra":
            awaitable: Awaitable[None] = target(scope, receive, send, headers)
            return awaitable
        return self._route_request(kind, target, scope, receive, send, headers)

    def _route_request(
        self, kind: str, target: Any, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders
    ) -> Awaitable[None]:
        """An MCP route's request: a preflight answered here, else served (with CORS for a browser).

        Not a coroutine itself: the caller awaits the one it returns (one frame less on every resume).
        """
        if scope["method"] == "OPTIONS":
            # before auth: a browser's preflight carries no credentials (its Origin was checked)
            answer = preflight_headers(headers.origin, kind, requested_headers(scope))
            return send_bytes(send, 200, b"", answer)
        if headers.origin is not None:
            send = CorsSend(send, headers.origin)
        route: Route = target[0] if kind == "sse" else target
        if route.log_enabled:
            return self._logged(kind, target, route, scope, receive, send, headers)
        return self._serve(kind, target, route, scope, receive, send, headers)

    def _refuse_host(self, scope: Scope, headers: RequestHeaders, kind: str) -> tuple[int, str] | None:
        """400 without a Host (HTTP/1.1) or with two (or two of another header that must come once);
        403 for a Host or Origin the policy refuses.

        Probes (`/_healthz`, `/_readyz`) are served whatever their Host: they show no data.
        """
        if headers.repeated is not None:
            return 400, f"Bad Request: more than one {headers.repeated} header"
        if headers.host is None and scope.get("http_version") != "1.0":
            return 400, "Bad Request: no Host header"
        if kind not in PROBES and not self.hosts.host_allowed(headers.host):
            return 403, f"Forbidden: Host {headers.host!r} is not allowed"
        if not self.hosts.origin_allowed(headers.origin, headers.host):
            return 403, f"Forbidden: Origin {headers.origin!r} is not allowed"
        return None

    def _serve(
        self,
        kind: str,
        target: Any,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: RequestHeaders,
    ) -> Awaitable[None]:
        """The request's token, then its face; not a coroutine unless admission or the cluster must
        wait for something (the caller awaits what it returns: no frame on every resume)."""
        # Matched even where auth is off: on the merged endpoint a token may reach more than no token.
        authorization = headers.authorization
        presented = None if authorization is None else token_from_authorization(authorization)
        token = None if presented is None or not route.tokens else route.tokens.match(presented)
        if (token is None and (route.tokens.enabled or self.oauth is not None)) or self.cluster is not None:
            return self._serve_admitted(kind, target, route, token, presented, scope, receive, send, headers)
        return self._face(kind, target, route, token, scope, receive, send, headers)

    async def _serve_admitted(
        self,
        kind: str,
        target: Any,
        route: Route,
        token: TokenScope | None,
        presented: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: RequestHeaders,
    ) -> None:
        """`_serve` where a caller without a matching static token may need admission, or in a cluster."""
        if token is None and self._admission_needed(route):
            token = await self._admit(route, kind, scope, presented, send)
            if token is None:
                return  # the 401 (or OAuth's 401/403 challenge) was sent
        if self.cluster is not None and kind != "sse":
            # another replica's session or call is relayed there (and its token checked again there)
            hook = partial(self.cluster.intercept, route, token, scope, receive, headers=headers)
            served = await intercepted(hook, route, scope["method"], send)
            if served is None:
                return
            receive, send = served
        await self._face(kind, target, route, token, scope, receive, send, headers)

    def _face(
        self,
        kind: str,
        target: Any,
        route: Route,
        token: TokenScope | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: RequestHeaders,
    ) -> Awaitable[None]:
        """The face serving the request (streamable HTTP, the legacy SSE stream or its POSTs), for the
        caller to await (no coroutine in between: one frame less on every resume of the request)."""
        if kind == "mcp":
            if scope["method"] == "POST":
                limit = self.state.config.max_request_bytes
                return handle_post(route, receive, send, headers, token, limit, self.telemetry)
            return handle_streamable(route, scope, receive, send, headers, token)
        if kind == "sse":
            return _sse_stream(route, target[1], scope, receive, send, token)
        limit = self.state.config.max_request_bytes
        return handle_sse_message(route, scope, receive, send, headers, token, limit, self.telemetry)

    def _admission_needed(self, route: Route) -> bool:
        """Whether a caller without a matching static token must get in another way (OAuth) or not at all."""
        return route.tokens.enabled or (self.oauth is not None and route.name in self.oauth.doors)

    def _admit(
        self, route: Route, kind: str, scope: Scope, presented: str | None, send: Send
    ) -> Awaitable[TokenScope | None]:
        """A caller without a matching static token: OAuth where it is on, else 401 (None once answered)."""
        if self.oauth is not None and route.name in self.oauth.doors:
            admitting: Awaitable[TokenScope | None] = self.oauth.admit(route, kind, scope, presented, send)
            return admitting  # a static token first, then OAuth
        return _unauthorized(send)

    async def _logged(
        self,
        kind: str,
        target: Any,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: RequestHeaders,
    ) -> None:
        started = time.perf_counter()
        recording = RecordingSend(send)  # records the status and keeps the early response path open
        try:
            await self._serve(kind, target, route, scope, receive, recording, headers)
        finally:
            status = recording.status
            duration_ms = (time.perf_counter() - started) * 1000
            # an answered JSON-RPC request (POST, 200) was logged by Telemetry with its fields
            if scope["method"] != "POST" or status != 200:
                access_log.info(
                    "%s %s %s %d %.1fms",
                    route_label(route),
                    scope["method"],
                    scope["path"],
                    status,
                    duration_ms,
                    extra={
                        "route": route.name,
                        "status": status,
                        "duration_ms": round(duration_ms, 3),
                        "session": headers.session_id,
                    },
                )

    async def _healthz(self, send: Send) -> None:
        config = self.state.config
        await send_json(send, 200, {"status": "ok", "name": config.name, "version": config.version})

    async def _readyz(self, send: Send, headers: RequestHeaders) -> None:
        """Ready or not, per server; the details (states, errors, pids) for operators only, redacted."""
        config = self.state.config
        runtimes = self.state.runtimes
        ready = all(rt.available for rt in runtimes.values())  # lazyStart ones count
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        # probes come with any Host; details only with one the policy allows (a DNS-rebinding page
        # must not read servers' errors and stderr where operator views are open on loopback)
        if operator_of(config, headers) is None or not self.hosts.host_allowed(headers.host):
            body["servers"] = {self.redactor.name(n): {"ready": rt.available} for n, rt in runtimes.items()}
        else:
            servers = {self.redactor.name(name): rt.status() for name, rt in runtimes.items()}
            body.update(
                name=config.name,
                version=config.version,
                serverCount=len(servers),
                readyCount=sum(1 for rt in runtimes.values() if rt.ready),
                servers=redact_tree(servers, self.redactor),
            )
        await send_json(send, 200 if ready else 503, body)


class LazyMetricsEndpoint:
    """`/metrics`, with prometheus_client imported at the first scrape rather than at startup."""

    def __init__(self, app: ProxyApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry
        self._endpoint: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        if self._endpoint is None:
            from .metrics import MetricsEndpoint

            self._endpoint = MetricsEndpoint(self.app, self.telemetry)
        await self._endpoint(scope, receive, send, headers)


async def _nothing() -> None:
    """What a request the app does not serve (not HTTP) awaits."""


async def _unauthorized(send: Send) -> None:
    await send_error(send, 401, "Unauthorized", UNAUTHORIZED_HEADERS)


async def _sse_stream(
    route: Route, session_hint: Any, scope: Scope, receive: Receive, send: Send, token: TokenScope | None
) -> None:
    """The legacy SSE stream (GET only)."""
    if scope["method"] != "GET":
        await send_error(send, 405, "Method Not Allowed", [(b"allow", b"GET")])
        return
    await handle_sse_stream(route, session_hint, receive, send, token)
