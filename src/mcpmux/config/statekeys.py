"""`mcpProxy.requestStateKeys`: the HMAC keys that seal MRTR `requestState` (the first signs, all verify)."""

from __future__ import annotations

from typing import Any

from mcpmux.config.fields import Diagnostics, JsonObject, as_object, join_path
from mcpmux.config.model import RequestStateKey

KEY_FIELDS = ("id", "secret")
MIN_SECRET_CHARS = 32
MAX_ID_CHARS = 64
_EXPECTED_LIST = 'expected a list of {"id": "k1", "secret": "${MCPMUX_STATE_KEY}"} objects'


def parse_request_state_keys(proxy: JsonObject | None) -> tuple[RequestStateKey, ...]:
    """() when absent (a random key per process); else every entry checked, errors with their paths."""
    if proxy is None or not proxy.has("requestStateKeys"):
        return ()
    path, value = proxy.path_of("requestStateKeys"), proxy.get("requestStateKeys")
    if not isinstance(value, list) or not value:
        proxy.diag.report(path, _EXPECTED_LIST + " (at least one)")
        return ()
    keys: list[RequestStateKey] = []
    for index, entry in enumerate(value):
        key = proxy.diag.attempt(_read_key, proxy.diag, join_path(path, index), entry)
        if key is None:
            continue
        if any(k.id == key.id for k in keys):
            proxy.diag.report(join_path(join_path(path, index), "id"), f"duplicate key id {key.id!r}")
            continue
        keys.append(key)
    return tuple(keys)


def _read_key(diag: Diagnostics, path: str, value: Any) -> RequestStateKey:
    entry = as_object(diag, path, value, KEY_FIELDS)
    key_id = entry.get("id")
    if not isinstance(key_id, str) or not key_id.strip() or len(key_id) > MAX_ID_CHARS:
        raise diag.error(
            entry.path_of("id"), f"expected a non-empty key id string (at most {MAX_ID_CHARS} characters)"
        )
    secret = entry.get("secret")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
        raise diag.error(
            entry.path_of("secret"),
            f"expected a secret of at least {MIN_SECRET_CHARS} characters "
            '(e.g. "${MCPMUX_STATE_KEY}", from `openssl rand -hex 32`)',
        )
    return RequestStateKey(id=key_id.strip(), secret=secret)
