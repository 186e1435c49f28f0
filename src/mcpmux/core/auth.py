"""Read the token out of an `Authorization` header and match it in constant time to a `TokenScope`."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from ..config.model import TokenScope

__all__ = ["TokenSet", "token_from_authorization"]

_SCHEME = "bearer"
_SCHEME_LENGTH = len(_SCHEME)
_WHITESPACE = " \t"


def token_from_authorization(value: str | None) -> str | None:
    """Return the token of an `Authorization` header value, or None when there is none.

    Accepts `Bearer <token>` with the scheme in any case, and a raw token (what the original
    accepts); surrounding whitespace is ignored. A bare `Bearer` carries no token.
    """
    if value is None:
        return None
    value = value.strip()
    if value[:_SCHEME_LENGTH].lower() == _SCHEME:
        rest = value[_SCHEME_LENGTH:]
        if not rest:
            return None
        if rest[0] in _WHITESPACE:
            value = rest.lstrip(_WHITESPACE)
    return value or None


def _utf8(text: str) -> bytes:
    # surrogatepass: a header can never make the comparison raise.
    return text.encode("utf-8", "surrogatepass")


class TokenSet:
    """The tokens accepted on one route; empty means auth is off there."""

    __slots__ = ("_entries", "enabled")

    def __init__(self, scopes: Sequence[TokenScope], *, required: bool | None = None) -> None:
        """`required` keeps auth on even when no token is accepted here (all scoped to other routes)."""
        self._entries: tuple[tuple[bytes, TokenScope], ...] = tuple((_utf8(s.token), s) for s in scopes)
        self.enabled: bool = bool(self._entries) if required is None else required

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, presented: str | None) -> TokenScope | None:
        """Return the scope of the presented token, or None when it matches no configured token.

        Every configured token is compared (no early exit), so the time taken does not tell which
        one matched. The presented token is compare_digest's second argument: its running time then
        depends only on the presented length, never on a configured token's length.
        """
        if presented is None:
            return None
        candidate = _utf8(presented)
        found: TokenScope | None = None
        for expected, scope in self._entries:
            if hmac.compare_digest(expected, candidate) and found is None:
                found = scope
        return found
