"""Per-request era classification and the 2026-07-28 envelope ladder (body `_meta` against the headers)."""

from __future__ import annotations

import base64
import re
from typing import Any, NamedTuple

from orjson import JSONEncodeError

from ..jsonrpc import INVALID_PARAMS, Message, dumps
from .constants import (
    CLIENT_CAPABILITIES_META,
    CLIENT_INFO_META,
    HANDSHAKE_VERSIONS,
    HEADER_MISMATCH,
    LOG_LEVEL_META,
    LOG_RANK,
    MODERN_VERSIONS,
    NAME_BEARING_METHODS,
    PARAM_HEADER_PREFIX,
    PROTOCOL_VERSION_META,
    SERVER_DISCOVER,
    UNSUPPORTED_PROTOCOL_VERSION,
)

_B64_SENTINEL = re.compile(r"=\?base64\?(?P<payload>.*)\?=")
_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # what an HTTP header name may be made of
# The last client capabilities and info that passed the nesting check of `_client_fields`
_last_checked: list[tuple[Any, Any]] = [(None, None)]
MAX_SCHEMA_DEPTH = 8  # nested `properties` followed when looking for `x-mcp-header`


class EnvelopeError(ValueError):
    """A 2026-era request the proxy refuses: the JSON-RPC error to answer with (HTTP 400)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class Envelope(NamedTuple):
    """What a 2026-07-28 request says about its client in `params._meta` (a tuple: built per request,
    a frozen dataclass costs ~1 us more)."""

    version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any]
    log_level: str | None


class RoutingHeaders(NamedTuple):
    """The HTTP headers a 2026-07-28 request mirrors from its body (None: absent)."""

    protocol_version: str | None
    method: str | None
    name: str | None


def is_modern(session_id: str | None, header_version: str | None, msg: Message) -> bool:
    """Whether a downstream HTTP request belongs to the 2026-07-28 era (spec: decided per request).

    A request in a handshake session is never modern (one truth test: the 2025 path pays nothing
    more). Without a session: a `MCP-Protocol-Version` header that is not a handshake version, a
    `server/discover` probe, or the envelope's protocol-version key in `params._meta`.
    """
    if session_id:
        return False
    if header_version is not None:
        return header_version not in HANDSHAKE_VERSIONS
    if msg.get("method") == SERVER_DISCOVER:
        return True
    params = msg.get("params")
    meta = params.get("_meta") if type(params) is dict else None
    return type(meta) is dict and PROTOCOL_VERSION_META in meta


def unsupported_version(requested: Any) -> EnvelopeError:
    """-32022 naming the versions served without a session (as `server/discover` lists them)."""
    return EnvelopeError(
        UNSUPPORTED_PROTOCOL_VERSION,
        f"Unsupported protocol version: {requested}",
        {"supported": list(MODERN_VERSIONS), "requested": requested},
    )


def read_envelope(msg: Message, headers: tuple[str | None, str | None, str | None] | None) -> Envelope:
    """Check a 2026-07-28 request, as the spec's ladder does, and return its envelope.

    Rungs, first failure wins: the `_meta` envelope keys (-32602); the routing headers equal the
    body (-32020; `headers` a `RoutingHeaders` or a plain tuple in its order, None on stdio: skipped);
    a supported version (-32022).
    """
    params = msg.get("params")
    meta = params.get("_meta") if type(params) is dict else None
    if type(meta) is not dict:
        raise EnvelopeError(
            INVALID_PARAMS,
            f"params._meta must be an object carrying {PROTOCOL_VERSION_META!r}"
            f" and {CLIENT_CAPABILITIES_META!r}",
        )
    if PROTOCOL_VERSION_META not in meta or CLIENT_CAPABILITIES_META not in meta:
        names = ", ".join(key for key in (PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META) if key not in meta)
        raise EnvelopeError(INVALID_PARAMS, f"params._meta is missing the envelope key(s): {names}")
    version = meta[PROTOCOL_VERSION_META]
    if headers is not None:
        check_headers(msg, version, headers)
    if type(version) is not str:
        raise EnvelopeError(INVALID_PARAMS, "the protocol-version envelope value must be a string")
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version)
    return _client_fields(version, meta)


def _client_fields(version: str, meta: dict[str, Any]) -> Envelope:
    caps = meta[CLIENT_CAPABILITIES_META]
    if type(caps) is not dict:
        raise EnvelopeError(INVALID_PARAMS, f"{CLIENT_CAPABILITIES_META!r} must be an object")
    info = meta.get(CLIENT_INFO_META)
    if info is not None and type(info) is not dict:
        raise EnvelopeError(INVALID_PARAMS, f"{CLIENT_INFO_META!r} must be an object")
    level = meta.get(LOG_LEVEL_META)
    if level is not None and (type(level) is not str or level not in LOG_RANK):
        raise EnvelopeError(INVALID_PARAMS, f"Invalid log level: {level!r}")
    checked = (caps, info)
    if checked != _last_checked[0]:  # (equal values nest equally deep: a client sends the same each call)
        try:  # they go upstream (an isolated session's initialize): JSON writers stop at 254 levels
            dumps(checked)
        except JSONEncodeError:
            raise EnvelopeError(
                INVALID_PARAMS, "the client capabilities or info are nested too deeply"
            ) from None
        _last_checked[0] = checked
    return Envelope(version, caps, info or {}, level)


def _field(value: str | None) -> str | None:
    """A header value as HTTP means it: without the optional whitespace around it (RFC 9110 5.5)."""
    return value.strip(" \t") if value is not None else None


def check_headers(msg: Message, version: Any, headers: tuple[str | None, str | None, str | None]) -> None:
    """`MCP-Protocol-Version`, `Mcp-Method` and (name-bearing methods) `Mcp-Name` (`headers`, in that
    order; a `RoutingHeaders`) must equal the body. A value equal as sent and without whitespace to
    strip is taken without a call: the common case costs no helper per header."""
    sent_version, sent_method, sent_name = headers
    if not (sent_version == version and version in MODERN_VERSIONS):  # (those have no whitespace)
        _check_padded(
            sent_version, version, "MCP-Protocol-Version", "the request envelope's protocol version"
        )
    method = msg.get("method")
    # (equal and not the same object: both strings, so `in` is safe)
    if sent_method is not method and (sent_method != method or " " in sent_method or "\t" in sent_method):  # type: ignore[operator]
        _check_padded(sent_method, method, "Mcp-Method", "the request body's method")
    if method in NAME_BEARING_METHODS:  # (a lookup, no call)
        key = NAME_BEARING_METHODS[method]
        _check_name(sent_name, msg["params"].get(key), key)  # (the envelope was there: params is an object)


def _check_padded(sent: str | None, expected: Any, header: str, what: str) -> None:
    if sent is None or _field(sent) != expected:
        raise EnvelopeError(HEADER_MISMATCH, f"{header} header does not match {what}")


def _check_name(sent: str | None, value: Any, key: str) -> None:
    """`Mcp-Name` against the body's `key` parameter: verbatim, or base64 as `encode_header_value` sends."""
    if value is None or (
        sent == value and " " not in value and "\t" not in value and value[:9] != "=?base64?"
    ):
        return  # (equal to a body value: a string; one that would not be decoded or stripped)
    if decode_header_value(_field(sent)) != value:
        raise EnvelopeError(
            HEADER_MISMATCH, f"Mcp-Name header does not match the request body's {key!r} parameter"
        )


def encode_header_value(value: str) -> str:
    """A value for `Mcp-Name` and friends: verbatim when it is printable ASCII without edge whitespace,
    else `=?base64?…?=` of its UTF-8 (what `decode_header_value` reads back)."""
    plain = value.isascii() and value.isprintable() and value == value.strip()
    if plain and not _B64_SENTINEL.fullmatch(value):
        return value
    return "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def decode_header_value(value: str | None) -> str | None:
    """A header value as sent: verbatim, or the UTF-8 inside `=?base64?…?=` (None if malformed)."""
    if value is None:
        return None
    match = _B64_SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None  # non-canonical: the encoder never sends it
        return decoded.decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text (obs-text in a header)
        return None


def x_mcp_header_map(schema: Any) -> dict[tuple[str, ...], str]:
    """A tool input schema's `x-mcp-header` annotations: argument path -> header token (nested
    `properties` followed; a token that cannot be part of a header name is skipped)."""
    found: dict[tuple[str, ...], str] = {}
    todo: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]
    while todo:
        node, path = todo.pop()
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict) or len(path) >= MAX_SCHEMA_DEPTH:
            continue
        for key, sub in props.items():
            token = sub.get("x-mcp-header") if isinstance(sub, dict) else None
            if isinstance(token, str) and _HEADER_TOKEN.fullmatch(token):
                found[(*path, key)] = token
            todo.append((sub, (*path, key)))
    return found


def mcp_param_headers(header_map: dict[tuple[str, ...], str], arguments: Any) -> dict[str, str]:
    """The `Mcp-Param-*` headers a `tools/call` mirrors from its arguments (absent or non-scalar: none)."""
    headers: dict[str, str] = {}
    for path, token in header_map.items():
        value = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            rendered = str(value)
        else:
            continue
        headers[PARAM_HEADER_PREFIX + token] = encode_header_value(rendered)
    return headers


def param_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's `Mcp-Param-*` headers (lower-case name -> value); one sent twice is refused
    (-32020): which of the two an intermediary looked at cannot be known."""
    sent: dict[str, str] = {}
    for name, value in raw:
        if name.lower().startswith(b"mcp-param-"):
            key = name.decode("latin-1").lower()
            if key in sent:
                raise EnvelopeError(HEADER_MISMATCH, f"more than one {name.decode('latin-1')} header")
            sent[key] = value.decode("latin-1")
    return sent


def check_param_headers(header_map: dict[tuple[str, ...], str], arguments: Any, sent: dict[str, str]) -> None:
    """`Mcp-Param-*` headers (`sent`: lower-case name -> value) must mirror the annotated arguments:
    present exactly when the argument is, equal after decoding (numbers compared as numbers)."""
    for path, token in header_map.items():
        header = PARAM_HEADER_PREFIX + token
        raw = sent.get(header.lower())
        expected = mcp_param_headers({path: token}, arguments).get(header)
        if raw is None and expected is None:
            continue
        if raw is None or expected is None or not _same_value(raw, expected):
            raise EnvelopeError(HEADER_MISMATCH, f"{header} header does not match the request's arguments")


def _same_value(raw: str, expected: str) -> bool:
    decoded, wanted = decode_header_value(_field(raw)), decode_header_value(expected)
    if decoded == wanted:
        return True
    try:
        return decoded is not None and wanted is not None and float(decoded) == float(wanted)
    except ValueError:
        return False
