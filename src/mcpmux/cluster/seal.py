"""Sealed session ids naming their owner replica, and proofs on replica-to-replica requests (HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import orjson

from ..protocol.state import PREFIX as STATE_PREFIX

MAC_HEX = 32  # 128 bits of HMAC-SHA256 in a session id
PROOF_SKEW_SECONDS = 60  # a forwarded request's proof is accepted this long
REPLICA_ID_HEX = 12


def new_replica_id() -> str:
    """A fresh id per process: a restarted replica owns none of its predecessor's sessions."""
    return secrets.token_hex(REPLICA_ID_HEX // 2)


class Sealer:
    """Mints and opens `<replica>.<random>.<mac>` session ids; signs and checks forwarding proofs.

    Every replica shares the secret, so any of them can tell a session's owner without asking anyone,
    and a client cannot make up an id that sends its requests to a replica of its choosing.
    """

    __slots__ = ("_key", "replica")

    def __init__(self, secret: str, replica: str) -> None:
        self._key = hashlib.sha256(b"mcpmux-cluster\x00" + secret.encode()).digest()
        self.replica = replica

    def _mac(self, purpose: bytes, text: str) -> str:
        return hmac.new(self._key, purpose + b"\x00" + text.encode(), hashlib.sha256).hexdigest()

    def state_key(self) -> bytes:
        """The MRTR requestState key every replica shares (derived, never the secret itself)."""
        return hmac.new(self._key, b"mrtr-state", hashlib.sha256).digest()

    def session_id(self) -> str:
        body = f"{self.replica}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac(b'sid', body)[:MAC_HEX]}"

    def owner(self, session_id: str) -> str | None:
        """The replica a session id names, or None if it is not a sealed id (forged, old, foreign)."""
        body, _, mac = session_id.rpartition(".")
        replica, dot, _random = body.partition(".")
        if not dot or len(mac) != MAC_HEX or len(replica) != REPLICA_ID_HEX or not mac.isascii():
            return None  # (compare_digest refuses non-ASCII text: a client's bytes must not make it raise)
        if not hmac.compare_digest(mac, self._mac(b"sid", body)[:MAC_HEX]):
            return None
        return replica

    def proof(self, method: str, path: str, session_id: str, now: float) -> str:
        """What a replica sends with a request it forwards: who, when, and which request, signed."""
        stamp = str(int(now))
        subject = f"{self.replica}\n{stamp}\n{method}\n{path}\n{session_id}"
        return f"{self.replica}.{stamp}.{self._mac(b'fwd', subject)}"

    def proof_ok(self, proof: str, method: str, path: str, session_id: str, now: float) -> bool:
        replica, _, rest = proof.partition(".")
        stamp, _, mac = rest.partition(".")
        if not stamp.isdecimal() or not stamp.isascii() or not mac.isascii():
            return False
        if abs(now - int(stamp)) > PROOF_SKEW_SECONDS:
            return False
        subject = f"{replica}\n{stamp}\n{method}\n{path}\n{session_id}"
        return hmac.compare_digest(mac, self._mac(b"fwd", subject))


def retry_replica(body: bytes) -> str | None:
    """The replica that signed a 2026 retry's `requestState` (its key id), unverified: only a hint
    where to send the retry, whose owner then checks the state in full. None for anything else."""
    try:
        msg = orjson.loads(body)
        state = msg["params"]["requestState"]
        signed = state[len(STATE_PREFIX) :].partition(".")[0] if state.startswith(STATE_PREFIX) else ""
        kid = orjson.loads(base64.urlsafe_b64decode(signed + "=" * (-len(signed) % 4))).get("kid")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return None
    return kid if isinstance(kid, str) and len(kid) == REPLICA_ID_HEX else None
