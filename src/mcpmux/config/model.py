"""The validated, immutable configuration that every other part of mcpmux reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["stdio", "sse", "streamable-http"]
SessionMode = Literal["shared", "isolated"]
FilterMode = Literal["allow", "block"]
PinningMode = Literal["off", "warn", "enforce"]
CatalogMode = Literal["full", "search"]
UpstreamEra = Literal["legacy", "auto", "2026-07-28"]


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Allow or block tools by exact name or glob pattern (`*`, `?`, `[...]`)."""

    mode: FilterMode
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ToolOverride:
    """Per-tool presentation changes: publish under another name, description or title."""

    name: str | None = None
    description: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True, weakref_slot=True)
class TokenScope:
    """An accepted auth token, optionally limited to some servers and tools.

    `servers` holds server-name glob patterns (empty means every server); `tool_filter` applies to the
    published tool names of those servers (for the merged endpoint, the namespaced names).
    """

    token: str
    servers: tuple[str, ...] = ()
    tool_filter: ToolFilter | None = None

    # OAuth: the scope granted by each of several OAuth scopes; the token may do what any one allows.
    any_of: tuple[TokenScope, ...] = ()
    # OAuth: the `oauth` setting that admitted this (per-principal) scope; None for a static token.
    oauth: OAuthResource | None = field(default=None, compare=False, repr=False)

    @property
    def unrestricted(self) -> bool:
        return not self.servers and self.tool_filter is None and not self.any_of

    @property
    def identity(self) -> str:
        """Who this scope stands for, for what binds to a caller (requestState, cluster streams): a
        static token and an OAuth principal (`token` is then `oauth:<principal>`) never name the same."""
        return ("oauth " if self.oauth is not None else "token ") + self.token

    @property
    def filters_tools(self) -> bool:
        """Whether the published tool names must be checked against this scope."""
        return self.tool_filter is not None or bool(self.any_of)


# Asymmetric JWS algorithms only: `none` and HMAC (a shared secret) are never accepted.
OAUTH_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True, slots=True)
class OAuthIntrospection:
    """RFC 7662 token introspection for opaque access tokens."""

    client_id: str
    client_secret: str = field(repr=False)
    endpoint: str | None = None  # None: the `introspection_endpoint` of the issuer's metadata
    cache_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class OAuthResource:
    """mcpmux as an OAuth 2.1 resource server on a route (`options.oauth`).

    `scopes` maps an OAuth scope to what it grants (like a scoped static token); empty means every
    valid token may use the whole route.
    """

    issuer: str
    authorization_servers: tuple[str, ...]
    jwks_uri: str | None = None
    audiences: tuple[str, ...] = ()  # accepted besides the route's own resource URLs
    algorithms: tuple[str, ...] = OAUTH_ALGORITHMS
    leeway_seconds: float = 30.0
    required_scopes: tuple[str, ...] = ()
    scopes: tuple[tuple[str, TokenScope], ...] = ()
    introspection: OAuthIntrospection | None = None


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff with jitter for restarting or reconnecting an upstream."""

    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2  # +/- fraction of each delay


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Periodic ping of an upstream; `interval_seconds` 0 disables it."""

    interval_seconds: float = 30.0
    failure_threshold: int = 3
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Options of one server after inheritance from `mcpProxy.options` has been applied.

    `auth_tokens` empty means auth is off for this server's routes.
    """

    panic_if_invalid: bool = False
    log_enabled: bool = False
    auth_tokens: tuple[TokenScope, ...] = ()
    tool_filter: ToolFilter | None = None
    tool_overrides: dict[str, ToolOverride] = field(default_factory=dict)
    session_mode: SessionMode = "shared"
    max_sessions: int = 1000
    idle_timeout_seconds: float = 1800.0
    max_line_bytes: int = 64 * 1024 * 1024  # longest line read from a stdio server's stdout
    max_request_queue: int = 1000  # messages related to one request waiting for its client
    max_session_queue: int = 1000  # messages waiting for a session's standalone stream
    connect_timeout_seconds: float = 30.0
    request_timeout_seconds: float = 300.0
    lazy_start: bool = False
    restart: BackoffPolicy = field(default_factory=BackoffPolicy)
    health_check: HealthCheck = field(default_factory=HealthCheck)
    pinning: PinningMode = "off"  # tool definitions checked against the lock file (see core/pins.py)
    oauth: OAuthResource | None = None
    catalog: CatalogMode = "full"  # "search": the route lists meta-tools to search its tools instead
    protocol: UpstreamEra = "legacy"  # the era spoken to a streamable-HTTP upstream (others: always legacy)


@dataclass(frozen=True, slots=True)
class UpstreamOAuth:
    """mcpmux as the OAuth client of one HTTP upstream (the server's own `oauth`, beside `url`)."""

    grant: Literal["authorization_code", "client_credentials"] = "authorization_code"
    client_id: str | None = None  # pre-registered; None: dynamic client registration (RFC 7591)
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    redirect_uri: str | None = None  # None: {baseURL}/_oauth/callback
    issuer: str | None = None  # None: the first authorization server the upstream names
    client_name: str = "mcpmux"
    client_metadata_url: str | None = None  # CIMD: an https URL used as client_id where supported
    private_key: str | None = field(default=None, repr=False)  # PEM: private_key_jwt client auth
    signing_algorithm: str = "RS256"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """`mcpProxy.cluster`: several replicas sharing sessions through Valkey/Redis."""

    redis: str  # redis://, rediss:// or unix:// URL
    secret: str = field(repr=False)  # HMAC key for session ids and replica-to-replica requests
    advertise: str | None = None  # this replica's URL for the others; None: derived from the listener


@dataclass(frozen=True, slots=True)
class RequestStateKey:
    """One `mcpProxy.requestStateKeys` entry: an HMAC key for MRTR `requestState` (the first signs)."""

    id: str
    secret: str = field(repr=False)  # at least 32 characters; its UTF-8 bytes are the key


@dataclass(frozen=True, slots=True)
class TokenStoreConfig:
    """Where upstream OAuth tokens are kept, encrypted (`mcpProxy.tokenStore`)."""

    path: str = "mcpmux-tokens.enc"
    key_env: str = "MCPMUX_TOKEN_KEY"
    key_file: str | None = None  # None: `<path>.key`, created (0600) when absent


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One upstream MCP server (a key of `mcpServers`)."""

    name: str
    transport: Transport
    options: ServerOptions
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None  # the seed's per-server `timeout`, applied to requests
    disabled: bool = False
    oauth: UpstreamOAuth | None = None


@dataclass(frozen=True, slots=True)
class GroupMember:
    server: str
    tool_filter: ToolFilter | None = None


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """A virtual server: hand-picked servers (each with its own tool filter) served merged."""

    name: str
    members: tuple[GroupMember, ...]
    auth_tokens: tuple[TokenScope, ...] = ()
    log_enabled: bool = False
    oauth: OAuthResource | None = None
    catalog: CatalogMode = "full"


@dataclass(frozen=True, slots=True)
class MergedConfig:
    """The `{basePath}/mcp` and `{basePath}/sse` endpoint that serves every enabled server."""

    enabled: bool = True
    separator: str = "__"
    auth_tokens: tuple[TokenScope, ...] = ()
    log_enabled: bool = False
    oauth: OAuthResource | None = None
    catalog: CatalogMode = "full"


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """OpenTelemetry tracing (`mcpProxy.tracing`, or `--otel`); off unless enabled."""

    enabled: bool = False
    exporter: Literal["otlp", "console", "none"] = "otlp"
    service_name: str = "mcpmux"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds of the HTTP/1.1 server (`mcpProxy.http`): what one client may hold of the proxy."""

    max_head_bytes: int = 64 * 1024  # request line and headers, enforced while they arrive (431)
    head_timeout_seconds: float = 30.0  # a request head must be complete this long after it began (408)
    body_timeout_seconds: float = 30.0  # longest wait for more of a request body being read (408)
    write_timeout_seconds: float = 30.0  # longest a response may wait for a client that reads nothing
    keep_alive_timeout_seconds: float = 30.0  # an idle keep-alive connection is closed after this
    max_connections: int = 1000  # connections beyond it are answered 503 and closed
    max_pipelined: int = 16  # requests parsed ahead of the one being answered, per connection


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The whole configuration: `mcpProxy` plus servers, groups and the merged endpoint."""

    base_url: str
    addr: str
    name: str
    version: str
    type: Literal["sse", "streamable-http"]
    defaults: ServerOptions
    servers: dict[str, ServerConfig]  # every configured server, disabled ones included
    merged: MergedConfig = field(default_factory=MergedConfig)
    groups: dict[str, GroupConfig] = field(default_factory=dict)
    allowed_hosts: tuple[str, ...] = ()  # extra Host values accepted besides the derived ones
    allowed_origins: tuple[str, ...] = ()  # extra Origin values accepted besides the derived ones
    max_request_bytes: int = 4 * 1024 * 1024
    source: str = "config.json"
    tracing: TracingConfig = field(default_factory=TracingConfig)
    token_store: TokenStoreConfig = field(default_factory=TokenStoreConfig)
    http: HttpLimits = field(default_factory=HttpLimits)
    operator_tokens: tuple[TokenScope, ...] | None = None  # `mcpProxy.operatorTokens`; None: not set
    base_url_set: bool = False  # `mcpProxy.baseURL` was given (else it is derived from addr)
    cluster: ClusterConfig | None = None  # `mcpProxy.cluster`; None: one process
    request_state_keys: tuple[RequestStateKey, ...] = ()  # `mcpProxy.requestStateKeys`; (): random

    @property
    def operator_token_scopes(self) -> tuple[TokenScope, ...]:
        """The tokens that open operator views: `operatorTokens`, else the unscoped default tokens that
        reach every server (operator views show every server: a default token that a server's own
        `authTokens` or OAuth setting leaves out must not see that server there)."""
        if self.operator_tokens is not None:
            return self.operator_tokens
        defaults = self.defaults.auth_tokens
        return tuple(s for s in defaults if s.unrestricted and self._reaches_all(s.token))

    def _reaches_all(self, token: str) -> bool:
        """Whether every enabled server's own route takes `token` unscoped (or has auth off)."""
        for server in self.enabled_servers.values():
            own = server.options.auth_tokens
            if not own and server.options.oauth is None:
                continue  # auth off: anyone reaches it
            if not any(scope.token == token and scope.unrestricted for scope in own):
                return False
        return True

    @property
    def enabled_servers(self) -> dict[str, ServerConfig]:
        return {name: s for name, s in self.servers.items() if not s.disabled}
