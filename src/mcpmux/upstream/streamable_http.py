"""A streamable-HTTP upstream: POST per message, JSON or SSE replies, a GET stream for the rest."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import orjson
from anyio.abc import TaskGroup

from .. import tracing
from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import CONNECTION_CLOSED, INTERNAL_ERROR, Message, error_response, notification
from ..protocol.constants import PROTOCOL_VERSION_HEADER, SESSION_ID_HEADER
from .connection import Liveness, Receiver
from .origin import cross_origin_refusal, same_origin
from .sse_events import iter_events
from .tasks import released

log = logging.getLogger("mcpmux.upstream")

GET_STREAM_RETRIES = 3
GET_STREAM_BACKOFF_SECONDS = 0.5  # doubled after each drop of the standing stream
REINIT_REQUEST_ID = "mcpmux-reinitialize"


class CrossOriginRedirect(httpx2.HTTPError):
    """A redirect pointed to another origin: it is not followed (headers and body stay home)."""


def http_client(server: ServerConfig) -> httpx2.AsyncClient:
    """One client per upstream connection; the proxy's own downstream headers are never added here.

    Redirects are followed only within the server's own origin: every request (each hop of a
    redirect included) is checked before it is sent, so configured headers and bodies never leave it.
    """
    connect = server.options.connect_timeout_seconds
    home = server.url or ""

    async def same_origin_only(request: httpx2.Request) -> None:
        if not same_origin(home, str(request.url)):
            raise CrossOriginRedirect(cross_origin_refusal(home, str(request.url)))

    return httpx2.AsyncClient(
        auth=oauth_hook(server),
        headers=dict(server.headers),
        timeout=httpx2.Timeout(connect, read=None),
        follow_redirects=True,
        event_hooks={"request": [same_origin_only]},
        limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=30.0),
    )


def oauth_hook(server: ServerConfig) -> httpx2.Auth | None:
    """The server's `oauth` login as an httpx2 auth (its token on each request, renewed on 401/403)."""
    if server.oauth is None:
        return None
    from ..oauth.upstream import httpx_auth

    return httpx_auth(server)


class StreamableHttpConnection(Liveness):
    def __init__(
        self, server: ServerConfig, client: httpx2.AsyncClient, receiver: Receiver, tg: TaskGroup
    ) -> None:
        super().__init__()
        self.name = server.name
        self.url = server.url or ""
        self.client = client
        self.receiver = receiver
        self.tg = tg
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.on_recovered: Callable[[], None] | None = None  # told after a transparent re-initialize
        self._init_msg: Message | None = None
        self._reinit_lock = anyio.Lock()
        self._generation = 0  # bumped by each re-initialize; older GET streams then stop

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept, "content-type": "application/json"}
        if self.session_id:
            headers[SESSION_ID_HEADER] = self.session_id
        if self.protocol_version:
            headers[PROTOCOL_VERSION_HEADER] = self.protocol_version
        return headers

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed:
            raise UpstreamUnavailableError(self.name, self._reason)
        if "method" in msg and "id" in msg:
            if msg["method"] == "initialize":
                self._init_msg = msg
            # a request: its reply may stream for a long time, so read it in the background
            self.tg.start_soon(released, self._post_request, msg, related)
            return
        await self._post(msg, None)
        if msg.get("method") == "notifications/initialized":
            self.tg.start_soon(released, self._get_stream, self._generation)

    async def _post_request(self, msg: Message, related: Any) -> None:
        try:
            answered = await self._post(msg, related)
            if not answered:
                self.receiver(
                    error_response(
                        msg["id"],
                        CONNECTION_CLOSED,
                        f"{self.name}: the reply stream ended without a response",
                    ),
                    related,
                )
        except UpstreamUnavailableError as exc:
            self.receiver(error_response(msg["id"], CONNECTION_CLOSED, str(exc)), related)

    async def _post(self, msg: Message, related: Any) -> bool:
        """POST one message; deliver what comes back; return whether a response to it arrived.

        A 404 for our session means the upstream restarted and forgot it, before running anything:
        the session is re-initialized and the message sent once more, whatever it is.
        """
        for last_try in (False, True):
            sent_with = self.session_id
            answered = await self._post_once(msg, related)
            if answered is not None:
                return answered
            if last_try:
                break
            await self._reinitialize(sent_with)
        self.die("the upstream no longer knows our session (HTTP 404), even after re-initializing")
        raise UpstreamUnavailableError(self.name, "session expired upstream (HTTP 404)")

    async def _post_once(self, msg: Message, related: Any) -> bool | None:
        """Whether a response to `msg` arrived; None when the upstream answered 404 for our session."""
        body = orjson.dumps(msg)
        headers = self._headers("application/json, text/event-stream")
        if tracing.active:
            headers.update(tracing.http_headers(msg))
        try:
            async with self.client.stream("POST", self.url, content=body, headers=headers) as resp:
                if resp.status_code == 404 and self.session_id and msg.get("method") != "initialize":
                    return None
                return await self._read_reply(msg, resp, related)
        except httpx2.HTTPError as exc:
            raise UpstreamUnavailableError(self.name, f"cannot reach {self.url}: {describe(exc)}") from None

    async def _reinitialize(self, stale_session_id: str | None) -> None:
        """Handshake again with the original initialize params, once for all who saw the 404."""
        async with self._reinit_lock:
            if self.session_id != stale_session_id or self.closed:
                return  # another request already did it (or the connection is gone)
            try:
                if self._init_msg is None:
                    raise UpstreamUnavailableError(self.name, "no handshake to repeat")
                self.session_id = None
                await self._handshake_again(self._init_msg)
            except (UpstreamUnavailableError, httpx2.HTTPError, orjson.JSONDecodeError) as exc:
                reason = f"could not re-initialize the upstream session: {describe(exc)}"
                self.die(reason)
                raise UpstreamUnavailableError(self.name, reason) from None
            self._generation += 1
            log.info("%s: re-initialized the upstream session (HTTP 404: the upstream restarted)", self.name)
            self.tg.start_soon(released, self._get_stream, self._generation)
        if self.on_recovered is not None:
            self.on_recovered()

    async def _handshake_again(self, init_msg: Message) -> None:
        msg = {**init_msg, "id": REINIT_REQUEST_ID}
        answer: Message | None = None
        async with self.client.stream(
            "POST",
            self.url,
            content=orjson.dumps(msg),
            headers=self._headers("application/json, text/event-stream"),
        ) as resp:
            if resp.status_code != 200:
                raise UpstreamUnavailableError(self.name, f"HTTP {resp.status_code} to initialize")
            self.session_id = resp.headers.get(SESSION_ID_HEADER)
            if resp.headers.get("content-type", "").startswith("text/event-stream"):
                async for event in iter_events(resp.aiter_bytes()):
                    if event.event == "message" and event.data:
                        item = orjson.loads(event.data)
                        if isinstance(item, dict) and item.get("id") == REINIT_REQUEST_ID:
                            answer = item
                            break
            else:
                item = orjson.loads(await resp.aread())
                answer = item if isinstance(item, dict) else None
        result = (answer or {}).get("result")
        if not isinstance(result, dict):
            raise UpstreamUnavailableError(self.name, f"initialize was refused: {answer}")
        self.protocol_version = result.get("protocolVersion")
        await self._post_once(notification("notifications/initialized"), None)

    async def _read_reply(self, msg: Message, resp: httpx2.Response, related: Any) -> bool:
        if resp.status_code in (202, 204):
            return False
        if resp.status_code == 404 and self.session_id:
            self.die("the upstream no longer knows our session (HTTP 404)")
            raise UpstreamUnavailableError(self.name, "session expired upstream (HTTP 404)")
        ctype = resp.headers.get("content-type", "")
        if msg.get("method") == "initialize" and resp.status_code == 200:
            self.session_id = resp.headers.get(SESSION_ID_HEADER) or self.session_id
        if ctype.startswith("text/event-stream") and resp.status_code == 200:
            answered = False
            async for event in iter_events(resp.aiter_bytes()):
                if event.event == "message" and event.data:
                    answered = self._deliver(orjson.loads(event.data), msg, related) or answered
            return answered
        raw = await resp.aread()
        if resp.status_code >= 400 and not ctype.startswith("application/json"):
            text = raw[:200].decode("utf-8", "replace")
            raise UpstreamUnavailableError(self.name, f"HTTP {resp.status_code} from {self.url}: {text}")
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise UpstreamUnavailableError(
                self.name, f"invalid JSON from {self.url} (HTTP {resp.status_code})"
            ) from None
        if data is None:
            return False
        if isinstance(data, dict) and "jsonrpc" not in data and "id" in msg:
            data = error_response(msg["id"], INTERNAL_ERROR, f"HTTP {resp.status_code}: {data}")
        items = data if isinstance(data, list) else [data]
        return any([self._deliver(item, msg, related) for item in items if isinstance(item, dict)])

    def _deliver(self, item: Message, sent: Message, related: Any) -> bool:
        is_answer = "method" not in item and item.get("id") == sent.get("id")
        if is_answer and sent.get("method") == "initialize":
            result = item.get("result")
            if isinstance(result, dict):
                self.protocol_version = result.get("protocolVersion")
        if "method" not in item and "id" in item and item.get("id") is None and "id" in sent:
            item = {**item, "id": sent["id"]}  # an error the server could not attribute: it is ours
            is_answer = True
        self.receiver(item, related if related is not None else sent.get("id"))
        return is_answer

    async def _get_stream(self, generation: int) -> None:
        """The standalone stream for messages unrelated to a request; optional for servers (405)."""
        last_id: str | None = None
        for attempt in range(GET_STREAM_RETRIES):
            if generation != self._generation:
                return  # the session was re-initialized; its own GET stream took over
            headers = self._headers("text/event-stream")
            if last_id:
                headers["last-event-id"] = last_id
            try:
                async with self.client.stream("GET", self.url, headers=headers) as resp:
                    if resp.status_code != 200:
                        # 405 (or 404, as some servers say it): no standalone stream. Only a POST's
                        # 404 means the session is gone; re-initializing here would loop forever.
                        log.debug("%s: no standing GET stream (HTTP %s)", self.name, resp.status_code)
                        return
                    async for event in iter_events(resp.aiter_bytes()):
                        last_id = event.id or last_id
                        if event.event == "message" and event.data:
                            self.receiver(orjson.loads(event.data), None)
            except httpx2.HTTPError as exc:
                log.debug("%s: GET stream dropped: %s", self.name, describe(exc))
            except orjson.JSONDecodeError:
                log.warning("%s: invalid JSON on the GET stream", self.name)
            await anyio.sleep(GET_STREAM_BACKOFF_SECONDS * 2**attempt)

    async def terminate(self) -> None:
        if not self.session_id:
            return
        with anyio.move_on_after(2), anyio.CancelScope(shield=True):
            try:
                await self.client.delete(self.url, headers=self._headers("application/json"))
            except httpx2.HTTPError:
                pass


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def open_streamable_http_connection(
    server: ServerConfig, receiver: Receiver
) -> AsyncIterator[StreamableHttpConnection]:
    async with http_client(server) as client, anyio.create_task_group() as tg:
        conn = StreamableHttpConnection(server, client, receiver, tg)
        try:
            yield conn
        finally:
            await conn.terminate()
            tg.cancel_scope.cancel()
