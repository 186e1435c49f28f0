"""Upstream OAuth state (tokens, client registration, a pending login) in one file, encrypted at rest."""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from ..config.model import TokenStoreConfig

log = logging.getLogger("mcpmux.oauth")

MAX_STORE_BYTES = 4 * 1024 * 1024


class StoreError(Exception):
    """The token store cannot be read or written (wrong key, unreadable file); never names a secret."""


class TokenStore:
    """`{"servers": {name: record}}` as one Fernet token (AES-128-CBC + HMAC-SHA256) in a 0600 file.

    The key comes from the environment variable `key_env` (a Fernet key: 32 url-safe base64 bytes), else
    from `key_file` (default `<path>.key`), which is created with a new key when absent.
    """

    def __init__(self, config: TokenStoreConfig, environ: Mapping[str, str] | None = None) -> None:
        self.path = Path(config.path)
        self.key_file = Path(config.key_file or f"{config.path}.key")
        self.key_env = config.key_env
        self.environ = os.environ if environ is None else environ
        self._fernet: Fernet | None = None
        self._cache: tuple[int, dict[str, Any]] | None = None

    def _key(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(self._read_key())
        return self._fernet

    def _read_key(self) -> bytes:
        from_env = self.environ.get(self.key_env, "").strip()
        if from_env:
            return _checked_key(from_env.encode(), f"${self.key_env}")
        try:
            return _checked_key(self.key_file.read_bytes().strip(), str(self.key_file))
        except FileNotFoundError:
            pass
        key = Fernet.generate_key()
        _write_private(self.key_file, key + b"\n")
        log.warning(
            "OAuth token store: created the key file %s; keep it apart from %s (or set $%s)",
            self.key_file,
            self.path,
            self.key_env,
        )
        return key

    @property
    def version(self) -> int:
        """Changes whenever the file is written (by this process or another: `mcpmux auth login`)."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return 0
        return hash((status.st_mtime_ns, status.st_size, status.st_ino))

    def load(self) -> dict[str, Any]:
        """The whole store; decrypted once per version of the file. Callers must not change it."""
        version = self.version
        if self._cache is not None and self._cache[0] == version and version:
            return self._cache[1]
        data = self._read()
        self._cache = (version, data)
        return data

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"servers": {}}
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        if len(raw) > MAX_STORE_BYTES:
            raise StoreError(f"{self.path} is larger than {MAX_STORE_BYTES} bytes")
        try:
            data = orjson.loads(self._key().decrypt(raw.strip()))
        except InvalidToken:
            raise StoreError(
                f"cannot decrypt {self.path}: wrong key (${self.key_env} or {self.key_file})"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
            raise StoreError(f"{self.path} holds no token store")
        return data

    def record(self, server: str) -> dict[str, Any]:
        record = self.load()["servers"].get(server)
        return record if isinstance(record, dict) else {}

    def update(self, server: str, **fields: Any) -> dict[str, Any]:
        """Set (or with None, remove) fields of one server's record; returns the new record."""
        data = {**self.load(), "servers": dict(self.load()["servers"])}
        record = dict(data["servers"].get(server) or {})
        for key, value in fields.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        data["servers"][server] = record
        _write_private(self.path, self._key().encrypt(orjson.dumps(data)))
        self._cache = (self.version, data)
        return record


def _checked_key(key: bytes, where: str) -> bytes:
    try:
        if len(base64.urlsafe_b64decode(key)) == 32:
            return key
    except ValueError:
        pass
    raise StoreError(
        f"{where}: expected a Fernet key (32 url-safe base64 bytes; `mcpmux auth keygen` makes one)"
    )


def _write_private(path: Path, content: bytes) -> None:
    """Atomically replace `path` with `content`, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_stores: dict[TokenStoreConfig, TokenStore] = {}


def shared_store(config: TokenStoreConfig) -> TokenStore:
    """One store object per configuration in this process."""
    store = _stores.get(config)
    if store is None:
        store = _stores[config] = TokenStore(config)
    return store
