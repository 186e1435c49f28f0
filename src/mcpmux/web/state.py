"""The proxy's state as the web layer reads it: one immutable snapshot, replaced whole at start and reload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from ..config.model import ProxyConfig
from ..pinning.guard import PinGuard
from ..relay.route import Route
from ..upstream.runtime import ServerRuntime


@dataclass(frozen=True, slots=True)
class ProxyState:
    """The config, routes and runtimes serving now, and the pin guard (which outlives reloads).

    The faces and operator views read one of these per request and never change it; a reload makes a
    new one and publishes it by assignment, so a request sees the old state or the new, never a mix.
    """

    config: ProxyConfig
    routes: Mapping[str, Route]
    runtimes: Mapping[str, ServerRuntime]
    pins: PinGuard

    @classmethod
    def of(
        cls,
        config: ProxyConfig,
        routes: Mapping[str, Route],
        runtimes: Mapping[str, ServerRuntime],
        pins: PinGuard,
    ) -> ProxyState:
        """A snapshot of these (the mappings copied, read-only)."""
        return cls(config, MappingProxyType(dict(routes)), MappingProxyType(dict(runtimes)), pins)


class StateSource(Protocol):
    """Who publishes the state (the proxy): the web layer reads `state`, which is replaced, never mutated."""

    @property
    def state(self) -> ProxyState: ...


__all__ = ["ProxyState", "StateSource"]
