"""A small real OAuth 2.1 authorization server on 127.0.0.1 for the tests: RFC 8414 metadata, a JWKS,
DCR, authorization code + PKCE (auto-approved), refresh, client credentials and introspection; its
access tokens are RS256/ES256 JWTs signed with real keys (PyJWT + cryptography)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import bound_socket

START_SECONDS = 10.0


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk: dict[str, Any] = orjson.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(kid: str, alg: str = "RS256") -> SigningKey:
    if alg.startswith("ES"):
        return SigningKey(kid, alg, ec.generate_private_key(ec.SECP256R1()))
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class AuthServer:
    """State and behaviour; `serve()` runs it. Tests change `keys`, `published`, `token_ttl` freely."""

    issuer: str = ""
    keys: dict[str, SigningKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    token_ttl: int = 300
    jwks_fetches: int = 0
    introspections: int = 0
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    introspection_client: tuple[str, str] = ("mcpmux", "introspection-secret")
    metadata_padding: int = 0  # bytes of junk in the metadata document (a hostile server)

    def add_key(self, kid: str, alg: str = "RS256", *, publish: bool = True) -> SigningKey:
        key = self.keys[kid] = new_key(kid, alg)
        if publish:
            self.published.append(kid)
        return key

    def mint(self, claims: dict[str, Any] | None = None, *, kid: str | None = None, **header: Any) -> str:
        """A signed access token: iss, sub, exp, iat defaults, then `claims` (a None value drops one)."""
        key = self.keys[kid or self.published[0]]
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": "alice",
            "iat": now,
            "exp": now + self.token_ttl,
            **(claims or {}),
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": key.kid, **header}
        return jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)

    def register_client(self, secret: bool = False, **metadata: Any) -> dict[str, Any]:
        client = {
            **metadata,
            "client_id": secrets.token_hex(8),
            "client_id_issued_at": int(time.time()),
            "token_endpoint_auth_method": "client_secret_post" if secret else "none",
        }
        if secret:
            client["client_secret"] = secrets.token_hex(16)
        self.clients[client["client_id"]] = client
        return client

    # -- HTTP ------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()} if body[:1] != b"{" else {}
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, payload, extra = self.route(scope["path"], query, form, headers, body)
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        out = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": raw})

    def route(
        self, path: str, query: dict[str, str], form: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Any:
        if path == "/.well-known/oauth-authorization-server":
            return 200, self.metadata(), []
        if path == "/jwks":
            self.jwks_fetches += 1
            return 200, {"keys": [self.keys[kid].public_jwk() for kid in self.published]}, []
        if path == "/register":
            return 201, self.register_client(**orjson.loads(body)), []
        if path == "/authorize":
            return self.authorize(query)
        if path == "/token":
            self.token_requests.append(form)
            return self.token(form, headers)
        if path == "/introspect":
            return self.introspect(form, headers)
        return 404, {"error": "not_found"}, []

    def metadata(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "registration_endpoint": f"{base}/register",
            "jwks_uri": f"{base}/jwks",
            "introspection_endpoint": f"{base}/introspect",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "authorization_response_iss_parameter_supported": True,
            **({"x_padding": "x" * self.metadata_padding} if self.metadata_padding else {}),
        }

    def authorize(self, query: dict[str, str]) -> Any:
        client = self.clients.get(query.get("client_id", ""))
        if client is None or query.get("code_challenge_method") != "S256":
            return 400, {"error": "invalid_request"}, []
        code = secrets.token_urlsafe(16)
        self.codes[code] = dict(query)
        target = f"{query['redirect_uri']}?" + urlencode(
            {"code": code, "state": query.get("state", ""), "iss": self.issuer}
        )
        return 302, b"", [(b"location", target.encode())]

    def token(self, form: dict[str, str], headers: dict[str, str]) -> Any:
        grant = form.get("grant_type")
        client_id, secret = client_credentials(form, headers)
        client = self.clients.get(client_id or "")
        if client is None or client.get("client_secret") not in (None, secret):
            return 401, {"error": "invalid_client"}, []
        if grant == "authorization_code":
            request = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if (
                request is None
                or request.get("code_challenge") != challenge
                or request["client_id"] != client_id
            ):
                return 400, {"error": "invalid_grant"}, []
            return 200, self.issue(client_id, request.get("scope", ""), request.get("resource")), []
        if grant == "refresh_token":
            request = self.refresh_tokens.get(form.get("refresh_token", ""))
            if request is None:
                return 400, {"error": "invalid_grant"}, []
            return (
                200,
                self.issue(client_id, request["scope"], form.get("resource") or request["resource"]),
                [],
            )
        if grant == "client_credentials" and client.get("client_secret"):
            return 200, self.issue(client_id, form.get("scope", ""), form.get("resource"), refresh=False), []
        return 400, {"error": "unsupported_grant_type"}, []

    def issue(
        self, client_id: str | None, scope: str, resource: str | None, *, refresh: bool = True
    ) -> dict[str, Any]:
        access = self.mint(
            {"aud": resource, "scope": scope or None, "client_id": client_id, "sub": client_id}
        )
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
        }
        if scope:
            answer["scope"] = scope
        if refresh:
            token = secrets.token_urlsafe(24)
            self.refresh_tokens[token] = {"scope": scope, "resource": resource}
            answer["refresh_token"] = token
        return answer

    def introspect(self, form: dict[str, str], headers: dict[str, str]) -> Any:
        self.introspections += 1
        if client_credentials(form, headers) != self.introspection_client:
            return 401, {"error": "invalid_client"}, []
        payload = self.opaque.get(form.get("token", ""))
        return 200, {"active": True, **payload} if payload else {"active": False}, []


def client_credentials(form: dict[str, str], headers: dict[str, str]) -> tuple[str | None, str | None]:
    basic = headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")


@contextmanager
def serving(app: Any, sock: Any, what: str, *, lifespan: str = "off") -> Iterator[None]:
    """Serve an ASGI app with uvicorn in a thread on a bound socket; stopped (and joined) on exit."""
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    try:
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.01)
        yield
    finally:
        uv.should_exit = True
        thread.join(START_SECONDS)
        sock.close()


@contextmanager
def running_auth_server(*algs: str) -> Iterator[AuthServer]:
    """The server on an ephemeral 127.0.0.1 port with one key per algorithm (default RS256 and ES256)."""
    server = AuthServer()
    for index, alg in enumerate(algs or ("RS256", "ES256")):
        server.add_key(f"key-{index}-{alg}", alg)
    sock = bound_socket()
    server.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with serving(server, sock, "the test authorization server"):
        yield server
