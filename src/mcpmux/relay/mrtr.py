"""MRTR crossing: a handshake upstream's server-to-client request during a 2026 call becomes `input_required`.

The upstream call keeps running in the task of the POST that started it; what it produces after the
client was told `input_required` (more requests for input, progress, the final response) waits here,
in a `Suspension`, for the client's retry, which answers the waiting requests and takes over.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Sequence
from functools import cache
from typing import Any

from ..config.model import RequestStateKey, TokenScope
from ..jsonrpc import INVALID_PARAMS, Message, error_response, result_response
from ..protocol.state import StateError, StateKey, StateSealer, request_binding
from ..protocol.translate import take_input_key
from .shares import share_refusal

MAX_SUSPENSIONS = 256  # per token and route (without a token: per client address); beyond, input is refused
SUSPENSION_SECONDS = 600.0  # a call waits this long for its client's retry, then is given up
MAX_EVENTS = 1000  # what a suspended call may produce before its retry takes it over


@cache
def _random_sealer() -> StateSealer:
    return StateSealer([StateKey("p1", secrets.token_bytes(32))], ttl_seconds=SUSPENSION_SECONDS)


_sealer: StateSealer | None = None  # cluster mode's (its key id names the replica)
_configured: StateSealer | None = None  # from `mcpProxy.requestStateKeys`


def process_sealer() -> StateSealer:
    """The sealer of this process. A suspended call lives only in this process, so by default a
    random key made at start is enough (its states are useless after a restart anyway);
    `mcpProxy.requestStateKeys` replaces it (`use_state_keys`: the first signs, every one verifies).
    Cluster mode sets one shared by every replica whose key id names this replica (`use_sealer`):
    a retry can be routed."""
    return _sealer or _configured or _random_sealer()


def use_sealer(sealer: StateSealer | None) -> None:
    global _sealer
    _sealer = sealer


def use_state_keys(keys: Sequence[RequestStateKey]) -> None:
    """Seal with the configured keys from now on (the random key again when there are none)."""
    global _configured
    state_keys = [StateKey(key.id, key.secret.encode("utf-8")) for key in keys]
    _configured = StateSealer(state_keys, ttl_seconds=SUSPENSION_SECONDS) if state_keys else None


def caller_of(scope: TokenScope | None) -> str | None:
    """Whom a requestState is bound to: the token's identity (a static token never passes for an
    OAuth principal spelled like it); None without a token."""
    return scope.identity if scope is not None else None


class Suspension:
    """One 2026 call waiting for its client's input."""

    __slots__ = (
        "asked",
        "binding",
        "busy",
        "call",
        "caller",
        "events",
        "expires_at",
        "handle",
        "keys",
        "round",
        "waiter",
    )

    def __init__(self, binding: str, caller: str = "") -> None:
        self.caller = caller  # whose place it takes (relay/shares.py)
        self.handle = secrets.token_hex(12)
        self.binding = binding
        self.round = 0
        self.asked: dict[str, Message] = {}  # the requests the client was last asked to answer, by our id
        self.keys: dict[str, str] = {}  # the key each was asked under (a 2026 upstream's own, else our id)
        self.busy = False  # a retry is being served
        self.call: Any = None  # cancels the task running the call (web/closing.py TaskCanceller)
        self.events: deque[Message] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.expires_at = time.monotonic() + SUSPENSION_SECONDS

    def put(self, msg: Message) -> None:
        """Something the call produced after the client was told `input_required`."""
        if len(self.events) >= MAX_EVENTS and "method" in msg and "id" not in msg:
            return  # a flood of notifications must not crowd out the response
        self.events.append(msg)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_event(self, timeout_seconds: float) -> Message | None:
        """The next message of the call (None if nothing came in time)."""
        while not self.events:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout_seconds):
                    await self.waiter
            except TimeoutError:
                return None
            finally:
                self.waiter = None
        return self.events.popleft()

    def input_required(self, scope: TokenScope | None) -> dict[str, Any]:
        """A new round: the `input_required` result asking for `asked`, with a fresh sealed state."""
        self.round += 1
        payload = {"h": self.handle, "r": self.round}
        state = process_sealer().seal(payload, caller=caller_of(scope), request=self.binding, now=time.time())
        requests: dict[str, Any] = {}
        self.keys = {}
        for rid, msg in self.asked.items():
            params, key = take_input_key(msg.get("params") or {})
            shown = key if key is not None and key not in requests and key not in self.asked else rid
            requests[shown] = {"method": msg["method"], "params": params}
            self.keys[shown] = rid
        return {"resultType": "input_required", "inputRequests": requests, "requestState": state}

    def take_answers(self, responses: Any) -> tuple[list[Message], bool]:
        """The answers in a retry's `inputResponses` to what was asked, as responses to send; and whether
        something asked is still unanswered (then it stays asked)."""
        answers = responses if isinstance(responses, dict) else {}
        resolved = []
        for shown, rid in list(self.keys.items()):
            answer = answers.get(shown)
            if isinstance(answer, dict) and rid in self.asked:
                resolved.append(result_response(rid, answer))
                del self.asked[rid], self.keys[shown]
        return resolved, bool(self.asked)

    def drain_requests(self) -> None:
        """Move requests for input already waiting in `events` (in order, up to the first other message)
        into `asked`, so one `input_required` carries all that came together."""
        while self.events and "id" in self.events[0] and "method" in self.events[0]:
            msg = self.events.popleft()
            self.asked[msg["id"]] = msg


class Suspensions:
    """The suspended calls of one carrier, bounded per caller (relay/shares.py)."""

    def __init__(self, anonymous: bool = False) -> None:
        self.calls: dict[str, Suspension] = {}
        self.anonymous = anonymous  # the carrier of clients without a token: counted per address

    def open(self, method: str, params: Any, caller: str = "") -> Suspension | None:
        now = time.monotonic()
        for handle in [h for h, s in self.calls.items() if s.expires_at < now]:
            del self.calls[handle]
        holders = (s.caller for s in self.calls.values())
        if share_refusal(holders, caller, MAX_SUSPENSIONS, self.anonymous, "suspended calls") is not None:
            return None
        suspension = Suspension(request_binding(method, params), caller)
        self.calls[suspension.handle] = suspension
        return suspension

    def close(self, suspension: Suspension) -> None:
        self.calls.pop(suspension.handle, None)

    def resume(self, msg: Message, scope: TokenScope | None) -> Suspension | Message:
        """The suspension a retry's requestState names (claimed for it), or the error to answer."""
        params = msg.get("params") or {}
        binding = request_binding(msg["method"], params)
        try:
            payload = process_sealer().open(
                params.get("requestState"), caller=caller_of(scope), request=binding, now=time.time()
            )
        except StateError as exc:
            return error_response(msg["id"], INVALID_PARAMS, f"Invalid requestState: {exc}")
        handle = payload.get("h") if isinstance(payload, dict) else None
        suspension = self.calls.get(handle) if isinstance(handle, str) else None
        if suspension is None or suspension.round != payload.get("r") or suspension.busy:
            return error_response(
                msg["id"], INVALID_PARAMS, "Invalid requestState: the call has ended or was already resumed"
            )
        suspension.busy = True
        return suspension
