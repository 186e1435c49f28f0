"""Read a config from a file or an http(s) URL (plus an optional .env file) and parse it into ProxyConfig."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mcpmux.config.envexpand import DotenvFile, parse_dotenv
from mcpmux.config.model import ProxyConfig
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigError

log = logging.getLogger("mcpmux.config")


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def beside_config(source: str, name: str) -> str:
    """Where mcpmux keeps a state file: next to the config file (the working directory for a remote one)."""
    if is_url(source):
        return name
    return os.path.join(os.path.dirname(os.path.abspath(source)), name)


def load_config(
    source: str,
    *,
    expand_env: bool = True,
    http_headers: Mapping[str, str] | None = None,
    http_timeout_seconds: float = 10.0,
    insecure: bool = False,
    env_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    strict: bool = False,
) -> ProxyConfig:
    """Load and validate the config at `source` (a path or an http(s) URL); logs warnings.

    Problems are raised as a ConfigError naming the source (and JSON path when there is one); a config
    with several gets one ConfigErrors naming each. `strict` (or `mcpProxy.strict`): warnings are errors.
    """
    if is_url(source):
        text = fetch_text(
            source, headers=http_headers, timeout_seconds=http_timeout_seconds, insecure=insecure
        )
    else:
        text = read_text(source)
    variables = os.environ if environ is None else environ
    dotenv = DotenvFile()
    if expand_env:
        dotenv = read_env_file(source, env_file)
        # The real environment wins over the .env file, which wins over the built-in variables.
        variables = {**builtin_variables(), **dotenv.values, **variables}
    config, warnings = parse_config(
        text, source, environ=variables, expand_env=expand_env, strict=strict, prior_warnings=dotenv.warnings
    )
    for warning in warnings:
        log.warning("%s", warning)
    return config


def builtin_variables() -> dict[str, str]:
    """Variables mcpmux defines for expansion: `MCPMUX_PYTHON`, the interpreter mcpmux runs under, so a
    stdio server written in Python finds the packages of mcpmux's own environment, activated or not."""
    return {"MCPMUX_PYTHON": sys.executable or "python3"}


def read_text(path: str) -> str:
    """A local file as text (UTF-8, BOM allowed)."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(path, "", "permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(path, "", exc.strerror or str(exc)) from None


def fetch_text(url: str, *, headers: Mapping[str, str] | None, timeout_seconds: float, insecure: bool) -> str:
    """A remote config: GET with the given headers, following redirects; any non-2xx is an error."""
    import httpx2  # only remote configs need it; it is slow to import

    try:
        with httpx2.Client(
            headers=dict(headers or {}),
            timeout=timeout_seconds,
            verify=not insecure,
            follow_redirects=True,
        ) as client:
            response = client.get(url)
    except httpx2.HTTPError as exc:
        raise ConfigError(url, "", f"cannot fetch: {exc or type(exc).__name__}") from None
    if not response.is_success:
        raise ConfigError(url, "", f"cannot fetch: HTTP {response.status_code} {response.reason_phrase}")
    try:
        return response.content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(url, "", f"not UTF-8 text (byte {exc.start})") from None


def read_env_file(source: str, env_file: str | None) -> DotenvFile:
    """Variables from `env_file`, else from a `.env` next to a local config file when there is one."""
    if env_file is None:
        if is_url(source):
            return DotenvFile()
        candidate = Path(source).parent / ".env"
        if not candidate.is_file():
            return DotenvFile()
        env_file = str(candidate)
    return parse_dotenv(read_text(env_file), env_file)
