"""Start configured servers with the proxy's own upstream machinery, snapshot their catalogs, stop them."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from ..config.model import ProxyConfig
from ..core.pins import ServerPins, server_pins
from ..upstream.runtime import ServerRuntime


def runtime_pins(runtime: ServerRuntime) -> ServerPins:
    """The pins of what a runtime's primary session published when it last (re)loaded its catalog."""
    catalog = {"tools": runtime.tools, "prompts": runtime.prompts, "resourceTemplates": runtime.templates}
    return server_pins(catalog, runtime.instructions)


async def collect_pins(
    config: ProxyConfig, names: Sequence[str]
) -> tuple[dict[str, ServerPins], dict[str, str]]:
    """Connect to each named server (lazyStart ignored), read every page of its lists, and stop it.

    Returns the pins of the servers that connected and, for the others, why they did not.
    """
    pins: dict[str, ServerPins] = {}
    errors: dict[str, str] = {}

    async def one(runtime: ServerRuntime) -> None:
        runtime.want()  # a lazyStart server starts at once here
        try:
            if await tg.start(runtime.run):
                pins[runtime.name] = runtime_pins(runtime)
            else:
                errors[runtime.name] = runtime.last_error or "could not connect"
        finally:
            await runtime.stop("the catalog was read")

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(one, ServerRuntime(config.servers[name], config))
    return pins, errors
