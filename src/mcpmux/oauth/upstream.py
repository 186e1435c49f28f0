"""mcpmux logged in to one HTTP upstream: its token (refreshed early), logins, and the connection hook."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import httpx2

from ..config.model import ProxyConfig, ServerConfig
from . import flow
from .flow import Discovery, FlowError, OAuthClientInformationFull, OAuthToken
from .store import StoreError, TokenStore, shared_store

log = logging.getLogger("mcpmux.oauth")

REFRESH_MARGIN_SECONDS = 60.0  # refresh this long before the access token expires
LOGIN_POLL_SECONDS = 2.0  # while waiting for a login, how often the store file is looked at
PENDING_LOGIN_SECONDS = 600.0  # a started login must finish within this


class LoginRequired(httpx2.HTTPError):
    """No usable token: a person must log in (`mcpmux auth login <server>`). Never retried in a loop."""


class RefreshCoordinator(Protocol):
    """Cluster mode: one refresh for all replicas (cluster/oauth_lock.py); None in one process."""

    async def renew(
        self, server: str, stale: str | None, renew: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]: ...


_coordinator: RefreshCoordinator | None = None


def use_coordinator(coordinator: RefreshCoordinator | None) -> None:
    """Set (cluster mode joined) or clear (left) the cluster-wide refresh lock."""
    global _coordinator
    _coordinator = coordinator


class UpstreamAuth:
    """The OAuth client state of one upstream server, shared by all its connections."""

    def __init__(self, server: ServerConfig, proxy: ProxyConfig, store: TokenStore | None = None) -> None:
        assert server.oauth is not None and server.url is not None
        self.name = server.name
        self.url = server.url
        self.config = server.oauth
        self.store = store or shared_store(proxy.token_store)
        self.redirect_uri = self.config.redirect_uri or f"{proxy.base_url.rstrip('/')}/_oauth/callback"
        self.needs_login: str | None = None  # why a person must log in; None when not
        self._lock = anyio.Lock()
        self._login_done = anyio.Event()
        self._header: tuple[str, float, int] = ("", 0.0, 0)  # header, valid until, store version
        self._login_asked_at = 0.0

    # -- what connections call -------------------------------------------------------------------

    async def authorization(self) -> str:
        """`Bearer <token>` for the next request, refreshing first when it expires within a minute.

        The hot path is one `stat` of the store: the header is kept until it needs refreshing or
        the store changes (a login or logout by `mcpmux auth` in another process).
        """
        header, until, version = self._header
        if time.time() < until and version == self.store.version:
            return header
        async with self._lock:
            record = await self._record()
            token = record.get("tokens") or {}
            expiry = token.get("expires_at")
            fresh = expiry is None or expiry - REFRESH_MARGIN_SECONDS > time.time()
            if not token.get("access_token") or not fresh:
                record = await self._renew(record, why="expired" if token else "no token")
                token = record["tokens"]
            header = f"Bearer {token['access_token']}"
            expiry = token.get("expires_at")
            until = float("inf") if expiry is None else expiry - REFRESH_MARGIN_SECONDS
            self._header = (header, until, self.store.version)
            return header

    async def rejected(self, response: httpx2.Response, sent: str) -> bool:
        """After a 401 or 403 `insufficient_scope` to a request sent with `sent`: whether to retry."""
        error = flow.challenge_field(response.headers.get("www-authenticate"), "error")
        if response.status_code == 403 and error != "insufficient_scope":
            return False
        self._header = ("", 0.0, 0)
        async with self._lock:
            record = await self._record()
            current = (record.get("tokens") or {}).get("access_token")
            if current and f"Bearer {current}" != sent:
                return True  # another request renewed it meanwhile
            if response.status_code == 403:  # step-up: ask for the union of scopes
                challenged = challenge_scope(response) or advertised_scopes(record)
                wanted = flow.union_scopes(record.get("scope") or self.config.scope, challenged)
                record = await self._save(scope=wanted, tokens=None)
                await self._renew(record, why="insufficient_scope", refresh=False)
            else:
                await self._renew(record, why="rejected (HTTP 401)")
            return True

    # -- getting tokens ------------------------------------------------------------------------

    async def _renew(self, record: dict[str, Any], *, why: str, refresh: bool = True) -> dict[str, Any]:
        """A new token; in cluster mode one replica gets it under a lock and the others take it."""
        coordinator = _coordinator
        if coordinator is None or not refresh:  # a step-up wants new scopes: never another's token
            return await self._renew_here(record, why=why, refresh=refresh)

        async def here() -> dict[str, Any]:
            renewed = await self._renew_here(await self._record(), why=why, refresh=refresh)
            tokens: dict[str, Any] = renewed["tokens"]
            return tokens

        stale = (record.get("tokens") or {}).get("access_token")
        tokens, shared = await coordinator.renew(self.name, stale, here)
        return await self._save(tokens=tokens) if shared else await self._record()

    async def _renew_here(self, record: dict[str, Any], *, why: str, refresh: bool) -> dict[str, Any]:
        """A new token: refresh it, or (client credentials) ask again; else a person must log in."""
        tokens = record.get("tokens") or {}
        try:
            if refresh and tokens.get("refresh_token") and record.get("client") and record.get("discovery"):
                form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
                return await self._grant(record, form)
            if self.config.grant == "client_credentials":
                return await self._client_credentials(record)
        except FlowError as exc:
            log.warning("%s: OAuth token renewal failed: %s", self.name, exc, extra={"server": self.name})
        self._ask_for_login(f"{why}; a login is needed: mcpmux auth login {self.name}")
        raise LoginRequired(self.needs_login or "login required")

    async def _client_credentials(self, record: dict[str, Any]) -> dict[str, Any]:
        async with flow.new_http() as http:
            discovery = await self._discovery(http, record)
            client = await flow.register(http, discovery, self.config, self.redirect_uri)
        record = await self._save(discovery=discovery.to_json(), client=client_json(client))
        form = {"grant_type": "client_credentials"}
        scope = record.get("scope") or self.config.scope
        if scope:
            form["scope"] = scope
        return await self._grant(record, form)

    async def _grant(self, record: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        discovery = Discovery.from_json(record["discovery"])
        client = OAuthClientInformationFull.model_validate(record["client"])
        async with flow.new_http() as http:
            token = await flow.token_request(http, discovery, client, form, self.config)
        previous = record.get("tokens") or {}
        return await self._save(tokens=token_json(token, previous.get("refresh_token")))

    async def _discovery(self, http: httpx2.AsyncClient, record: dict[str, Any]) -> Discovery:
        if record.get("discovery"):
            return Discovery.from_json(record["discovery"])
        return await flow.discover(http, self.url, self.config)

    # -- logging in (authorization code) --------------------------------------------------------

    async def begin_login(self) -> str:
        """Discover, register if needed, and remember a pending login; returns the authorization URL."""
        record = await self._record()
        async with flow.new_http() as http:
            discovery = await flow.discover(http, self.url, self.config)
            stored = record.get("client")
            client = (
                OAuthClientInformationFull.model_validate(stored)
                if stored and record.get("issuer") == str(discovery.metadata.issuer)
                else await flow.register(http, discovery, self.config, self.redirect_uri)
            )
        scope = record.get("scope") or self.config.scope or discovery.scope
        started = flow.authorization(discovery, client, self.redirect_uri, scope)
        pending = {"state": started.state, "verifier": started.verifier, "at": time.time(), "scope": scope}
        await self._save(
            discovery=discovery.to_json(),
            client=client_json(client),
            issuer=str(discovery.metadata.issuer),
            pending=pending,
        )
        return started.url

    async def finish_login(self, code: str, state: str | None, iss: str | None) -> None:
        """Exchange the authorization code of the pending login whose `state` this is."""
        record = await self._record()
        pending = record.get("pending") or {}
        if not pending or not state or not _same(state, pending.get("state", "")):
            raise FlowError("no pending login with this state (start one with mcpmux auth login)")
        if time.time() - float(pending.get("at", 0)) > PENDING_LOGIN_SECONDS:
            raise FlowError("the pending login expired; start it again")
        discovery = Discovery.from_json(record["discovery"])
        flow.check_iss(discovery, iss)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending["verifier"],
        }
        await self._save(pending=None, scope=pending.get("scope"))
        await self._grant(await self._record(), form)
        self.login_completed()

    async def has_pending(self, state: str) -> bool:
        try:
            pending = (await self._record()).get("pending") or {}
        except FlowError:
            return False
        return bool(pending) and _same(state, pending.get("state", ""))

    def login_completed(self) -> None:
        self.needs_login = None
        self._login_done.set()
        self._login_done = anyio.Event()

    def _ask_for_login(self, why: str) -> None:
        if self.needs_login is None:
            log.warning("%s: %s", self.name, why, extra={"server": self.name, "state": "login required"})
            self._login_asked_at = time.time()
        self.needs_login = why

    async def wait_for_login(self) -> None:
        """Until a login completes here (callback route) or in another process (the store changes)."""
        version = self.store.version
        while self.needs_login is not None:
            with anyio.move_on_after(LOGIN_POLL_SECONDS):
                await self._login_done.wait()
                return
            if self.store.version != version:  # written: by a login, or for another server
                version = self.store.version
                tokens = (await self._record()).get("tokens") or {}
                if tokens.get("access_token") and tokens.get("obtained_at", 0) >= self._login_asked_at:
                    self.needs_login = None

    def check_ready(self) -> None:
        """Before connecting: with no token and no way to get one alone, a person must log in first."""
        try:
            record = self.store.record(self.name)
        except StoreError as exc:
            self._ask_for_login(str(exc))
            return
        if not (record.get("tokens") or {}).get("access_token") and self.config.grant == "authorization_code":
            self._ask_for_login(f"not logged in: mcpmux auth login {self.name}")

    # -- the store ------------------------------------------------------------------------------

    async def _record(self) -> dict[str, Any]:
        try:
            return await anyio.to_thread.run_sync(self.store.record, self.name)
        except StoreError as exc:
            raise FlowError(str(exc)) from None

    async def _save(self, **fields: Any) -> dict[str, Any]:
        def write() -> dict[str, Any]:
            return self.store.update(self.name, **fields)

        try:
            return await anyio.to_thread.run_sync(write)
        except StoreError as exc:
            raise FlowError(str(exc)) from None


def advertised_scopes(record: dict[str, Any]) -> str | None:
    """Without a `scope` in the 403: the 401's, else every scope the upstream's metadata lists."""
    stored = record.get("discovery")
    return Discovery.from_json(stored).scope if stored else None


def challenge_scope(response: httpx2.Response) -> str | None:
    return flow.challenge_field(response.headers.get("www-authenticate"), "scope")


def token_json(token: OAuthToken, previous_refresh: str | None) -> dict[str, Any]:
    return {
        "access_token": token.access_token,
        "refresh_token": token.refresh_token or previous_refresh,
        "expires_at": flow.expires_at(token),
        "scope": token.scope,
        "obtained_at": time.time(),
    }


def client_json(client: OAuthClientInformationFull) -> dict[str, Any]:
    return client.model_dump(mode="json", exclude_none=True)


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


_auths: dict[str, UpstreamAuth] = {}


def register_auth(auth: UpstreamAuth) -> None:
    _auths[auth.name] = auth


def auth_for(server: ServerConfig) -> UpstreamAuth | None:
    """The OAuth state of an upstream with `oauth` configured (made by its runtime), else None."""
    return _auths.get(server.name) if server.oauth is not None else None
