"""`mcpProxy.cluster`: the Valkey/Redis URL, the replicas' shared secret and this replica's address."""

from __future__ import annotations

from urllib.parse import urlsplit

from mcpmux.config.fields import JsonObject, as_string
from mcpmux.config.model import ClusterConfig

CLUSTER_KEYS = ("redis", "secret", "advertise")
REDIS_SCHEMES = ("redis", "rediss", "unix")
MIN_SECRET_CHARS = 32


def parse_cluster(proxy: JsonObject | None) -> ClusterConfig | None:
    """None when absent (one process, nothing imported); else every field checked, errors with paths."""
    spec = proxy.object("cluster", CLUSTER_KEYS) if proxy is not None else None
    if spec is None:
        return None
    redis = _redis_url(spec)
    secret = _secret(spec)
    advertise = _advertise(spec)
    return ClusterConfig(redis=redis, secret=secret, advertise=advertise or None)


def _redis_url(spec: JsonObject) -> str:
    redis = (spec.read("redis", as_string) or "").strip()
    if urlsplit(redis).scheme not in REDIS_SCHEMES:
        spec.diag.report(
            spec.path_of("redis"), 'expected a URL like "redis://host:6379/0" (redis, rediss or unix)'
        )
    return redis


def _secret(spec: JsonObject) -> str:
    secret = spec.read("secret", as_string) or ""
    if len(secret) < MIN_SECRET_CHARS:
        spec.diag.report(
            spec.path_of("secret"),
            f"expected at least {MIN_SECRET_CHARS} characters, the same on every replica "
            '(e.g. "${MCPMUX_CLUSTER_SECRET}")',
        )
    return secret


def _advertise(spec: JsonObject) -> str:
    """This replica's URL for the others ("" when not given)."""
    advertise = (spec.read("advertise", as_string) or "").strip().rstrip("/")
    parts = urlsplit(advertise)
    if advertise and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
        spec.diag.report(
            spec.path_of("advertise"),
            'expected this replica\'s URL for the others, like "http://10.0.0.5:9090"',
        )
    return advertise
