"""`mcpmux auth login|status|logout|keygen`: log in to OAuth upstreams from a terminal, headless or not."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import anyio
from cryptography.fernet import Fernet

from ..config.model import ProxyConfig, ServerConfig
from ..errors import CommandError
from .flow import FlowError
from .store import StoreError, TokenStore, shared_store
from .upstream import PENDING_LOGIN_SECONDS, UpstreamAuth

ACTIONS = ("login", "status", "logout", "keygen")
USAGE = (
    "mcpmux [flags] auth login SERVER    print the authorization URL, then finish the login from the\n"
    "                                    proxy's callback route or from the redirect URL pasted here\n"
    "mcpmux [flags] auth status          every OAuth server's token state (never the tokens)\n"
    "mcpmux [flags] auth logout SERVER   forget the server's tokens\n"
    "mcpmux auth keygen                  print a new key for $MCPMUX_TOKEN_KEY"
)


class AuthCommandError(CommandError):
    """An `auth` command cannot run."""


def run_auth(
    config: ProxyConfig | None,
    action: str | None,
    names: Sequence[str],
    out: TextIO = sys.stdout,
    stdin: TextIO = sys.stdin,
) -> int:
    """Run one auth command; its exit status."""
    try:
        return _run(config, action, names, out, stdin)
    except (AuthCommandError, StoreError, FlowError) as exc:
        print(f"mcpmux: {exc}", file=sys.stderr)
        return exc.status if isinstance(exc, AuthCommandError) else 1


def _run(
    config: ProxyConfig | None, action: str | None, names: Sequence[str], out: TextIO, stdin: TextIO
) -> int:
    if action == "keygen":
        print(Fernet.generate_key().decode(), file=out)
        return 0
    if config is None:
        raise AuthCommandError(f"auth {action}: needs a config", 2)
    if action == "status":
        return status(config, shared_store(config.token_store), out)
    server = _oauth_server(config, action, names)
    auth = UpstreamAuth(server, config)
    if action == "logout":
        auth.store.update(server.name, tokens=None, pending=None, scope=None)
        print(f"Logged out of {server.name}", file=out)
        return 0
    return anyio.run(login, auth, out, stdin)


def _oauth_server(config: ProxyConfig, action: str | None, names: Sequence[str]) -> ServerConfig:
    """The one server named for `login` or `logout`: it must log in with OAuth (login: interactively)."""
    if action not in ACTIONS or len(names) != 1:
        raise AuthCommandError(f"auth: expected login|logout SERVER, status or keygen\n{USAGE}", 2)
    server = config.servers.get(names[0])
    if server is None or server.oauth is None:
        oauth = ", ".join(n for n, s in config.servers.items() if s.oauth is not None) or "none"
        raise AuthCommandError(
            f'auth {action}: no server "{names[0]}" with "oauth" (OAuth servers: {oauth})', 2
        )
    if action == "login" and server.oauth.grant == "client_credentials":
        raise AuthCommandError(f"auth login: {server.name} uses client credentials: no login needed", 2)
    return server


async def login(auth: UpstreamAuth, out: TextIO, stdin: TextIO) -> int:
    url = await auth.begin_login()
    print(
        f"Open this URL to log in to {auth.name}:\n\n  {url}\n\n"
        f"The authorization server then sends the browser to {auth.redirect_uri}: a running mcpmux finishes\n"
        "the login there. Or paste the URL the browser was sent to (or just its code) here:",
        file=out,
        flush=True,
    )
    done = anyio.Event()
    result: list[int] = []

    async def from_terminal() -> None:
        line = await anyio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True)
        if not line.strip():
            return  # no terminal input: wait for the callback route
        code, state, iss = pasted(line.strip(), await pending_state(auth))
        await auth.finish_login(code, state, iss)
        result.append(0)
        done.set()

    async def from_callback() -> None:
        started = time.time()
        while True:
            tokens = (await auth_store_record(auth)).get("tokens") or {}
            if tokens.get("access_token") and tokens.get("obtained_at", 0) >= started:
                break
            await anyio.sleep(1.0)
        result.append(0)
        done.set()

    with anyio.move_on_after(PENDING_LOGIN_SECONDS):
        async with anyio.create_task_group() as tg:
            tg.start_soon(from_terminal)
            tg.start_soon(from_callback)
            await done.wait()
            tg.cancel_scope.cancel()
    if not result:
        raise AuthCommandError(f"the login to {auth.name} did not finish within {PENDING_LOGIN_SECONDS:g}s")
    print(f"Logged in to {auth.name}", file=out)
    return 0


async def auth_store_record(auth: UpstreamAuth) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(auth.store.record, auth.name)


async def pending_state(auth: UpstreamAuth) -> str | None:
    pending = (await auth_store_record(auth)).get("pending") or {}
    state = pending.get("state")
    return state if isinstance(state, str) else None


def pasted(text: str, state: str | None) -> tuple[str, str | None, str | None]:
    """`code`, `state`, `iss` from a pasted redirect URL, or a bare code (then this login's state)."""
    if "?" not in text and "=" not in text:
        return text, state, None
    query = {k: v[0] for k, v in parse_qs(urlsplit(text).query or text.lstrip("?")).items()}
    if "error" in query:
        raise FlowError(f"the authorization server refused the login: {query['error'][:100]}")
    if not query.get("code"):
        raise FlowError("the pasted text has no code")
    return query["code"], query.get("state"), query.get("iss")


def status(config: ProxyConfig, store: TokenStore, out: TextIO) -> int:
    servers = {n: s for n, s in config.servers.items() if s.oauth is not None}
    if not servers:
        print('No server logs in with OAuth (no server has "oauth")', file=out)
        return 0
    data = store.load()["servers"]
    for name, server in servers.items():
        assert server.oauth is not None
        print(f"{name}: {describe(data.get(name) or {}, server.oauth.grant)}", file=out)
    return 0


def describe(record: dict[str, Any], grant: str) -> str:
    """One line of token state: never a token, a secret or a code."""
    tokens = record.get("tokens") or {}
    parts = _token_state(tokens) if tokens.get("access_token") else [_no_token_state(record, grant)]
    if tokens.get("scope") or record.get("scope"):
        parts.append(f"scope {tokens.get('scope') or record.get('scope')!r}")
    if record.get("issuer"):
        parts.append(f"issuer {record['issuer']}")
    return "; ".join(parts)


def _token_state(tokens: dict[str, Any]) -> list[str]:
    """Whether a held access token is still valid, and whether it can be refreshed."""
    expiry = tokens.get("expires_at")
    if expiry is None:
        validity = "logged in (no expiry)"
    elif expiry > time.time():
        validity = f"logged in, token valid for {int(expiry - time.time())}s"
    else:
        validity = "token expired"
    return [validity, "refreshable" if tokens.get("refresh_token") else "not refreshable"]


def _no_token_state(record: dict[str, Any], grant: str) -> str:
    if record.get("pending"):
        return "login started, not finished"
    return "not logged in" if grant == "authorization_code" else "no token yet (client credentials)"
