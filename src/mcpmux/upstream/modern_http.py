"""A streamable-HTTP upstream spoken to in the 2026-07-28 era (`options.protocol`): stateless POSTs.

To the `UpstreamSession` above it looks like any handshake-era connection: its `initialize` is answered
from `server/discover`, `ping` by a discover, `logging/setLevel` is kept for each request's `_meta`, and an
`input_required` result becomes real server-to-client requests (delivered like any the upstream sends),
whose answers go back in the retry with `inputResponses` and the `requestState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from ..config.model import ServerConfig
from ..errors import UpstreamUnavailableError
from ..jsonrpc import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    Message,
    error_response,
    request,
    result_response,
)
from ..protocol.constants import (
    CANCELLED,
    INITIALIZE,
    LOGGING_SET_LEVEL,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    MODERN_VERSION,
    PING,
    RESOURCES_SUBSCRIBE,
    RESOURCES_UNSUBSCRIBE,
    SERVER_DISCOVER,
    SERVER_REQUEST_CAPABILITY,
    SUBSCRIPTIONS_ACKNOWLEDGED,
    SUBSCRIPTIONS_LISTEN,
    TOOLS_LIST,
)
from ..protocol.translate import (
    handshake_response,
    initialize_from_discover,
    with_envelope,
    without_subscription_id,
)
from .connection import Connection, EraMemory, Receiver
from .http_client import HttpError
from .http_post import HttpTransport, Posted, event_message, http_pool
from .modern_headers import learn_param_headers, request_headers
from .origin import shown_origin
from .sse_events import SseParser
from .streamable_http import open_streamable_http_connection
from .tasks import released

log = logging.getLogger("mcpmux.upstream")

MAX_LISTENED_URIS = 16  # resource subscriptions held upstream (each is a listen stream, a connection)
LISTEN_RETRY_SECONDS = (1.0, 30.0)  # first and longest wait before reopening a dropped listen stream
LIST_CHANGED_FLAGS = (
    ("tools", "toolsListChanged"),
    ("prompts", "promptsListChanged"),
    ("resources", "resourcesListChanged"),
)
MAX_INPUT_ROUNDS = 10  # input_required rounds of one request before it fails
INPUT_TIMEOUT_SECONDS = 300.0  # how long the client may take to answer what the upstream asks
_retry_ids = itertools.count(1)


class ModernReply(Posted):
    """One POST's reply, fed by the HTTP client's callbacks: the answer, and what comes before it."""

    __slots__ = ("answer", "conn", "events", "msg", "related")

    def __init__(
        self, conn: ModernHttpConnection, msg: Message, related: Any, done: asyncio.Future[None]
    ) -> None:
        super().__init__(done)
        self.conn, self.msg, self.related = conn, msg, related
        self.events: SseParser | None = None
        self.answer: Message | None = None

    def on_head(self, status: int, headers: dict[bytes, bytes]) -> None:
        super().on_head(status, headers)
        if status == 200 and headers.get(b"content-type", b"").startswith(b"text/event-stream"):
            self.events = SseParser()

    def on_data(self, data: bytes) -> None:
        events = self.events
        if events is None:
            return super().on_data(data)  # a JSON reply: read whole at the end
        name = self.conn.name
        for item in [event_message(name, event, "reply stream") for event in events.feed(data)]:
            if item is not None:
                self._take(item)
        return None

    def _take(self, item: Message) -> None:
        if "method" not in item and item.get("id") == self.msg["id"]:
            self.answer = item
        else:
            self.conn.receiver(item, self.related)  # progress, logs the request opted in to

    def json_answer(self, origin: str) -> Message | None:
        """The answer of a plain JSON reply (or an error naming the status)."""
        ctype = self.headers.get(b"content-type", b"")
        body = self.body()
        if not ctype.startswith(b"application/json"):
            why = f"HTTP {self.status} from {origin}: {body[:200].decode('utf-8', 'replace')}"
            return error_response(self.msg["id"], INTERNAL_ERROR, why)
        item = orjson.loads(body) if body else None
        return item if isinstance(item, dict) and "method" not in item else None


class ListenReply(ModernReply):
    """A `subscriptions/listen` stream held upstream: its notifications go to the session as the
    upstream's own (unrelated to any request), without the subscription id."""

    __slots__ = ("stopped",)

    def __init__(self, conn: ModernHttpConnection, msg: Message, done: asyncio.Future[None]) -> None:
        super().__init__(conn, msg, None, done)
        self.stopped = False

    def _take(self, item: Message) -> None:
        if self.stopped:  # not wanted any more: the client closes the connection (no other way to abort)
            raise HttpError("a subscriptions/listen stream no longer wanted")
        method = item.get("method")
        if method is None:
            self.answer = item  # the server ended the stream
        elif method != SUBSCRIPTIONS_ACKNOWLEDGED and "id" not in item:
            self.conn.receiver(without_subscription_id(item), None)


class ModernHttpConnection(HttpTransport):
    """One 2026-07-28 streamable-HTTP upstream, presented as a handshake-era session."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.origin = shown_origin(self.url)
        self.capabilities: dict[str, Any] = {}  # the client capabilities of the handshake, per request
        self.client_info: dict[str, Any] = {"name": "mcpmux", "version": "0"}
        self.log_level: Any = None
        self.calls: dict[Any, anyio.CancelScope] = {}  # upstream request id -> its POSTs' scope
        self.asks: dict[str, asyncio.Future[Message]] = {}  # our pushed requests for input -> answer
        self.subscribable = False  # the upstream declared resources.subscribe
        self.listens: dict[str | None, list[ListenReply]] = {}  # None: list_changed; else the URI's stream

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed:
            raise self.unavailable(self._reason)
        if "method" not in msg:  # a client's answer to a request for input
            future = self.asks.pop(msg.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(msg)
        elif "id" in msg:
            self.tg.start_soon(released, self._request, msg)
        elif msg["method"] == CANCELLED:  # 2026-07-28 cancels by closing the request's stream
            scope = self.calls.get((msg.get("params") or {}).get("requestId"))
            if scope is not None:
                scope.cancel()
        # other notifications (initialized, roots/list_changed, ...) have no 2026-07-28 meaning

    async def _request(self, msg: Message) -> None:
        with anyio.CancelScope() as scope:
            self.calls[msg["id"]] = scope
            try:
                response = await self._answer(msg)
            except UpstreamUnavailableError as exc:
                response = error_response(msg["id"], CONNECTION_CLOSED, str(exc))
            finally:
                self.calls.pop(msg["id"], None)
            self.receiver(response, msg["id"])

    async def _answer(self, msg: Message) -> Message:
        method = msg["method"]
        if method == INITIALIZE:
            return await self._initialize(msg)
        if method == PING:  # no ping in 2026-07-28: a discover shows the server answers
            answer = await self.discover(msg["id"])
            return answer if "error" in answer else result_response(msg["id"], {})
        if method == LOGGING_SET_LEVEL:
            self.log_level = (msg.get("params") or {}).get("level")
            return result_response(msg["id"], {})
        if method in (RESOURCES_SUBSCRIBE, RESOURCES_UNSUBSCRIBE):
            return self._subscription(msg)
        return await self._call(msg)

    def _subscription(self, msg: Message) -> Message:
        """resources/subscribe and unsubscribe: a `subscriptions/listen` stream per URI, held upstream."""
        uri = (msg.get("params") or {}).get("uri")
        if not self.subscribable or not isinstance(uri, str):
            why = f"{self.name} does not offer resource subscriptions"
            return error_response(msg["id"], METHOD_NOT_FOUND, why)
        if msg["method"] == RESOURCES_UNSUBSCRIBE:
            for reply in self.listens.pop(uri, []):
                reply.stopped = True
        elif uri not in self.listens:
            if len(self.listens) > MAX_LISTENED_URIS:
                why = f"at most {MAX_LISTENED_URIS} resource subscriptions"
                return error_response(msg["id"], INTERNAL_ERROR, why)
            self._listen(uri, {"resourceSubscriptions": [uri]})
        return result_response(msg["id"], {})

    def _listen(self, key: str | None, wanted: dict[str, Any]) -> None:
        held: list[ListenReply] = []
        self.listens[key] = held
        self.tg.start_soon(released, self._hold_listen, wanted, held)

    async def _hold_listen(self, wanted: dict[str, Any], held: list[ListenReply]) -> None:
        """Keep one listen stream open upstream (reopened after a drop, with backoff) until it is stopped."""
        delay = LISTEN_RETRY_SECONDS[0]
        while not self.closed:
            rid = f"mcpmux-listen-{next(_retry_ids)}"
            msg = request(rid, SUBSCRIPTIONS_LISTEN, {"notifications": wanted})
            done = asyncio.get_running_loop().create_future()
            reply = ListenReply(self, msg, done)
            held[:] = [reply]
            enveloped = with_envelope(msg, self.capabilities, self.client_info, None)
            await self.post(self.url, request_headers((self.name, self.url), msg) or b"", enveloped, reply)
            with contextlib.suppress(HttpError):
                await done
            if reply.stopped:
                return
            await anyio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_SECONDS[1])

    async def _initialize(self, msg: Message) -> Message:
        """The handshake, answered from `server/discover`; its capabilities go into every request."""
        params = msg.get("params") or {}
        caps, info = params.get("capabilities"), params.get("clientInfo")
        self.capabilities = caps if isinstance(caps, dict) else {}
        self.client_info = info if isinstance(info, dict) else self.client_info
        answer = await self.discover(msg["id"])
        result = answer.get("result")
        if not isinstance(result, dict):
            return answer
        versions = result.get("supportedVersions")
        if not isinstance(versions, list) or MODERN_VERSION not in versions:
            why = f"the upstream does not serve {MODERN_VERSION} (it lists {versions!r}): protocol legacy"
            return error_response(msg["id"], INTERNAL_ERROR, why)
        fallback = {"name": self.name, "version": ""}
        init = initialize_from_discover(result, params.get("protocolVersion"), fallback)
        self._listen_for_changes(init["capabilities"])
        return result_response(msg["id"], init)

    def _listen_for_changes(self, caps: dict[str, Any]) -> None:
        """Hold a listen stream for the list_changed kinds the upstream offers (once per connection)."""
        wanted = {
            flag: True
            for kind, flag in LIST_CHANGED_FLAGS
            if isinstance(caps.get(kind), dict) and caps[kind].get("listChanged")
        }
        resources = caps.get("resources")
        self.subscribable = isinstance(resources, dict) and bool(resources.get("subscribe"))
        if wanted and None not in self.listens:
            self._listen(None, wanted)

    async def discover(self, request_id: Any) -> Message:
        """The upstream's answer to `server/discover`."""
        return await self._exchange(request(request_id, SERVER_DISCOVER, {}), request_id)

    async def _call(self, msg: Message) -> Message:
        """A request, retried with the client's answers while the upstream says `input_required`."""
        sent = msg
        for _ in range(MAX_INPUT_ROUNDS):
            answer = await self._exchange(sent, msg["id"])
            result = answer.get("result")
            if not isinstance(result, dict) or result.get("resultType") != "input_required":
                if msg["method"] == TOOLS_LIST and isinstance(result, dict):
                    learn_param_headers((self.name, self.url), result.get("tools"))
                return handshake_response({**answer, "id": msg["id"]})
            responses = await self._ask_client(result.get("inputRequests"), msg["id"])
            if "error" in responses:
                return {**responses, "id": msg["id"]}
            params = {**(msg.get("params") or {}), "inputResponses": responses}
            if "requestState" in result:
                params["requestState"] = result["requestState"]
            sent = {**msg, "id": f"mcpmux-retry-{next(_retry_ids)}", "params": params}
        why = f"more than {MAX_INPUT_ROUNDS} rounds of input_required"
        return error_response(msg["id"], INTERNAL_ERROR, why)

    async def _ask_client(self, input_requests: Any, related: Any) -> dict[str, Any]:
        """Ask the client each request for input (as the upstream's own requests); their results by key,
        or a JSON-RPC error message when one cannot be answered."""
        asked = self._push(input_requests, related)
        if "error" in asked:
            return asked
        answers = await self._answers(asked)
        if answers is None:
            return error_response(None, INTERNAL_ERROR, "the client did not answer the upstream's questions")
        refused = [key for key, answer in answers.items() if not isinstance(answer.get("result"), dict)]
        if refused:
            return refusal(input_requests[refused[0]]["method"], answers[refused[0]].get("error"))
        return {key: answer["result"] for key, answer in answers.items()}

    async def _answers(self, asked: dict[str, Any]) -> dict[str, Message] | None:
        """The client's answers by key (None when they did not all come in time)."""
        try:
            with anyio.fail_after(INPUT_TIMEOUT_SECONDS):
                return {key: await future for key, future in asked.items()}
        except TimeoutError:
            return None
        finally:
            for rid in [r for r, f in self.asks.items() if f in asked.values()]:
                del self.asks[rid]

    def _push(self, input_requests: Any, related: Any) -> dict[str, Any]:
        """Deliver each input request as a server-to-client request; the futures of their answers by key."""
        if not isinstance(input_requests, dict) or not input_requests:
            return error_response(None, INTERNAL_ERROR, f"{self.name}: input_required without inputRequests")
        if not all(isinstance(w, dict) and isinstance(w.get("method"), str) for w in input_requests.values()):
            return error_response(None, INTERNAL_ERROR, f"{self.name}: a malformed inputRequest")
        loop = asyncio.get_running_loop()
        asked: dict[str, Any] = {}
        for key, wanted in input_requests.items():
            rid = f"mcpmux-input-{next(_retry_ids)}"
            asked[key] = self.asks[rid] = loop.create_future()
            self.receiver(request(rid, wanted["method"], wanted.get("params") or {}), related)
        return asked

    async def _exchange(self, msg: Message, related: Any) -> Message:
        """POST one request with the 2026 envelope and headers; deliver what comes before its answer."""
        headers = request_headers((self.name, self.url), msg)
        if headers is None:
            return error_response(msg["id"], INTERNAL_ERROR, "a method name that cannot travel in a header")
        done = asyncio.get_running_loop().create_future()
        reply = ModernReply(self, msg, related, done)
        enveloped = with_envelope(msg, self.capabilities, self.client_info, self.log_level)
        await self.post(self.url, headers, enveloped, reply)
        try:
            await done
            answer = reply.answer if reply.events is not None else reply.json_answer(self.origin)
        except HttpError as exc:
            raise self.unavailable(f"cannot reach {self.origin}: {exc}") from None
        except orjson.JSONDecodeError:
            raise self.unavailable(f"invalid JSON from {self.origin}") from None
        return answer or error_response(msg["id"], CONNECTION_CLOSED, f"{self.name}: no answer in the reply")


@asynccontextmanager
async def open_modern_http_connection(
    server: ServerConfig, receiver: Receiver
) -> AsyncIterator[ModernHttpConnection]:
    async with http_pool(server) as (pool, tg):
        yield ModernHttpConnection(server, pool, receiver, tg)


def refusal(method: str, error: Any) -> Message:
    """The call's error when the client refused what the upstream asked: a capability it did not declare
    is -32021 naming it (what a 2026-07-28 server answers itself), anything else -32603."""
    capability = SERVER_REQUEST_CAPABILITY.get(method)
    code = error.get("code") if isinstance(error, dict) else None
    if capability is not None and code == METHOD_NOT_FOUND:
        data: dict[str, Any] = {"requiredCapabilities": {capability: {}}}
        why = f"the client cannot answer {method}"
        return error_response(None, MISSING_REQUIRED_CLIENT_CAPABILITY, why, data)
    return error_response(None, INTERNAL_ERROR, f"the client could not answer {method}: {error}")


@asynccontextmanager
async def open_auto_http_connection(
    server: ServerConfig, receiver: Receiver, era: EraMemory
) -> AsyncIterator[Connection]:
    """`protocol: auto`: a `server/discover` probe decides; 2026-07-28 if the upstream lists it, else the
    handshake era (as the spec's backward-compatibility rules say). Probed once per runtime (`era`)."""
    if era.modern is None:
        era.modern = await probe(server)
        log.info(
            "%s: the upstream speaks %s", server.name, MODERN_VERSION if era.modern else "the handshake era"
        )
    if era.modern:
        async with open_modern_http_connection(server, receiver) as conn:
            yield conn
    else:
        async with open_streamable_http_connection(server, receiver) as legacy:
            yield legacy


async def probe(server: ServerConfig) -> bool:
    """Whether the upstream answers `server/discover` listing 2026-07-28 (unreachable: the error)."""
    async with open_modern_http_connection(server, lambda msg, related: None) as conn:
        with anyio.fail_after(server.options.connect_timeout_seconds):
            result = (await conn.discover("mcpmux-probe")).get("result")
    versions = result.get("supportedVersions") if isinstance(result, dict) else None
    return isinstance(versions, list) and MODERN_VERSION in versions
