"""A server's own `oauth` (mcpmux logging in to an HTTP upstream) and `mcpProxy.tokenStore`."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcpmux.config.fields import Diagnostics, JsonObject, as_object, as_string
from mcpmux.config.model import TokenStoreConfig, UpstreamOAuth

UPSTREAM_OAUTH_KEYS = (
    *("grant", "clientId", "clientSecret", "scope", "redirectUri", "issuer", "clientName"),
    *("clientMetadataUrl", "privateKey", "privateKeyFile", "signingAlgorithm"),
)
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
TOKEN_STORE_KEYS = ("path", "keyEnv", "keyFile")
GRANTS = ("authorization_code", "client_credentials")
DEFAULT_STORE = "mcpmux-tokens.enc"
DEFAULT_KEY_ENV = "MCPMUX_TOKEN_KEY"


def as_upstream_oauth(diag: Diagnostics, path: str, value: Any) -> UpstreamOAuth:
    spec = as_object(diag, path, value, UPSTREAM_OAUTH_KEYS)
    if any(find_spec(module) is None for module in ("mcp", "cryptography")):
        raise diag.error(path, 'needs the mcp SDK and cryptography: pip install "mcpmux[oauth]"')
    grant = _grant(spec)
    client_id, secret, private_key = _client_credentials(spec, path, grant)
    return UpstreamOAuth(
        private_key=private_key,
        signing_algorithm=_signing_algorithm(spec),
        client_metadata_url=_client_metadata_url(spec),
        grant=grant,  # type: ignore[arg-type]
        client_id=client_id or None,
        client_secret=secret or None,
        scope=spec.read("scope", as_string) or None,
        redirect_uri=spec.read("redirectUri", as_string) or None,
        issuer=spec.read("issuer", as_string) or None,
        client_name=spec.read("clientName", as_string) or "mcpmux",
    )


def _grant(spec: JsonObject) -> str:
    grant = spec.read("grant", as_string) or "authorization_code"
    if grant not in GRANTS:
        raise spec.diag.error(spec.path_of("grant"), 'expected "authorization_code" or "client_credentials"')
    return grant


def _client_credentials(spec: JsonObject, path: str, grant: str) -> tuple[str | None, str | None, str | None]:
    """`clientId`, `clientSecret` and the private key: a secret or key needs the id beside it, and the
    client_credentials grant needs the id and one of them."""
    client_id = spec.read("clientId", as_string)
    secret = spec.read("clientSecret", as_string)
    private_key = _private_key(spec)
    if grant == "client_credentials" and not (client_id and (secret or private_key)):
        raise spec.diag.error(
            path, 'the client_credentials grant needs "clientId" and "clientSecret" or "privateKey"'
        )
    for key in ("clientSecret", "privateKey", "privateKeyFile"):
        if spec.has(key) and not client_id:
            raise spec.diag.error(spec.path_of(key), 'needs "clientId" beside it')
    return client_id, secret, private_key


def _signing_algorithm(spec: JsonObject) -> str:
    algorithm = spec.read("signingAlgorithm", as_string) or "RS256"
    if algorithm not in SIGNING_ALGORITHMS:
        raise spec.diag.error(
            spec.path_of("signingAlgorithm"), f"expected one of {', '.join(SIGNING_ALGORITHMS)}"
        )
    return algorithm


def _client_metadata_url(spec: JsonObject) -> str | None:
    metadata_url = spec.read("clientMetadataUrl", as_string) or None
    if metadata_url is not None and not _cimd_url(metadata_url):
        raise spec.diag.error(spec.path_of("clientMetadataUrl"), "expected an https URL with a path")
    return metadata_url


def _private_key(spec: JsonObject) -> str | None:
    """`privateKey` (PEM text, e.g. from an environment variable) or `privateKeyFile` (a PEM file)."""
    text = spec.read("privateKey", as_string)
    path = spec.read("privateKeyFile", as_string)
    if path is not None:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise spec.diag.error(spec.path_of("privateKeyFile"), f"cannot read it: {exc.strerror}") from None
    if text is not None and "PRIVATE KEY-----" not in text:
        raise spec.diag.error(spec.path_of("privateKey"), "expected a PEM private key")
    return text or None


def _cimd_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.netloc) and parts.path not in ("", "/")


def read_upstream_oauth(entry: JsonObject, transport: str) -> UpstreamOAuth | None:
    """The entry's `oauth`; only HTTP upstreams log in (stdio servers take credentials from `env`)."""
    oauth = entry.read("oauth", as_upstream_oauth)
    if oauth is not None and transport == "stdio":
        raise entry.diag.error(entry.path_of("oauth"), "only for sse and streamable-http servers")
    return oauth


def token_store(proxy: JsonObject | None) -> TokenStoreConfig:
    """`mcpProxy.tokenStore`; relative paths are relative to the config file's directory."""
    spec = proxy.object("tokenStore", TOKEN_STORE_KEYS) if proxy is not None else None
    base = Path(proxy.diag.source).parent if proxy is not None and "://" not in proxy.diag.source else Path()
    if spec is None:
        return TokenStoreConfig(path=str(base / DEFAULT_STORE))
    path = spec.read("path", as_string) or DEFAULT_STORE
    key_file = spec.read("keyFile", as_string)
    return TokenStoreConfig(
        path=str(base / Path(path).expanduser()),
        key_env=spec.read("keyEnv", as_string) or DEFAULT_KEY_ENV,
        key_file=None if key_file is None else str(base / Path(key_file).expanduser()),
    )
