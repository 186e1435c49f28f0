"""Sealed, caller-bound MRTR `requestState`: HMAC-SHA256 with key ids, expiry and key rotation."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

PREFIX = "mx1."
MAX_STATE_CHARS = 8192  # a longer requestState is refused before any work
DEFAULT_TTL_SECONDS = 600.0


class StateError(ValueError):
    """A requestState that is not ours, was altered, has expired, or belongs to another caller/request."""


@dataclass(frozen=True, slots=True)
class StateKey:
    """One HMAC key: `id` is written into each state it signs so rotation can find it again."""

    id: str
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise ValueError(f"requestState key {self.id!r}: the secret must have at least 32 bytes")


def caller_digest(credential: str | None, key: bytes) -> str:
    """What a state remembers of its caller: an HMAC of the token under the state's key (never the token,
    nor a plain hash a client could test guessed tokens against offline)."""
    text = b"caller\x00" + (credential or "").encode("utf-8", "surrogatepass")
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StateSealer:
    """Seals and opens request states. The first key signs; every key listed is accepted.

    Rotation: put the new key first and keep the old one listed until the longest state signed
    with it has expired (`ttl_seconds`), then drop it.

    The seal protects integrity, not secrecy: the payload is readable by the client, so it must hold
    only handles, never secrets.
    """

    def __init__(self, keys: Sequence[StateKey], ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        if not keys:
            raise ValueError("a StateSealer needs at least one key")
        self.signing = keys[0]
        self.keys = {key.id: key for key in keys}
        self.ttl_seconds = ttl_seconds

    def seal(self, payload: Any, *, caller: str | None, request: str, now: float) -> str:
        """A state for `payload`, valid for `ttl_seconds`, only for this caller and this request."""
        body = orjson.dumps(
            {
                "kid": self.signing.id,
                "exp": now + self.ttl_seconds,
                "sub": caller_digest(caller, self.signing.secret),
                "req": request,
                "data": payload,
            }
        )
        signed = PREFIX + _b64(body)
        return signed + "." + _b64(self._mac(self.signing, signed))

    def open(self, state: Any, *, caller: str | None, request: str, now: float) -> Any:
        """The payload of a state this proxy sealed for this caller and request; StateError otherwise."""
        if type(state) is not str or len(state) > MAX_STATE_CHARS or not state.startswith(PREFIX):
            raise StateError("requestState is not one this proxy issued")
        signed, _, mac_text = state.rpartition(".")
        try:
            body = orjson.loads(_unb64(signed[len(PREFIX) :]))
            mac = _unb64(mac_text)
        except (binascii.Error, ValueError):
            raise StateError("requestState is malformed") from None
        kid = body.get("kid") if type(body) is dict else None
        key = self.keys.get(kid) if type(kid) is str else None
        if key is None:
            raise StateError("requestState was signed with an unknown key")
        if not hmac.compare_digest(mac, self._mac(key, signed)):
            raise StateError("requestState was altered")
        return self._check_claims(body, caller_digest(caller, key.secret), request, now)

    @staticmethod
    def _check_claims(body: dict[str, Any], caller: str, request: str, now: float) -> Any:
        exp = body.get("exp")
        if not isinstance(exp, (int, float)) or now > exp:
            raise StateError("requestState has expired")
        if not hmac.compare_digest(str(body.get("sub")), caller):
            raise StateError("requestState belongs to another caller")
        if body.get("req") != request:
            raise StateError("requestState belongs to another request")
        return body.get("data")

    @staticmethod
    def _mac(key: StateKey, signed: str) -> bytes:
        return hmac.new(key.secret, signed.encode("ascii"), hashlib.sha256).digest()


def request_binding(method: str, params: Any) -> str:
    """What a state is bound to besides its caller: the method and the tool/prompt name or URI."""
    target = ""
    if isinstance(params, dict):
        value = params.get("uri") if method == "resources/read" else params.get("name")
        target = value if isinstance(value, str) else ""
    return f"{method}\n{target}"
