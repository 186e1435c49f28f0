"""The HTTP face of OAuth on the routes where it is on: metadata documents, token admission, challenges."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config.model import OAuthResource, ProxyConfig, TokenScope
from ..config.oauth import route_oauth
from ..oauth.resource import Refusal, ResourceGuard, challenge
from ..oauth.tokens import normalize_resource
from ..relay.route import Route
from .asgi import Receive, RequestHeaders, Scope, Send, send_error, send_json

WELL_KNOWN = "/.well-known/oauth-protected-resource"
MESSAGES = {401: "Unauthorized", 403: "Forbidden: insufficient scope"}


def route_servers(route: Route) -> list[str]:
    members = getattr(route, "members", None)
    return [m.name for m in members] if members is not None else [route.name]


@dataclass(frozen=True, slots=True)
class Door:
    """OAuth on one route: its guard, the audiences it accepts, and each transport's resource URL."""

    guard: ResourceGuard
    accepted: frozenset[str]
    resources: dict[str, str]  # "mcp" / "sse" -> resource URL


class OAuthFront:
    """Built from the config at start and after each reload; the guards (key caches) outlive reloads."""

    def __init__(self) -> None:
        self.guards: dict[OAuthResource, ResourceGuard] = {}
        self.doors: dict[str, Door] = {}
        self.documents: dict[str, tuple[ResourceGuard, str]] = {}  # well-known path -> guard, resource
        self.name = "mcpmux"
        self.origin = ""

    def rebuild(self, config: ProxyConfig, routes: Iterable[Route]) -> None:
        public = config.base_url.rstrip("/")
        parts = urlsplit(public)
        origin = f"{parts.scheme}://{parts.netloc}"
        root = public if parts.path else f"{public}/"  # as clients render a URL with an empty path
        guards: dict[OAuthResource, ResourceGuard] = {}
        doors: dict[str, Door] = {}
        documents: dict[str, tuple[ResourceGuard, str]] = {}
        if config.defaults.oauth is not None:  # proxy-wide: the root document names the whole proxy
            guard = guards[config.defaults.oauth] = self._guard(config.defaults.oauth)
            documents[WELL_KNOWN + parts.path] = (guard, root)
        for route in routes:
            setting = route_oauth(config, route.name)
            if setting is None:
                continue
            guard = guards.get(setting) or self._guard(setting)
            guards[setting] = guard
            prefix = f"{public}/{route.name}" if route.name else public
            resources = {"mcp": f"{prefix}/mcp", "sse": f"{prefix}/sse"}
            accepted = {normalize_resource(u) for u in (*resources.values(), *setting.audiences)}
            if setting == config.defaults.oauth:
                accepted.add(normalize_resource(root))
            doors[route.name] = Door(guard, frozenset(accepted), resources)
            for url in resources.values():
                path = urlsplit(url).path
                documents[WELL_KNOWN + path] = (guard, url)
                documents[WELL_KNOWN + path + "/"] = (guard, url + "/")  # as a client with a slash asks
        self.guards, self.doors, self.documents = guards, doors, documents
        self.name, self.origin = config.name, origin

    def _guard(self, setting: OAuthResource) -> ResourceGuard:
        return self.guards.get(setting) or ResourceGuard(setting)

    def paths(self) -> dict[str, Any]:
        """Path -> handler, for the app's table: the metadata documents of the routes with OAuth on."""
        return {path: self._document_handler(path) for path in self.documents}

    def _document_handler(self, path: str) -> Any:
        async def serve(scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
            if scope["method"] not in ("GET", "HEAD"):
                await send_error(send, 405, "Method Not Allowed", [(b"allow", b"GET, HEAD")])
                return
            guard, resource = self.documents[path]
            await send_json(
                send, 200, guard.metadata(resource, self.name), [(b"cache-control", b"max-age=300")]
            )

        return serve

    def metadata_url(self, resource: str) -> str:
        return self.origin + WELL_KNOWN + urlsplit(resource).path

    async def admit(
        self, route: Route, kind: str, scope: Scope, presented: str | None, send: Send
    ) -> TokenScope | None:
        """The token scope of a presented OAuth token, or None after sending the 401/403 challenge."""
        door = self.doors[route.name]
        outcome = await door.guard.admit(presented, door.accepted, route_servers(route))
        if not isinstance(outcome, Refusal):
            return outcome
        resource = door.resources["mcp" if kind == "mcp" else "sse"]
        if scope["path"].endswith("/") and kind != "message":
            resource += "/"
        header = challenge(outcome, self.metadata_url(resource)).encode("latin-1", "replace")
        message = MESSAGES[outcome.status]
        if outcome.description:
            message = f"{message}: {outcome.description}"
        await send_error(send, outcome.status, message, [(b"www-authenticate", header)])
        return None
