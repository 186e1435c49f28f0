"""Raw JSON-RPC 2.0 messages as plain dicts: parsing, classification and error objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

Message = dict[str, Any]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001

dumps = orjson.dumps


class MessageError(ValueError):
    """A message that is not valid JSON-RPC; carries the code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_message(data: bytes | bytearray | memoryview | str) -> Message:
    """Parse one JSON-RPC message (not a batch) and check its envelope: `"jsonrpc": "2.0"`, and the
    `check_shape` branch of its kind."""
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: {exc}") from None
    if type(msg) is not dict:
        if isinstance(msg, list):
            raise MessageError(INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
        raise MessageError(INVALID_REQUEST, "Invalid Request: expected a JSON object")
    if msg.get("jsonrpc") != "2.0":
        raise MessageError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"')
    (check_initiated if "method" in msg else check_response)(msg)
    return msg


def check_shape(msg: Message) -> None:
    """The envelope fields mcpmux relies on, whoever sent the message (client or upstream).

    A request's id is a string or an integer, a response's may also be null (an error about a message
    that could not be read); `method` is a string and `params`, when present, an object.
    """
    (check_initiated if "method" in msg else check_response)(msg)


def check_initiated(msg: Message) -> None:
    """`check_shape` of a request or notification (a message with `method`)."""
    if type(msg["method"]) is not str:
        raise MessageError(INVALID_REQUEST, 'Invalid Request: "method" must be a string')
    params = msg.get("params")
    if params is not None and type(params) is not dict:
        raise MessageError(INVALID_REQUEST, 'Invalid Request: "params" must be an object')
    if "id" in msg and type(msg["id"]) not in KEY_TYPES:
        raise _bad_id()


def check_response(msg: Message) -> None:
    """`check_shape` of a message without `method`: a response (its id may be null)."""
    if "id" not in msg or ("result" not in msg and "error" not in msg):
        raise MessageError(
            INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response"
        )
    request_id = msg["id"]
    if request_id is not None and type(request_id) not in KEY_TYPES:
        raise _bad_id()


KEY_TYPES = (str, int)  # compared by `type(x) in`: a bool is not an int here


def _bad_id() -> MessageError:
    return MessageError(INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer')


def is_request(msg: Message) -> bool:
    return "method" in msg and "id" in msg


def is_notification(msg: Message) -> bool:
    return "method" in msg and "id" not in msg


def is_response(msg: Message) -> bool:
    return "method" not in msg and ("result" in msg or "error" in msg)


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return err


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": error_object(code, message, data)}


def result_response(request_id: Any, result: Any) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    msg: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def request(request_id: Any, method: str, params: dict[str, Any] | None = None) -> Message:
    msg: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def progress_token(msg: Message) -> Any:
    """The `_meta.progressToken` of a request (checked by `check_fields`), or None."""
    params = msg.get("params")
    if params:
        meta = params.get("_meta")
        if meta:
            return meta.get("progressToken")
    return None


def is_key(value: Any) -> bool:
    """A string or an integer (not a bool): what an id, a token or a name may be."""
    kind = type(value)
    return kind is str or kind is int


# Per method: the params that mcpmux itself reads, and the types they must have (when present).
STRING_FIELDS: dict[str, tuple[str, ...]] = {
    "tools/call": ("name",),
    "prompts/get": ("name",),
    "resources/read": ("uri",),
    "resources/subscribe": ("uri",),
    "resources/unsubscribe": ("uri",),
    "logging/setLevel": ("level",),
    "tools/list": ("cursor",),
    "prompts/list": ("cursor",),
    "resources/list": ("cursor",),
    "resources/templates/list": ("cursor",),
}
_REQUIRED = frozenset({"tools/call", "prompts/get", "resources/read", "logging/setLevel"})


def check_fields(msg: Message) -> None:
    """The params of a client's message that mcpmux reads have the types it relies on.

    Called by the downstream faces after `parse_message` for requests and notifications: `_meta` is an
    object, a progress token and a cancelled `requestId` are strings or integers, names, URIs, levels
    and cursors are strings. Raises `MessageError` (-32602, Invalid params) otherwise.
    """
    params = msg.get("params")
    method = msg["method"]
    if not params:
        if method in _REQUIRED:
            raise _not_a_string(STRING_FIELDS[method][0])
        return
    meta = params.get("_meta")
    if meta is not None:
        _check_meta(meta)
    fields = STRING_FIELDS.get(method)
    if fields is None:  # no method has both string fields and other checks
        other = _OTHER_CHECKS.get(method)
        if other is not None:
            other(params)
        return
    required = method in _REQUIRED
    for name in fields:
        value = params.get(name)
        if type(value) is not str and (value is not None or required):
            raise _not_a_string(name)


def _not_a_string(field: str) -> MessageError:
    return MessageError(INVALID_PARAMS, f'Invalid params: "{field}" must be a string')


def _check_meta(meta: Any) -> None:
    if type(meta) is not dict:
        raise MessageError(INVALID_PARAMS, 'Invalid params: "_meta" must be an object')
    token = meta.get("progressToken")
    if token is not None and not is_key(token):
        raise MessageError(INVALID_PARAMS, 'Invalid params: "progressToken" must be a string or an integer')


def _check_cancelled(params: dict[str, Any]) -> None:
    if not is_key(params.get("requestId")):
        raise MessageError(INVALID_PARAMS, 'Invalid params: "requestId" must be a string or an integer')


def _check_complete(params: dict[str, Any]) -> None:
    if type(params.get("ref")) is not dict:
        raise MessageError(INVALID_PARAMS, 'Invalid params: "ref" must be an object')


# Per method: the checks of params that are not plain strings (for methods without STRING_FIELDS).
_OTHER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "notifications/cancelled": _check_cancelled,
    "completion/complete": _check_complete,
}
