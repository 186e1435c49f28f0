"""The one adapter around the SDK's OAuth client machinery: discovery, registration, PKCE, token requests.

The SDK's `OAuthClientProvider` runs the whole flow inline in one HTTP request, with a person at a
browser; a headless proxy splits it (start a login, finish it later from a callback or a pasted code),
so this module drives the SDK's discovery, metadata, registration and token models step by step.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2
from mcp.client.auth import OAuthFlowError, OAuthRegistrationError, OAuthTokenError, PKCEParameters
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    create_client_info_from_metadata_url,
    create_client_registration_request,
    create_oauth_metadata_request,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    handle_registration_response,
    should_use_client_metadata_url,
    union_scopes,
    validate_authorization_response_iss,
    validate_metadata_issuer,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthMetadata, OAuthToken
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

from ..config.model import UpstreamOAuth

__all__ = ["Discovery", "FlowError", "OAuthClientInformationFull", "OAuthToken", "union_scopes"]

TIMEOUT_SECONDS = 15.0
MAX_DISCOVERY_URLS = 8
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_BODY_BYTES = 1024 * 1024  # metadata, registration and token responses
DECODED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")  # the body is decoded


class FlowError(Exception):
    """A step of the OAuth flow failed; the message names the step, never a secret."""


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where to log in for an upstream: its resource identifier and its authorization server."""

    resource: str
    metadata: OAuthMetadata
    scopes_supported: tuple[str, ...] = ()
    challenged_scope: str | None = None  # the `scope` of the upstream's 401, which comes first

    @property
    def scope(self) -> str | None:
        """The scope to ask for by default: the challenge's, else every one the metadata lists."""
        return self.challenged_scope or " ".join(self.scopes_supported) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "metadata": self.metadata.model_dump(mode="json", exclude_none=True),
            "scopes_supported": list(self.scopes_supported),
            "challenged_scope": self.challenged_scope,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Discovery:
        return cls(
            resource=data["resource"],
            metadata=OAuthMetadata.model_validate(data["metadata"]),
            scopes_supported=tuple(data.get("scopes_supported") or ()),
            challenged_scope=data.get("challenged_scope"),
        )


def new_http() -> httpx2.AsyncClient:
    """A client for authorization servers: bounded time, no redirects (metadata URLs must not move)."""
    return httpx2.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)


async def discover(http: httpx2.AsyncClient, server_url: str, config: UpstreamOAuth) -> Discovery:
    """RFC 9728 protected resource metadata (path-inserted, then root), then RFC 8414 / OIDC metadata."""
    challenge = await _challenge(http, server_url)
    metadata_url = challenge_field(challenge, "resource_metadata")
    resource, servers, scopes = await _protected_resource(http, metadata_url, server_url)
    issuer = _pick_issuer(servers, config.issuer)
    asm = await _authorization_server(http, issuer, server_url)
    if asm is not None:
        return Discovery(resource, asm, scopes, challenge_field(challenge, "scope"))
    if not servers:  # a 2025-03-26 server without any metadata: the default endpoints at its origin
        return Discovery(resource, legacy_metadata(server_url), scopes, challenge_field(challenge, "scope"))
    raise FlowError(f"no authorization server metadata found for {issuer or server_url}")


async def _protected_resource(
    http: httpx2.AsyncClient, metadata_url: str | None, server_url: str
) -> tuple[str, list[str], tuple[str, ...]]:
    """RFC 9728: the resource, its authorization servers and scopes (none found: the server's URL, none)."""
    resource = resource_url_from_server_url(server_url)
    for url in build_protected_resource_metadata_discovery_urls(metadata_url, server_url)[
        :MAX_DISCOVERY_URLS
    ]:
        prm = await handle_protected_resource_response(await _send(http, create_oauth_metadata_request(url)))
        if prm is None:
            continue
        if prm.resource and not check_resource_allowed(resource, str(prm.resource)):
            raise FlowError(f"the upstream's metadata names another resource ({prm.resource})")
        resource = str(prm.resource) if prm.resource else resource
        return resource, [str(s) for s in prm.authorization_servers], tuple(prm.scopes_supported or ())
    return resource, [], ()


async def _authorization_server(
    http: httpx2.AsyncClient, issuer: str | None, server_url: str
) -> OAuthMetadata | None:
    """RFC 8414 / OIDC metadata of `issuer` (checked to name it), or None when none is found."""
    for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url)[
        :MAX_DISCOVERY_URLS
    ]:
        ok, asm = await handle_auth_metadata_response(await _send(http, create_oauth_metadata_request(url)))
        if not ok:
            return None
        if asm is not None:
            if issuer is not None:
                _checked(validate_metadata_issuer, asm, issuer)
            return asm
    return None


def legacy_metadata(server_url: str) -> OAuthMetadata:
    """MCP 2025-03-26: without metadata, `/authorize`, `/token` and `/register` at the server's origin."""
    parts = urlsplit(server_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return OAuthMetadata.model_validate(
        {
            "issuer": origin,
            "authorization_endpoint": f"{origin}/authorize",
            "token_endpoint": f"{origin}/token",
            "registration_endpoint": f"{origin}/register",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }
    )


async def _challenge(http: httpx2.AsyncClient, server_url: str) -> str | None:
    """The `WWW-Authenticate` of the upstream's 401 to an unauthenticated request (None without one)."""
    probe = httpx2.Request("POST", server_url, json={"jsonrpc": "2.0", "id": 0, "method": "ping"})
    probe.headers["accept"] = "application/json, text/event-stream"
    response = await _send(http, probe, stream=True)
    await response.aclose()
    return response.headers.get("www-authenticate") if response.status_code == 401 else None


def challenge_field(header: str | None, name: str) -> str | None:
    """One parameter of a `WWW-Authenticate: Bearer ...` value (quoted or not)."""
    if not header:
        return None
    fake = httpx2.Response(401, headers={"www-authenticate": header})
    from mcp.client.auth.utils import extract_field_from_www_auth

    return extract_field_from_www_auth(fake, name)


def _pick_issuer(servers: list[str], pinned: str | None) -> str | None:
    if pinned is not None:
        if servers and pinned.rstrip("/") not in {s.rstrip("/") for s in servers}:
            raise FlowError(f"the upstream does not name the configured issuer {pinned}")
        return pinned
    return servers[0] if servers else None


async def register(
    http: httpx2.AsyncClient, discovery: Discovery, config: UpstreamOAuth, redirect_uri: str
) -> OAuthClientInformationFull:
    """The pre-registered client when configured, else RFC 7591 dynamic registration."""
    if config.client_id is not None:
        method = (
            "private_key_jwt"
            if config.private_key
            else "client_secret_basic"
            if config.client_secret
            else "none"
        )
        return OAuthClientInformationFull(
            client_id=config.client_id,
            client_secret=config.client_secret,
            redirect_uris=[redirect_uri],  # type: ignore[list-item]
            token_endpoint_auth_method=method,
        )
    metadata_url = config.client_metadata_url
    if metadata_url is not None and should_use_client_metadata_url(discovery.metadata, metadata_url):
        return create_client_info_from_metadata_url(metadata_url, redirect_uris=[redirect_uri])  # type: ignore[list-item]
    if discovery.metadata.registration_endpoint is None:
        raise FlowError('the authorization server offers no dynamic registration: configure "clientId"')
    grants = ["authorization_code", "refresh_token"]
    metadata = OAuthClientMetadata(
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        client_name=config.client_name,
        grant_types=grants,
        token_endpoint_auth_method="none",
        scope=config.scope,
    )
    request = create_client_registration_request(discovery.metadata, metadata, "")
    try:
        return await handle_registration_response(await _send(http, request))
    except OAuthRegistrationError as exc:
        raise FlowError(f"dynamic client registration failed: {str(exc)[:200]}") from None


@dataclass(frozen=True, slots=True)
class Authorization:
    """A started authorization-code login: the URL to open, and what finishing it needs."""

    url: str
    state: str
    verifier: str


def authorization(
    discovery: Discovery, client: OAuthClientInformationFull, redirect_uri: str, scope: str | None
) -> Authorization:
    """The authorization URL with PKCE (S256), `state` and the RFC 8707 `resource`."""
    pkce = PKCEParameters.generate()
    state = secrets.token_urlsafe(32)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.code_challenge,
        "code_challenge_method": "S256",
        "resource": discovery.resource,
    }
    if scope:
        params["scope"] = scope
    endpoint = str(discovery.metadata.authorization_endpoint)
    separator = "&" if urlsplit(endpoint).query else "?"
    return Authorization(f"{endpoint}{separator}{urlencode(params)}", state, pkce.code_verifier)


def check_iss(discovery: Discovery, iss: str | None) -> None:
    """RFC 9207: the authorization response's `iss` must be the server the request went to."""
    _checked(validate_authorization_response_iss, iss, discovery.metadata)


async def token_request(
    http: httpx2.AsyncClient,
    discovery: Discovery,
    client: OAuthClientInformationFull,
    form: dict[str, str],
    config: UpstreamOAuth | None = None,
) -> OAuthToken:
    """POST the token endpoint with the client's authentication and the resource indicator."""
    data = {**form, "resource": discovery.resource}
    headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    if client.token_endpoint_auth_method == "private_key_jwt" and config is not None and config.private_key:
        data.update(client_id=client.client_id, **client_assertion(discovery, client.client_id, config))
    elif client.client_secret and client.token_endpoint_auth_method != "client_secret_post":
        pair = f"{_form_quote(client.client_id)}:{_form_quote(client.client_secret)}"
        headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        data["client_id"] = client.client_id
        if client.client_secret:
            data["client_secret"] = client.client_secret
    request = httpx2.Request("POST", str(discovery.metadata.token_endpoint), data=data, headers=headers)
    response = await _send(http, request)
    body = await response.aread()
    if response.status_code != 200:
        error = challenge_error(body)
        raise FlowError(
            f"the token endpoint refused the {form['grant_type']} grant (HTTP {response.status_code}{error})"
        )
    try:
        return OAuthToken.model_validate_json(body)
    except ValueError:
        raise FlowError("the token endpoint answered an invalid token response") from None


def client_assertion(discovery: Discovery, client_id: str, config: UpstreamOAuth) -> dict[str, str]:
    """RFC 7523 `private_key_jwt`: a short-lived JWT naming the client, for the issuer, signed by its key."""
    import jwt

    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": str(discovery.metadata.issuer),
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
    }
    try:
        assertion = jwt.encode(claims, config.private_key or "", algorithm=config.signing_algorithm)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise FlowError(f"cannot sign the client assertion: {type(exc).__name__}") from None
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}


def challenge_error(body: bytes) -> str:
    """`: <error>` from an OAuth error body (the code only: descriptions may echo what was sent)."""
    import orjson

    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return f": {error}" if isinstance(error, str) and error.isprintable() and len(error) < 64 else ""


def expires_at(token: OAuthToken) -> float | None:
    return None if token.expires_in is None else time.time() + int(token.expires_in)


def _form_quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


async def _send(
    http: httpx2.AsyncClient, request: httpx2.Request, *, stream: bool = False
) -> httpx2.Response:
    """Send; unless `stream`, the body is read here, at most MAX_BODY_BYTES (servers are hostile too)."""
    where = request.url.copy_with(query=None)
    try:
        response = await http.send(request, stream=True)
        if stream:
            return response
        try:
            body = await _capped(response)
        finally:
            await response.aclose()
    except httpx2.HTTPError as exc:
        raise FlowError(f"cannot reach {where}: {type(exc).__name__}") from None
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in DECODED_HEADERS]
    return httpx2.Response(response.status_code, headers=headers, content=body, request=request)


async def _capped(response: httpx2.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise FlowError(
                f"{response.request.url.copy_with(query=None)}: larger than {MAX_BODY_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _checked(check: Any, *args: Any) -> None:
    try:
        check(*args)
    except (OAuthFlowError, OAuthTokenError) as exc:
        raise FlowError(str(exc)) from None
