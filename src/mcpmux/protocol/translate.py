"""Translation between the eras: discover <-> initialize results, the 2026 result envelope, `_meta`."""

from __future__ import annotations

from typing import Any

from ..jsonrpc import INVALID_PARAMS, Message
from .cache import carry_hint, for_client, read_hint, take_hint
from .constants import (
    CACHEABLE_METHODS,
    CLIENT_CAPABILITIES_META,
    CLIENT_INFO_META,
    ENVELOPE_META_KEYS,
    HANDSHAKE_VERSIONS,
    INPUT_KEY_META,
    LATEST_HANDSHAKE_VERSION,
    LOG_LEVEL_META,
    MODERN_VERSION,
    MODERN_VERSIONS,
    PROTOCOL_VERSION_META,
    RESOURCE_NOT_FOUND,
    SERVER_INFO_META,
    SUBSCRIPTION_ID_META,
    SUBSCRIPTIONS_ACKNOWLEDGED,
)

# Cache hints the proxy gives when an upstream gave none: results may differ per token (scopes,
# filters), so they are private to the caller and not to be reused without asking again.
DEFAULT_TTL_MS = 0
DEFAULT_CACHE_SCOPE = "private"
_MODERN_RESULT_FIELDS = ("resultType", "ttlMs", "cacheScope")
# Capabilities that exist only in the handshake era (2025-11-25's experimental tasks).
_HANDSHAKE_ONLY_CAPABILITIES = ("tasks",)
# Flags a 2026 server may only declare when it serves `subscriptions/listen`.
_LISTEN_FLAGS = ("listChanged", "subscribe")


def modern_capabilities(caps: dict[str, Any], *, listen: bool) -> dict[str, Any]:
    """A handshake-era server's capabilities as a 2026-07-28 server declares them.

    Without `listen` (no `subscriptions/listen` served), `listChanged` and `subscribe` are dropped:
    a 2026 client could not receive what they promise.
    """
    out: dict[str, Any] = {}
    for name, value in caps.items():
        if name in _HANDSHAKE_ONLY_CAPABILITIES:
            continue
        if not listen and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _LISTEN_FLAGS}
        out[name] = value
    return out


def discover_from_initialize(
    init: dict[str, Any],
    *,
    listen: bool = False,
    ttl_ms: int = DEFAULT_TTL_MS,
    cache_scope: str = DEFAULT_CACHE_SCOPE,
) -> dict[str, Any]:
    """The `server/discover` result for a server known by its `initialize` result."""
    caps = init.get("capabilities")
    result: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": modern_capabilities(caps if isinstance(caps, dict) else {}, listen=listen),
        "ttlMs": ttl_ms,
        "cacheScope": cache_scope,
    }
    if isinstance(init.get("instructions"), str):
        result["instructions"] = init["instructions"]
    if isinstance(init.get("serverInfo"), dict):
        result["_meta"] = {SERVER_INFO_META: init["serverInfo"]}
    return result


def initialize_from_discover(
    discover: dict[str, Any], requested: Any, fallback_info: dict[str, Any]
) -> dict[str, Any]:
    """The `initialize` result for a 2026-07-28 server known by its `server/discover` result.

    The version is the client's if it is a handshake version, else the newest one; server identity
    comes from the discover result's `_meta` serverInfo stamp, or `fallback_info`.
    """
    meta = discover.get("_meta")
    info = meta.get(SERVER_INFO_META) if isinstance(meta, dict) else None
    caps = discover.get("capabilities")
    result: dict[str, Any] = {
        "protocolVersion": requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION,
        "capabilities": dict(caps) if isinstance(caps, dict) else {},
        "serverInfo": info if isinstance(info, dict) else fallback_info,
    }
    if isinstance(discover.get("instructions"), str):
        result["instructions"] = discover["instructions"]
    return result


def complete_result(method: str, result: dict[str, Any], shareable: bool = False) -> dict[str, Any]:
    """A handshake-era result in the 2026 envelope: `resultType`, and cache hints where required: the
    upstream's as far as they are safe (protocol/cache.py), else `0`/`private`.

    Changes `result` in place (it is the proxy's own copy) and returns it.
    """
    if "resultType" not in result:
        result["resultType"] = "complete"
    if method in CACHEABLE_METHODS and result["resultType"] == "complete":
        result["ttlMs"], result["cacheScope"] = for_client(take_hint(result), shareable)
    return result


def modern_response(method: str, response: Message, shareable: bool = False) -> Message:
    """A response from the handshake side made right for a 2026-07-28 client (in place).

    Results get the 2026 envelope (cache hints `public` only when `shareable`: the same for every client
    of the route); resource-not-found (-32002) becomes -32602 as 2026 says.
    """
    result = response.get("result")
    if type(result) is dict:
        complete_result(method, result, shareable)
        return response
    error = response.get("error")
    if type(error) is dict and error.get("code") == RESOURCE_NOT_FOUND:
        response["error"] = {**error, "code": INVALID_PARAMS}
    return response


def handshake_response(response: Message, keep_hint: bool = True) -> Message:
    """A 2026-07-28 upstream's response for the handshake-era side: without `resultType`, `ttlMs` and
    `cacheScope` (a new message when something is removed). With `keep_hint` (not after a multi
    round-trip retry, whose result must not be cached), valid cache hints of a complete result travel on
    in `_meta` (protocol/cache.py) for 2026 clients."""
    result = response.get("result")
    if type(result) is not dict or not any(key in result for key in _MODERN_RESULT_FIELDS):
        return response
    kept = {k: v for k, v in result.items() if k not in _MODERN_RESULT_FIELDS}
    hint = read_hint(result.get("ttlMs"), result.get("cacheScope"))
    if keep_hint and hint is not None and result.get("resultType", "complete") == "complete":
        carry_hint(kept, hint)
    return {**response, "result": kept}


# What a client may declare that mcpmux can carry to it from a 2026-07-28 upstream's `input_required`
# (as server-to-client requests, or back as `input_required`): only these reach such an upstream.
TRANSLATABLE_CLIENT_CAPABILITIES = ("elicitation", "roots", "sampling")


def forwarded_capabilities(caps: Any) -> dict[str, Any]:
    """A downstream client's capabilities as mcpmux tells a 2026-07-28 upstream: what it declared of
    what mcpmux can translate (`tasks`, `experimental`, `extensions` are not carried)."""
    if type(caps) is not dict:
        return {}
    return {name: caps[name] for name in TRANSLATABLE_CLIENT_CAPABILITIES if type(caps.get(name)) is dict}


def with_envelope(
    msg: Message, capabilities: dict[str, Any], client_info: dict[str, Any], log_level: Any
) -> Message:
    """The request as a 2026-07-28 server wants it: the envelope in `params._meta` (a new message)."""
    params = msg.get("params")
    params = dict(params) if type(params) is dict else {}
    meta = params.get("_meta")
    meta = dict(meta) if type(meta) is dict else {}
    meta[PROTOCOL_VERSION_META] = MODERN_VERSION
    meta[CLIENT_CAPABILITIES_META] = capabilities
    meta[CLIENT_INFO_META] = client_info
    if log_level is not None:
        meta[LOG_LEVEL_META] = log_level
    params["_meta"] = meta
    return {**msg, "params": params}


def strip_envelope(msg: Message) -> Message:
    """The request without the 2026 envelope keys in `params._meta` (a handshake session refuses them).

    Returns a new message when something is removed (other `_meta` keys such as `progressToken`
    and `traceparent` stay), else `msg` itself.
    """
    params = msg.get("params")
    if type(params) is not dict:
        return msg
    meta = params.get("_meta")
    if type(meta) is not dict:
        return msg
    if PROTOCOL_VERSION_META not in meta and not any(key in meta for key in ENVELOPE_META_KEYS):
        return msg  # (a 2026 request has the version key: the common case decides in one lookup)
    kept = meta.copy()  # copies (C speed), then the few envelope keys out: the client's dicts stay as sent
    for key in ENVELOPE_META_KEYS:
        if key in kept:  # (`in` and `del`: no call per key)
            del kept[key]
    new_params = params.copy()
    if kept:
        new_params["_meta"] = kept
    else:
        del new_params["_meta"]
    return {**msg, "params": new_params}


def drop_envelope(msg: Message) -> Message:
    """`strip_envelope` for the proxy's own copy of a request whose envelope was read (`params._meta` is
    an object with the version and capabilities keys), with one copy instead of three: `msg` gets a copy
    of its params, which the relay may change (a merged tool's name; the params as sent stay what a
    suspended call is bound to), without `_meta` when only envelope keys are in it (the common case:
    `_meta` itself untouched), else with the envelope keys deleted from `_meta`. Returns `msg`."""
    params = msg["params"]
    meta = params["_meta"]
    params = msg["params"] = params.copy()
    if len(meta) == 2 + (CLIENT_INFO_META in meta) + (LOG_LEVEL_META in meta):
        del params["_meta"]
        return msg
    for key in ENVELOPE_META_KEYS:
        if key in meta:
            del meta[key]
    if not meta:
        del params["_meta"]
    return msg


def with_subscription_id(msg: Message, subscription_id: Any) -> Message:
    """A notification for a `subscriptions/listen` stream: `_meta` names the stream (a new message)."""
    params = msg.get("params")
    params = params if type(params) is dict else {}
    meta = params.get("_meta")
    meta = meta if type(meta) is dict else {}
    return {**msg, "params": {**params, "_meta": {**meta, SUBSCRIPTION_ID_META: subscription_id}}}


def without_subscription_id(msg: Message) -> Message:
    """A listen stream's notification as a handshake-era one: `_meta` without the subscription id."""
    params = msg.get("params")
    meta = params.get("_meta") if type(params) is dict else None
    if type(params) is not dict or type(meta) is not dict or SUBSCRIPTION_ID_META not in meta:
        return msg
    kept = {k: v for k, v in meta.items() if k != SUBSCRIPTION_ID_META}
    new_params = {k: v for k, v in params.items() if k != "_meta"}
    if kept:
        new_params["_meta"] = kept
    return {**msg, "params": new_params}


def acknowledged(honored: dict[str, Any], subscription_id: Any) -> Message:
    """The first message of a `subscriptions/listen` stream: what the server will send on it."""
    params = {"notifications": honored, "_meta": {SUBSCRIPTION_ID_META: subscription_id}}
    return {"jsonrpc": "2.0", "method": SUBSCRIPTIONS_ACKNOWLEDGED, "params": params}


def listen_ended(subscription_id: Any) -> Message:
    """The last message of a `subscriptions/listen` stream the server ends: the listen request's result
    (the spec's graceful close; without it a client takes the stream as lost)."""
    result = {"resultType": "complete", "_meta": {SUBSCRIPTION_ID_META: subscription_id}}
    return {"jsonrpc": "2.0", "id": subscription_id, "result": result}


def with_input_key(params: Any, key: str) -> Any:
    """A 2026 upstream's request for input as a request: its key kept in `_meta` (a new dict), so that a
    2026 client is asked under the upstream's own key (protocol/constants.py INPUT_KEY_META)."""
    if type(params) is not dict:
        return params
    meta = params.get("_meta")
    return {**params, "_meta": {**(meta if type(meta) is dict else {}), INPUT_KEY_META: key}}


def take_input_key(params: Any) -> tuple[Any, str | None]:
    """The params without the key `with_input_key` put in, and that key (None when there is none)."""
    meta = params.get("_meta") if type(params) is dict else None
    if type(meta) is not dict or INPUT_KEY_META not in meta:
        return params, None
    key = meta[INPUT_KEY_META]
    kept = {k: v for k, v in meta.items() if k != INPUT_KEY_META}
    rest = {k: v for k, v in params.items() if k != "_meta"}
    if kept:
        rest["_meta"] = kept
    return rest, key if type(key) is str else None
