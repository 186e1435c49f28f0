"""Serving a Proxy: the listener, the root task group, signals, cluster mode's join, graceful shutdown."""

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
from .proxy import CLOSE_SESSIONS_SECONDS, Proxy, Reloader
from .relay.route import reap_idle_sessions
from .web.app import ProxyApp
from .web.pins import PinsEndpoints
from .web.server import HttpServer

log = logging.getLogger("mcpmux")

SHUTDOWN_GRACE_SECONDS = 5.0  # in-flight requests may finish within this on SIGTERM
# The HTTP server's own limit for requests under way; ours (drain, stop upstreams, end sessions) comes first.
HTTP_GRACE_SECONDS = 15.0


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
    lock_path: str | None = None,
    task_status: TaskStatus[Proxy] = anyio.TASK_STATUS_IGNORED,
) -> int:
    """Run the proxy until SIGINT/SIGTERM (exit code 0) or a fatal startup error (exit code 1).

    With `reload_config`, a change of the config file or SIGHUP applies the new config.
    """
    sock = open_listener(config.addr, listen_fd)
    proxy = Proxy(config, lock_path)
    app = ProxyApp(proxy)
    app.tables.append(PinsEndpoints(app).table)
    app.rebuild()
    http = HttpServer(app, sock, graceful_seconds=HTTP_GRACE_SECONDS, limits=config.http)
    reloader = Reloader(proxy, reload_config) if reload_config is not None else None
    cluster = await _join_cluster(proxy, app, sock, reloader) if config.cluster is not None else None
    if cluster is False:
        return 1
    async with anyio.create_task_group() as root:
        if cluster is not None:
            await root.start(cluster.run)
        await root.start(http.serve)
        root.start_soon(reap_idle_sessions, lambda: list(proxy.routes.values()))
        log.info("Listening on %s (%s)", _sock_name(sock), config.base_url)
        root.start_soon(_watch_signals, root, proxy, http, reloader)
        task_status.started(proxy)
        await proxy.start_servers(root)
        _start_watchers(root, proxy, reloader)
    if proxy.fatal:
        log.error("Exiting: %s", proxy.fatal)
        return 1
    return 0


def _start_watchers(root: TaskGroup, proxy: Proxy, reloader: Reloader | None) -> None:
    """Once the servers started (and no fatal error or shutdown came first): watch the config and pins."""
    if proxy.fatal is not None or proxy.stopping:
        return
    if reloader is not None:
        root.start_soon(reloader.watch)
    root.start_soon(proxy.pins.watch)


async def _join_cluster(proxy: Proxy, app: ProxyApp, sock: socket.socket, reloader: Reloader | None) -> Any:
    """Cluster mode's node, registered in Redis and hooked into the app (`/_cluster` too); False (logged)
    when Redis cannot be reached."""
    from .cluster.node import Cluster, ClusterError, advertised_url  # redis is imported only here

    config = proxy.config
    assert config.cluster is not None
    cluster = Cluster(config.cluster, advertised_url(config.cluster, sock), config.max_request_bytes)
    cluster.sessions = lambda: sum(len(route.sessions) for route in proxy.routes.values())
    cluster.ready = lambda: all(rt.available for rt in proxy.runtimes.values())
    cluster.config = lambda: proxy.config
    try:
        await cluster.connect()
    except ClusterError as exc:
        log.error("Exiting: %s", exc)
        return False
    if reloader is not None:  # a reload on one replica is a reload on all
        reloader.announce = cluster.announce_reload
        cluster.on_reload = lambda why: reloader.reload(why, announce=False)
    app.cluster = cluster
    app.tables.append(cluster.paths)
    app.rebuild()
    return cluster


async def _watch_signals(root: TaskGroup, proxy: Proxy, http: HttpServer, reloader: Reloader | None) -> None:
    """SIGTERM/SIGINT: shut down gracefully (a second one: at once). SIGHUP: reload the config."""
    stopping = False
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                if reloader is not None and not stopping:
                    root.start_soon(reloader.reload, "SIGHUP")
            elif not stopping:
                stopping = True
                log.info("Received %s, shutting down", name)
                root.start_soon(shutdown, root, proxy, http)
            else:
                log.warning("Received %s again, stopping now", name)
                root.cancel_scope.cancel()


async def shutdown(root: TaskGroup, proxy: Proxy, http: HttpServer) -> None:
    """Stop accepting, let in-flight requests finish (bounded), stop every upstream, end the sessions.

    Upstreams are stopped only once their replies are in (or the grace period is over): an SDK-based
    stdio server drops the requests still pending when its stdin closes.
    """
    proxy.stopping = True
    http.stop_accepting()
    await proxy.drain(SHUTDOWN_GRACE_SECONDS)
    if proxy.in_flight():
        log.warning(
            "%d request(s) still in flight after %gs; they get an error",
            proxy.in_flight(),
            SHUTDOWN_GRACE_SECONDS,
        )
    await proxy.stop_servers("mcpmux is shutting down")
    with anyio.move_on_after(CLOSE_SESSIONS_SECONDS):
        await proxy.close_sessions()
    with anyio.move_on_after(SHUTDOWN_GRACE_SECONDS + 1):
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
    lock_path: str | None = None,
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
            lambda: serve(config, listen_fd=listen_fd, reload_config=reload_config, lock_path=lock_path),
            backend="asyncio",
            backend_options=backend_options,
        )
    except KeyboardInterrupt:
        return 0
