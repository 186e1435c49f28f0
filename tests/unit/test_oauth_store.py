"""The upstream OAuth pieces without sockets: the encrypted store, the server `oauth` config, CLI text."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from mcpmux.config.model import TokenStoreConfig
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError
from mcpmux.oauth.commands import describe, pasted
from mcpmux.oauth.store import StoreError, TokenStore


def store(tmp_path: Path, key: str | None = None) -> TokenStore:
    environ = {"MCPMUX_TOKEN_KEY": key} if key else {}
    return TokenStore(TokenStoreConfig(path=str(tmp_path / "t.enc")), environ)


def test_the_store_is_encrypted_private_and_needs_the_same_key(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    store(tmp_path, key).update("up", tokens={"access_token": "AT-secret", "refresh_token": "RT-secret"})
    raw = (tmp_path / "t.enc").read_bytes()
    assert b"AT-secret" not in raw and b"RT-secret" not in raw
    assert stat.S_IMODE((tmp_path / "t.enc").stat().st_mode) == 0o600
    assert store(tmp_path, key).record("up")["tokens"]["access_token"] == "AT-secret"
    with pytest.raises(StoreError, match="wrong key") as info:
        store(tmp_path, Fernet.generate_key().decode()).record("up")
    assert "secret" not in str(info.value)
    with pytest.raises(StoreError, match="Fernet key"):
        store(tmp_path, "not-a-key").record("up")


def test_without_a_key_in_the_environment_a_private_key_file_is_made_and_reused(tmp_path: Path) -> None:
    store(tmp_path).update("up", scope="a")
    key_file = tmp_path / "t.enc.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert store(tmp_path).record("up") == {"scope": "a"}
    assert store(tmp_path, key_file.read_text().strip()).record("up") == {"scope": "a"}


def test_updates_keep_other_fields_and_servers_and_none_removes(tmp_path: Path) -> None:
    s = store(tmp_path, Fernet.generate_key().decode())
    s.update("a", scope="x", tokens={"access_token": "1"})
    s.update("b", scope="y")
    s.update("a", tokens=None)
    assert s.load()["servers"] == {"a": {"scope": "x"}, "b": {"scope": "y"}}


def load(server: dict[str, Any], **proxy: Any) -> Any:
    text = json.dumps({"mcpProxy": proxy, "mcpServers": {"up": server}})
    return parse_config(text, "/etc/mcpmux/c.json", environ={}, expand_env=False)[0]


def test_server_oauth_config_and_the_store_next_to_the_config() -> None:
    config = load(
        {
            "url": "https://up.example.com/mcp",
            "oauth": {"clientId": "id", "clientSecret": "s3", "scope": "a b"},
        },
        tokenStore={"path": "state/tokens.enc", "keyEnv": "K"},
    )
    oauth = config.servers["up"].oauth
    assert (oauth.grant, oauth.client_id, oauth.scope) == ("authorization_code", "id", "a b")
    assert "s3" not in repr(config)
    assert config.token_store == TokenStoreConfig("/etc/mcpmux/state/tokens.enc", "K", None)
    assert load({"url": "https://up.example.com/mcp"}).token_store.path == "/etc/mcpmux/mcpmux-tokens.enc"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"command": "x", "oauth": {}}, "mcpServers.up.oauth: only for sse and streamable-http"),
        ({"url": "https://u/mcp", "oauth": {"grant": "password"}}, "mcpServers.up.oauth.grant: expected"),
        ({"url": "https://u/mcp", "oauth": {"grant": "client_credentials"}}, 'needs "clientId" and'),
        ({"url": "https://u/mcp", "oauth": {"clientSecret": "s"}}, 'oauth.clientSecret: needs "clientId"'),
        (
            {"url": "https://u/mcp", "oauth": {"clientMetadataUrl": "http://x/c.json"}},
            "an https URL with a path",
        ),
    ],
)
def test_bad_server_oauth_names_its_path(server: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(server)
    assert expected in str(info.value)


def test_status_lines_never_show_tokens() -> None:
    record = {
        "tokens": {"access_token": "AT", "refresh_token": "RT", "expires_at": 1.0, "scope": "mcp"},
        "issuer": "https://as",
        "client": {"client_id": "c", "client_secret": "CS"},
    }
    line = describe(record, "authorization_code")
    assert line == "token expired; refreshable; scope 'mcp'; issuer https://as"
    assert describe({}, "authorization_code") == "not logged in"
    assert describe({"pending": {"state": "s"}}, "authorization_code") == "login started, not finished"


def test_a_pasted_redirect_or_bare_code() -> None:
    assert pasted("http://h/_oauth/callback?code=C&state=S&iss=I", "P") == ("C", "S", "I")
    assert pasted("C0de", "P") == ("C0de", "P", None)
    with pytest.raises(Exception, match="refused"):
        pasted("http://h/cb?error=access_denied", "P")


def test_private_key_jwt_from_a_pem_file_signs_a_short_lived_assertion_for_the_issuer(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from mcp.shared.auth import OAuthMetadata

    from mcpmux.oauth.flow import JWT_BEARER, Discovery, client_assertion

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "key.pem").write_bytes(pem)
    oauth_spec = {
        "grant": "client_credentials",
        "clientId": "m2m",
        "privateKeyFile": str(tmp_path / "key.pem"),
        "signingAlgorithm": "ES256",
    }
    config = load({"url": "https://up.example.com/mcp", "oauth": oauth_spec})
    oauth = config.servers["up"].oauth
    assert "PRIVATE KEY" not in repr(config)
    metadata = OAuthMetadata.model_validate(
        {
            "issuer": "https://as.example.com",
            "authorization_endpoint": "https://as.example.com/a",
            "token_endpoint": "https://as.example.com/t",
        }
    )
    discovery = Discovery("https://up.example.com/mcp", metadata)
    form = client_assertion(discovery, "m2m", oauth)
    assert form["client_assertion_type"] == JWT_BEARER
    claims = jwt.decode(
        form["client_assertion"], key.public_key(), algorithms=["ES256"], audience=str(metadata.issuer)
    )
    assert claims["iss"] == claims["sub"] == "m2m" and claims["exp"] - claims["iat"] == 300 and claims["jti"]
