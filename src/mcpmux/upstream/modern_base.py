"""What a 2026-07-28 upstream connection does whatever its transport (HTTP or stdio): look like a
handshake-era session to the `UpstreamSession` above it.

Its `initialize` is answered from `server/discover`, `ping` by a discover, `logging/setLevel` is kept for
each request's `_meta`, `resources/subscribe` becomes a `subscriptions/listen` stream held upstream, and an
`input_required` result becomes real server-to-client requests (delivered like any the upstream sends),
whose answers go back in the retry with `inputResponses` and the `requestState`. A transport supplies
`_exchange` (one request, its answer) and `_listen` / `_unlisten` (one listen stream).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import anyio

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
from ..protocol.cache import NO_CACHE, carry_hint, read_hint
from ..protocol.constants import (
    CACHEABLE_METHODS,
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
)
from ..protocol.translate import (
    forwarded_capabilities,
    handshake_response,
    initialize_from_discover,
    with_envelope,
    with_input_key,
)
from .connection import Receiver
from .tasks import released

# longest initialize or resources/subscribe waits for the upstream to acknowledge a listen stream
ACK_WAIT_SECONDS = 10.0
MAX_LISTENED_URIS = 16  # resource subscriptions held upstream (each is a listen stream)
LIST_CHANGED_FLAGS = (
    ("tools", "toolsListChanged"),
    ("prompts", "promptsListChanged"),
    ("resources", "resourcesListChanged"),
)
MAX_INPUT_ROUNDS = 10  # input_required rounds of one request before it fails
INPUT_TIMEOUT_SECONDS = 300.0  # how long the client may take to answer what the upstream asks
wire_ids = itertools.count(1)  # the ids of mcpmux's own requests (retries, listens, asks)


class ModernTranslation:
    """The era translation of one 2026-07-28 upstream; subclasses carry the messages."""

    name: str
    receiver: Receiver
    tg: Any  # a task group for the requests in flight

    def __init__(self) -> None:
        self.capabilities: dict[str, Any] = {}  # the client capabilities of the handshake, per request
        self.client_info: dict[str, Any] = {"name": "mcpmux", "version": "0"}
        self.log_level: Any = None
        self.calls: dict[Any, anyio.CancelScope] = {}  # upstream request id -> its exchange's scope
        self.asks: dict[str, asyncio.Future[Message]] = {}  # our pushed requests for input -> answer
        self.subscribable = False  # the upstream declared resources.subscribe
        self.listens: dict[str | None, Any] = {}  # None: list_changed; else the URI's stream
        # The session's lookup of the client capabilities of the request it sent under an id (None: one
        # of mcpmux's own), set by the session's owner: such a request carries them, not the handshake's.
        self.caller_capabilities: Callable[[Any], dict[str, Any] | None] = lambda request_id: None
        self.callers: dict[Any, dict[str, Any]] = {}  # request id -> the capabilities it carries
        # The session's lookup of whether the request under an id is a 2026 client's (set like the above):
        # only such a request's result carries the upstream's cache hints (`hinted`: their ids).
        self.caller_caches: Callable[[Any], bool] = lambda request_id: False
        self.hinted: set[Any] = set()

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def closed_reason(self) -> str:
        return "connection closed"

    def unavailable(self, text: str) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(self.name, text)

    async def _exchange(self, msg: Message, related: Any) -> Message:
        """Send one request with the 2026 envelope; deliver what comes before its answer; the answer."""
        raise NotImplementedError

    def enveloped(self, msg: Message, related: Any, log_level: Any = None) -> Message:
        """`msg` with the 2026 envelope: the capabilities of the client whose request `related` is (the
        handshake's for mcpmux's own requests), mcpmux's client info."""
        caps = self.callers.get(related, self.capabilities)
        return with_envelope(msg, caps, self.client_info, log_level)

    def _listen(self, key: str | None, wanted: dict[str, Any]) -> anyio.Event:
        """Hold a `subscriptions/listen` stream for `wanted` upstream, as `self.listens[key]`; the event
        is set once the upstream acknowledged it (or the stream ended before)."""
        raise NotImplementedError

    def _unlisten(self, key: str) -> None:
        """Stop the listen stream held as `self.listens[key]` and forget it."""
        raise NotImplementedError

    def _learn(self, method: str, result: dict[str, Any]) -> None:
        """Look at a complete result (the HTTP transport learns `x-mcp-header` arguments from tools/list)."""

    async def send(self, msg: Message, related: Any = None) -> None:
        if self.closed:
            raise self.unavailable(self.closed_reason())
        if "method" not in msg:  # a client's answer to a request for input
            future = self.asks.pop(msg.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(msg)
        elif "id" in msg:
            self._note_caller(msg)
            self.tg.start_soon(released, self._request, msg)
        elif msg["method"] == CANCELLED:  # stops the exchange (the transport tells the upstream)
            scope = self.calls.get((msg.get("params") or {}).get("requestId"))
            if scope is not None:
                scope.cancel()
        # other notifications (initialized, roots/list_changed, ...) have no 2026-07-28 meaning

    def serve_callers(self, session: Any) -> None:
        """Ask `session` (the `UpstreamSession` above) about the client of each request it sends."""
        self.caller_capabilities = session.client_capabilities
        self.caller_caches = session.client_caches

    def _note_caller(self, msg: Message) -> None:
        """What the request carries for its client: its capabilities; whether its result keeps hints."""
        caps = self.caller_capabilities(msg["id"])
        if caps is not None:
            self.callers[msg["id"]] = forwarded_capabilities(caps)
        if msg["method"] in CACHEABLE_METHODS and self.caller_caches(msg["id"]):
            self.hinted.add(msg["id"])

    async def _request(self, msg: Message) -> None:
        with anyio.CancelScope() as scope:
            self.calls[msg["id"]] = scope
            try:
                response = await self._answer(msg)
            except UpstreamUnavailableError as exc:
                response = error_response(msg["id"], CONNECTION_CLOSED, str(exc))
            finally:
                self.calls.pop(msg["id"], None)
                self.callers.pop(msg["id"], None)
                self.hinted.discard(msg["id"])
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
            return await self._subscription(msg)
        return await self._call(msg)

    async def _subscription(self, msg: Message) -> Message:
        """resources/subscribe and unsubscribe: a `subscriptions/listen` stream per URI, held upstream.

        A subscription is answered once the upstream acknowledged its stream (at most ACK_WAIT_SECONDS),
        so that an update right after the answer is not lost."""
        uri = (msg.get("params") or {}).get("uri")
        if not self.subscribable or not isinstance(uri, str):
            why = f"{self.name} does not offer resource subscriptions"
            return error_response(msg["id"], METHOD_NOT_FOUND, why)
        if msg["method"] == RESOURCES_UNSUBSCRIBE:
            if uri in self.listens:
                self._unlisten(uri)
        elif uri not in self.listens:
            if len(self.listens) > MAX_LISTENED_URIS:
                why = f"at most {MAX_LISTENED_URIS} resource subscriptions"
                return error_response(msg["id"], INTERNAL_ERROR, why)
            acknowledged = self._listen(uri, {"resourceSubscriptions": [uri]})
            with anyio.move_on_after(ACK_WAIT_SECONDS):
                await acknowledged.wait()
        return result_response(msg["id"], {})

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
        # its discover's own cache hint, for what mcpmux answers a 2026 client's discover with (none valid:
        # not cacheable); the routes take it off before an initialize result leaves (relay/)
        carry_hint(init, read_hint(result.get("ttlMs"), result.get("cacheScope")) or NO_CACHE)
        acknowledged = self._listen_for_changes(init["capabilities"])
        if acknowledged is not None:  # a list change right after the handshake must not be lost
            with anyio.move_on_after(ACK_WAIT_SECONDS):
                await acknowledged.wait()
        return result_response(msg["id"], init)

    def _listen_for_changes(self, caps: dict[str, Any]) -> anyio.Event | None:
        """Hold a listen stream for the list_changed kinds the upstream offers (once per connection); the
        event of its acknowledgement when it is new."""
        wanted = {
            flag: True
            for kind, flag in LIST_CHANGED_FLAGS
            if isinstance(caps.get(kind), dict) and caps[kind].get("listChanged")
        }
        resources = caps.get("resources")
        self.subscribable = isinstance(resources, dict) and bool(resources.get("subscribe"))
        if wanted and None not in self.listens:
            return self._listen(None, wanted)
        return None

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
                if isinstance(result, dict):
                    self._learn(msg["method"], result)
                keep_hint = sent is msg and msg["id"] in self.hinted  # a 2026 client's, not a retry
                return handshake_response({**answer, "id": msg["id"]}, keep_hint=keep_hint)
            responses = await self._ask_client(result.get("inputRequests"), msg["id"])
            if "error" in responses:
                return {**responses, "id": msg["id"]}
            params = {**(msg.get("params") or {}), "inputResponses": responses}
            if "requestState" in result:
                params["requestState"] = result["requestState"]
            sent = {**msg, "id": f"mcpmux-retry-{next(wire_ids)}", "params": params}
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
            rid = f"mcpmux-input-{next(wire_ids)}"
            asked[key] = self.asks[rid] = loop.create_future()
            params = with_input_key(wanted.get("params") or {}, key)  # a 2026 client is asked under `key`
            self.receiver(request(rid, wanted["method"], params), related)
        return asked


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
