"""The root of a running proxy: one task group owning the HTTP server and every server's supervisor."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .config.model import ProxyConfig
from .relay.merged_route import MergedRoute
from .relay.route import Route, reap_idle_sessions
from .relay.server_route import ServerRoute
from .upstream.runtime import ServerRuntime
from .web.app import ProxyApp
from .web.server import HttpServer

log = logging.getLogger("mcpmux")

SHUTDOWN_GRACE_SECONDS = 5.0


class FatalStartupError(Exception):
    """A server marked panicIfInvalid could not be started."""


class Proxy:
    """The running configuration: a runtime per enabled server and the routes clients reach."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.runtimes: dict[str, ServerRuntime] = {}
        self.routes: dict[str, Route] = {}
        for name, server in config.servers.items():
            if server.disabled:
                log.info("%s Disabled", name, extra={"server": name})
                continue
            runtime = ServerRuntime(server, config)
            self.runtimes[name] = runtime
            self.routes[name] = ServerRoute(runtime, config)
        self.server_routes = list(self.routes.values())
        if config.merged.enabled and self.runtimes:
            members = [(rt, None) for rt in self.runtimes.values()]
            self.routes[""] = MergedRoute(
                "", members, config, config.merged.auth_tokens, config.merged.log_enabled, config.name
            )
        for group in config.groups.values():
            members = [(self.runtimes[m.server], m.tool_filter) for m in group.members if m.server in self.runtimes]
            self.routes[group.name] = MergedRoute(
                group.name, members, config, group.auth_tokens, group.log_enabled, group.name
            )
        self.fatal: str | None = None

    async def start_servers(self, tg: TaskGroup) -> None:
        """Start every server concurrently; return when each has connected or failed once."""

        async def start_one(runtime: ServerRuntime) -> None:
            ok = await tg.start(runtime.run)
            if not ok and runtime.options.panic_if_invalid:
                self.fatal = f"{runtime.name}: {runtime.last_error} (panicIfInvalid is set)"
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as starters:
            for runtime in self.runtimes.values():
                starters.start_soon(start_one, runtime)
        if self.fatal is None:
            base = self.config.base_url.rstrip("/")
            for route in self.routes.values():
                if route.name:
                    log.info("%s Handling requests at %s/%s/", route.name, base, route.name)
                else:
                    log.info("All servers merged at %s/mcp and %s/sse", base, base)
            log.info("All clients initialized")

    async def close_sessions(self) -> None:
        for route in self.routes.values():
            for client in list(route.sessions.values()):
                await route.close_session(client)


def parse_addr(addr: str) -> tuple[str, int]:
    """`:9090` -> all interfaces; `host:port`; `[v6]:port`; empty -> port 80 (as the original)."""
    if not addr:
        return "0.0.0.0", 80
    host, _, port = addr.rpartition(":")
    if not _:
        return addr, 80
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def open_listener(addr: str, listen_fd: int | None) -> socket.socket:
    if listen_fd is not None:
        sock = socket.socket(fileno=listen_fd)
        sock.setblocking(False)
        return sock
    host, port = parse_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(
    config: ProxyConfig,
    *,
    listen_fd: int | None = None,
    reload_config: Callable[[], ProxyConfig] | None = None,
    task_status: TaskStatus[Proxy] = anyio.TASK_STATUS_IGNORED,
) -> int:
    """Run the proxy until SIGINT/SIGTERM (exit code 0) or a fatal startup error (exit code 1)."""
    sock = open_listener(config.addr, listen_fd)
    proxy = Proxy(config)
    app = ProxyApp(proxy)
    http = HttpServer(app, sock, graceful_seconds=SHUTDOWN_GRACE_SECONDS)
    async with anyio.create_task_group() as root:
        await root.start(http.serve)
        root.start_soon(reap_idle_sessions, lambda: list(proxy.routes.values()))
        log.info("Listening on %s (%s)", _sock_name(sock), config.base_url)
        root.start_soon(_watch_signals, root, proxy, http)
        task_status.started(proxy)
        await proxy.start_servers(root)
    if proxy.fatal:
        log.error("Exiting: %s", proxy.fatal)
        return 1
    return 0


async def _watch_signals(root: TaskGroup, proxy: Proxy, http: HttpServer) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("Received %s, shutting down", signal.Signals(signum).name)
            break
    await shutdown(root, proxy, http)


async def shutdown(root: TaskGroup, proxy: Proxy, http: HttpServer) -> None:
    """Stop accepting, end client sessions, let in-flight requests finish, then stop every upstream."""
    with anyio.move_on_after(SHUTDOWN_GRACE_SECONDS + 2):
        await proxy.close_sessions()
        await http.stop()
    root.cancel_scope.cancel()


def _sock_name(sock: socket.socket) -> str:
    name: Any = sock.getsockname()
    return f"{name[0]}:{name[1]}"


def run_proxy(
    config: ProxyConfig,
    *,
    reload_config: Callable[[], ProxyConfig] | None = None,
    listen_fd: int | None = None,
) -> int:
    """Run the proxy in a fresh event loop (uvloop when available); the process exit code."""
    backend_options: dict[str, Any] = {}
    if sys.platform != "win32":
        try:
            import uvloop  # noqa: F401

            backend_options["use_uvloop"] = True
        except ImportError:
            pass
    try:
        return anyio.run(
            lambda: serve(config, listen_fd=listen_fd, reload_config=reload_config),
            backend="asyncio",
            backend_options=backend_options,
        )
    except KeyboardInterrupt:
        return 0
