"""OAuth on the upstream HTTP client: the bearer token on every request, one retry after a 401/403."""

from __future__ import annotations

from typing import Any

import httpx2

from ..config.model import ServerConfig
from .http_client import HttpError, HttpPool, Request, ResponseHandler, Spawn

MAX_REJECTION_BODY_BYTES = 64 * 1024


def authorizer_for(server: ServerConfig, pool: HttpPool, spawn: Spawn) -> Authorizer | None:
    """The server's `oauth` login (made by its runtime) as a request hook; None without `oauth`."""
    if server.oauth is None:
        return None
    from ..oauth.upstream import auth_for

    auth = auth_for(server)
    return Authorizer(auth, pool, spawn) if auth is not None else None


class Authorizer:
    """`request` as the pool's, with `authorization` added; a rejection renews the token once."""

    def __init__(self, auth: Any, pool: HttpPool, spawn: Spawn) -> None:
        self.auth, self.pool, self.spawn = auth, pool, spawn

    async def header(self) -> bytes:
        try:
            value: str = await self.auth.authorization()
        except Exception as exc:  # LoginRequired, FlowError: a person must log in, or the issuer failed
            raise HttpError(str(exc) or type(exc).__name__) from None
        return value.encode("latin-1")

    async def request(
        self, method: bytes, url: str, extra: bytes, body: bytes, handler: ResponseHandler
    ) -> Request:
        header = await self.header()
        watched = Challenged(self, handler, (method, url, extra, body), header)
        return await self.pool.request(
            method, url, extra + b"authorization: " + header + b"\r\n", body, watched
        )

    async def retry(self, challenged: Challenged) -> None:
        """After a 401/403: ask the login whether a new token helps; send once more, or pass it on."""
        inner = challenged.inner
        status, headers = challenged.rejected or (0, {})
        response = httpx2.Response(
            status, headers=[(k.decode(), v.decode("latin-1")) for k, v in headers.items()]
        )
        try:
            again = await self.auth.rejected(response, challenged.sent.decode("latin-1"))
            if again:
                method, url, extra, body = challenged.request
                header = await self.header()
                await self.pool.request(
                    method, url, extra + b"authorization: " + header + b"\r\n", body, inner
                )
                return
        except HttpError as exc:
            inner.on_error(exc)
            return
        except Exception as exc:
            inner.on_error(HttpError(str(exc) or type(exc).__name__))
            return
        inner.on_head(status, headers)
        inner.on_data(b"".join(challenged.body))
        inner.on_end()


class Challenged:
    """Passes a response through, except a 401/403, which is held for `Authorizer.retry`."""

    __slots__ = ("authorizer", "body", "inner", "rejected", "request", "sent")

    def __init__(
        self,
        authorizer: Authorizer,
        inner: ResponseHandler,
        request: tuple[bytes, str, bytes, bytes],
        sent: bytes,
    ) -> None:
        self.authorizer, self.inner, self.request, self.sent = authorizer, inner, request, sent
        self.rejected: tuple[int, dict[bytes, bytes]] | None = None
        self.body: list[bytes] = []

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        if status in (401, 403):
            self.rejected = (status, headers)
        else:
            self.inner.on_head(status, headers)

    def on_data(self, data: bytes) -> None:
        if self.rejected is None:
            self.inner.on_data(data)
        elif sum(map(len, self.body)) < MAX_REJECTION_BODY_BYTES:
            self.body.append(data)

    def on_end(self) -> None:
        if self.rejected is None:
            self.inner.on_end()
        else:
            self.authorizer.spawn(self.authorizer.retry, self)

    def on_error(self, exc: HttpError) -> None:
        self.inner.on_error(exc)
