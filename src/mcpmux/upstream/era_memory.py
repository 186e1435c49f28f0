"""The era a `protocol: auto` upstream was found to speak: kept by its runtime, and in a small state file
(`mcpmux-eras.json` beside the config) across restarts of mcpmux."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from ..config.loader import beside_config
from ..config.model import ProxyConfig, ServerConfig
from ..protocol.constants import MODERN_VERSION

log = logging.getLogger("mcpmux.upstream")

ERA_FILE = "mcpmux-eras.json"
HANDSHAKE = "handshake"
MAX_FILE_BYTES = 1 << 20  # a bigger file is not ours: ignored


def era_name(modern: bool) -> str:
    return MODERN_VERSION if modern else "the handshake era"


def transport_identity(server: ServerConfig) -> str:
    """A digest of what the server is (transport, URL without credentials or query, command, args, cwd):
    a remembered era is used only for the same server. Headers and env (where secrets live) are not in it."""
    url = urlsplit(server.url or "")
    where = f"{url.scheme}://{url.hostname or ''}:{url.port or ''}{url.path}" if server.url else ""
    parts = [server.transport, where, server.command or "", *server.args, server.cwd or ""]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


class EraFile:
    """The state file: `{"servers": {name: {"identity": digest, "era": "2026-07-28" | "handshake"}}}`.
    Unreadable or unwritable: mcpmux goes on with its in-memory answer (logged once)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._warned = False

    def _read(self) -> dict[str, Any]:
        try:
            if os.path.getsize(self.path) > MAX_FILE_BYTES:
                return {}
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        servers = data.get("servers") if isinstance(data, dict) else None
        return servers if isinstance(servers, dict) else {}

    def recall(self, name: str, identity: str) -> bool | None:
        entry = self._read().get(name)
        if not isinstance(entry, dict) or entry.get("identity") != identity:
            return None
        era = entry.get("era")
        return True if era == MODERN_VERSION else False if era == HANDSHAKE else None

    def store(self, name: str, identity: str, modern: bool | None) -> None:
        """Remember (or, with None, forget) the server's era: the file is replaced atomically."""
        servers = self._read()
        if modern is None:
            servers.pop(name, None)
        else:
            servers[name] = {"identity": identity, "era": MODERN_VERSION if modern else HANDSHAKE}
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, temporary = tempfile.mkstemp(prefix=".mcpmux-eras-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"servers": servers}, handle, indent=2, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot write %s (eras are kept in memory only): %s", self.path, exc.strerror)


class EraMemory:
    """`protocol: auto`: what the `server/discover` probe found (None: not probed yet). The server's
    runtime keeps one, so a restart of the upstream or of its connection, and every isolated session,
    reuse the answer; a reload that changes the server makes a new runtime. With a file, the answer is
    also remembered across restarts of mcpmux; a remembered answer that fails to connect is forgotten
    (`forget_if_remembered`), so the next attempt probes again (an upstream that changed its era)."""

    __slots__ = ("file", "identity", "modern", "name", "remembered")

    def __init__(self, name: str = "", file: EraFile | None = None, identity: str = "") -> None:
        self.name, self.file, self.identity = name, file, identity
        self.modern: bool | None = file.recall(name, identity) if file is not None else None
        self.remembered = self.modern is not None  # from the file, not yet confirmed by a connection

    async def settle(self, probe: Callable[[], Awaitable[bool]]) -> bool:
        """The era to speak: the known one, else what `probe()` finds (logged, and remembered)."""
        if self.modern is not None:
            if self.remembered:
                log.info("%s: the upstream speaks %s (remembered)", self.name, era_name(self.modern))
            return self.modern
        self.modern = modern = await probe()
        log.info("%s: the upstream speaks %s", self.name, era_name(modern))
        if self.file is not None:
            self.file.store(self.name, self.identity, modern)
        return modern

    def connected(self) -> None:
        """A connection in the known era worked: a remembered answer is confirmed."""
        self.remembered = False

    def forget_if_remembered(self) -> None:
        """A connection failed: a remembered (unconfirmed) era is dropped, so the next attempt probes."""
        if self.remembered:
            log.info("%s: the remembered era did not work; probing again", self.name)
            self.modern, self.remembered = None, False
            if self.file is not None:
                self.file.store(self.name, self.identity, None)


def spoken_era(server: ServerConfig, memory: EraMemory) -> str | None:
    """What the status views show: the era mcpmux speaks to the server (None: `auto`, not probed yet)."""
    protocol = server.options.protocol
    modern = protocol == MODERN_VERSION if protocol != "auto" else memory.modern
    return None if modern is None else MODERN_VERSION if modern else HANDSHAKE


def era_memory(server: ServerConfig, proxy: ProxyConfig) -> EraMemory:
    """The runtime's memory: backed by the state file beside the config for `protocol: auto` servers."""
    if server.options.protocol != "auto":
        return EraMemory(server.name)
    return EraMemory(server.name, EraFile(beside_config(proxy.source, ERA_FILE)), transport_identity(server))
