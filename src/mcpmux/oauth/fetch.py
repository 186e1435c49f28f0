"""Bounded HTTP JSON requests to authorization servers: size-capped bodies, timeouts, no redirects."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson

MAX_DOCUMENT_BYTES = 256 * 1024
TIMEOUT_SECONDS = 10.0


class FetchError(Exception):
    """An authorization server could not be reached or answered with something unusable."""


async def fetch_json(
    method: str,
    url: str,
    *,
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    limit: int = MAX_DOCUMENT_BYTES,
) -> dict[str, Any]:
    """GET or POST (form `data`) `url` and return its JSON object; raise FetchError otherwise."""
    try:
        async with httpx2.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            async with client.stream(method, url, data=data, auth=auth) as response:
                body = await _read_capped(response, limit)
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:  # a URL from a metadata document may be anything
        raise FetchError(f"{url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise FetchError(f"{url}: HTTP {response.status_code}")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FetchError(f"{url}: not JSON") from None
    if not isinstance(document, dict):
        raise FetchError(f"{url}: expected a JSON object")
    return document


async def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise FetchError(f"{response.request.url}: larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
