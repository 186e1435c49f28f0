"""The composition root: the running config, a runtime per server, the routes clients reach, reloads."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .config.model import ProxyConfig, ServerConfig
from .core.redact import Redactor
from .errors import ConfigError
from .logs import set_redactor
from .pinning.guard import PinGuard
from .pinning.lockfile import default_lock_path
from .relay.merged_route import MergedRoute
from .relay.mrtr import use_state_keys
from .relay.route import Route
from .relay.server_route import ServerRoute
from .reload import ConfigDiff, diff_configs, file_signature, watch_file, watchable
from .upstream.runtime import ServerRuntime
from .web.state import ProxyState

log = logging.getLogger("mcpmux")

RETIRE_GRACE_SECONDS = 5.0  # in-flight requests of a server a reload removes or changes may finish
CLOSE_SESSIONS_SECONDS = 2.0

MergedSettings = tuple[Any, ...]


class FatalStartupError(Exception):
    """A server marked panicIfInvalid could not be started."""


class Proxy:
    """The running configuration: a runtime per enabled server and the routes clients reach.

    `config`, `runtimes` and `routes` are replaced by assignment on reload (readers iterate snapshots).
    """

    def __init__(self, config: ProxyConfig, lock_path: str | None = None) -> None:
        set_redactor(Redactor.for_config(config))  # from the first log line on (the app renews it on reload)
        use_state_keys(config.request_state_keys)
        self.config = config
        self.runtimes: dict[str, ServerRuntime] = {}
        self.routes: dict[str, Route] = {}
        self.fatal: str | None = None
        self.stopping = False
        self._tg: TaskGroup | None = None
        self._reload_lock: anyio.Lock | None = None
        self._merged_settings: dict[str, MergedSettings] = {}
        for name, server in config.servers.items():
            if server.disabled:
                log.info("<%s> Disabled", name, extra={"server": name})
                continue
            self.runtimes[name] = ServerRuntime(server, config)
        server_routes: dict[str, Route] = {
            name: ServerRoute(rt, config) for name, rt in self.runtimes.items()
        }
        self.pins = PinGuard(lock_path or default_lock_path(config.source))
        self.pins.set_runtimes(self.runtimes.values())
        self.routes = {**server_routes, **self._merged_routes(config, self.runtimes)}
        self.state = ProxyState.of(config, self.routes, self.runtimes, self.pins)

    def publish(self) -> None:
        """Give the web layer the state serving from now on: one snapshot, swapped by assignment."""
        self.state = ProxyState.of(self.config, self.routes, self.runtimes, self.pins)

    # -- merged endpoint and groups ---------------------------------------------------------------

    def _merged_routes(
        self, config: ProxyConfig, runtimes: dict[str, ServerRuntime], current: dict[str, Route] | None = None
    ) -> dict[str, Route]:
        """The merged endpoint and the groups; on reload, a route whose own settings did not change is
        kept (its sessions too) and given its new members."""
        wanted = merged_routes_wanted(config, runtimes)
        routes: dict[str, Route] = {}
        for key, (settings, members) in wanted.items():
            tokens, log_enabled, display_name, _separator, catalog = settings
            route = (current or {}).get(key)
            if isinstance(route, MergedRoute) and self._merged_settings.get(key) == settings:
                route.set_members(members, config, tokens)
            else:
                route = MergedRoute(key, members, config, tokens, log_enabled, display_name, catalog)
            routes[key] = route
        self._merged_settings = {key: settings for key, (settings, _members) in wanted.items()}
        return routes

    # -- starting --------------------------------------------------------------------------------

    async def start_servers(self, tg: TaskGroup) -> None:
        """Start every server concurrently; return when each has connected or failed once."""
        self._tg = tg
        await self._start(list(self.runtimes.values()), at_startup=True)
        if self.fatal is None and not self.stopping:
            self._log_routes(self.routes.values())
            log.info("All clients initialized")

    async def _start(self, runtimes: list[ServerRuntime], *, at_startup: bool) -> None:
        tg = self._tg
        assert tg is not None

        async def start_one(runtime: ServerRuntime) -> None:
            ok = await tg.start(runtime.run)
            if not ok and at_startup and runtime.options.panic_if_invalid and not runtime.stopping:
                self.fatal = f"{runtime.name}: {runtime.last_error} (panicIfInvalid is set)"
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as starters:
            for runtime in runtimes:
                starters.start_soon(start_one, runtime)

    def _log_routes(self, routes: Any) -> None:
        base = self.config.base_url.rstrip("/")
        for route in routes:
            if route.name:
                log.info("<%s> Handling requests at %s/%s/", route.name, base, route.name)
            else:
                log.info("All servers merged at %s/mcp and %s/sse", base, base)

    # -- stopping --------------------------------------------------------------------------------

    def in_flight(self) -> int:
        return sum(runtime.in_flight() for runtime in self.runtimes.values())

    async def drain(self, timeout_seconds: float) -> None:
        """Let requests in flight upstream finish (bounded)."""
        async with anyio.create_task_group() as tg:
            for runtime in self.runtimes.values():
                tg.start_soon(runtime.drain, timeout_seconds)

    async def stop_servers(self, reason: str) -> None:
        """Stop every upstream (stdio: stdin closed, then SIGTERM, then SIGKILL to the group)."""
        async with anyio.create_task_group() as tg:
            for runtime in self.runtimes.values():
                tg.start_soon(runtime.stop, reason)

    async def close_sessions(self) -> None:
        for route in list(self.routes.values()):
            await close_route_sessions(route)

    # -- hot reload ------------------------------------------------------------------------------

    async def reload(self, new: ProxyConfig) -> ConfigDiff:
        """Apply a new config: start added servers, stop removed ones, restart changed ones.

        Unchanged servers keep their runtime, route and client sessions. Routes are rebuilt, so the
        merged endpoint and groups see the new set of servers.
        """
        if self._reload_lock is None:
            self._reload_lock = anyio.Lock()
        async with self._reload_lock:
            old = self.config
            diff = diff_configs(old, new)
            for key in diff.startup_only:
                log.warning("Reload: %s changed; restart mcpmux to apply it", key)
            self._log_newly_disabled(old, new)
            await self._retire(diff)
            runtimes = self._next_runtimes(new, diff)
            fresh = [runtimes[name] for name in (*diff.added, *diff.changed)]
            old_routes = self.routes
            server_routes = self._server_routes(new, runtimes, diff)
            self.config, self.runtimes = new, runtimes
            use_state_keys(new.request_state_keys)  # key rotation without a restart
            self.pins.set_runtimes(runtimes.values())
            self.routes = {**server_routes, **self._merged_routes(new, runtimes, old_routes)}
            self.publish()
            await self._close_replaced(old_routes)
            await self._start(fresh, at_startup=False)
            self._log_routes(r for key, r in self.routes.items() if old_routes.get(key) is not r)
            log.info("Reloaded config from %s: %s", new.source, diff.summary())
            return diff

    def _server_routes(
        self, new: ProxyConfig, runtimes: dict[str, ServerRuntime], diff: ConfigDiff
    ) -> dict[str, Route]:
        """A route per server: an unchanged server keeps its route (and sessions), told the new config."""
        routes: dict[str, Route] = {}
        for name, runtime in runtimes.items():
            route = self.routes[name] if name in diff.unchanged else ServerRoute(runtime, new)
            if name in diff.unchanged:
                route.proxy = new  # type: ignore[attr-defined]
            routes[name] = route
        return routes

    async def _close_replaced(self, old_routes: dict[str, Route]) -> None:
        """End the sessions of the routes the reload replaced or removed (bounded)."""
        for key, route in old_routes.items():
            if self.routes.get(key) is not route:
                route.detach_listeners()  # type: ignore[attr-defined]
                with anyio.move_on_after(CLOSE_SESSIONS_SECONDS):
                    await close_route_sessions(route)

    def _next_runtimes(self, new: ProxyConfig, diff: ConfigDiff) -> dict[str, ServerRuntime]:
        runtimes: dict[str, ServerRuntime] = {}
        for name, server in new.enabled_servers.items():
            runtime = self.runtimes.get(name) if name in diff.unchanged else None
            if runtime is None:
                runtime = ServerRuntime(server, new)
            runtime.proxy = new
            runtimes[name] = runtime
        return runtimes

    async def _retire(self, diff: ConfigDiff) -> None:
        """Stop removed and changed servers, after their in-flight requests (bounded)."""
        leaving = {name: "removed from the config" for name in diff.removed}
        leaving |= {name: "its config changed" for name in diff.changed}
        async with anyio.create_task_group() as tg:
            for name, reason in leaving.items():
                tg.start_soon(retire_runtime, self.runtimes[name], reason)

    @staticmethod
    def _log_newly_disabled(old: ProxyConfig, new: ProxyConfig) -> None:
        for name, server in new.servers.items():
            previous: ServerConfig | None = old.servers.get(name)
            if server.disabled and (previous is None or not previous.disabled):
                log.info("<%s> Disabled", name, extra={"server": name})


def merged_routes_wanted(
    config: ProxyConfig, runtimes: dict[str, ServerRuntime]
) -> dict[str, tuple[MergedSettings, list[Any]]]:
    """Route key ("" for the merged endpoint, else the group's name) -> its settings and members. Pure."""
    wanted: dict[str, tuple[MergedSettings, list[Any]]] = {}
    separator = config.merged.separator
    if config.merged.enabled and runtimes:
        merged = config.merged
        settings = (merged.auth_tokens, merged.log_enabled, config.name, separator, merged.catalog)
        wanted[""] = (settings, [(rt, None) for rt in runtimes.values()])
    for group in config.groups.values():
        settings = (group.auth_tokens, group.log_enabled, group.name, separator, group.catalog)
        members = [(runtimes[m.server], m.tool_filter) for m in group.members if m.server in runtimes]
        wanted[group.name] = (settings, members)
    return wanted


async def retire_runtime(runtime: ServerRuntime, reason: str) -> None:
    if not await runtime.drain(RETIRE_GRACE_SECONDS):
        log.warning(
            "%s: %d request(s) still in flight after %gs; they get an error",
            runtime.name,
            runtime.in_flight(),
            RETIRE_GRACE_SECONDS,
            extra={"server": runtime.name},
        )
    await runtime.stop(reason)
    log.info("<%s> Stopped (%s)", runtime.name, reason, extra={"server": runtime.name, "state": "stopped"})


async def close_route_sessions(route: Route) -> None:
    for client in list(route.sessions.values()):
        await route.close_session(client)


class Reloader:
    """Loads the config again (file change or SIGHUP) and hands it to the proxy; one reload at a time."""

    def __init__(self, proxy: Proxy, load: Callable[[], ProxyConfig]) -> None:
        self.proxy = proxy
        self.load = load
        source = proxy.config.source
        self.path = source if watchable(source) else None
        self.baseline = file_signature(source) if self.path else None  # before anything can change it
        # cluster mode: tells the other replicas after a reload started here (they reload without telling)
        self.announce: Callable[[], Awaitable[None]] | None = None

    async def reload(self, why: str, *, announce: bool = True) -> None:
        log.info("Reloading config (%s)", why)
        try:
            new = await anyio.to_thread.run_sync(self.load)
        except ConfigError as exc:
            log.error("Reload rejected, keeping the running config: %s", exc)
            return
        except Exception as exc:  # task boundary: a bad reload must never stop the proxy
            log.error("Reload failed, keeping the running config: %s: %s", type(exc).__name__, exc)
            return
        try:
            await self.proxy.reload(new)
        except Exception:  # task boundary, as above
            log.exception("Reload failed while applying the new config")
            return
        if announce and self.announce is not None:
            await self.announce()

    async def watch(self) -> None:
        if self.path is None:
            log.info("The config is remote: reload it with SIGHUP")
            return
        await watch_file(self.path, lambda: self.reload("the config file changed"), baseline=self.baseline)
