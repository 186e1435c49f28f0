"""The command line: Go-style flags (`-x` and `--x`), config checking, client-config export, running."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcpmux import __version__
from mcpmux.config.loader import load_config
from mcpmux.config.model import ProxyConfig
from mcpmux.errors import ConfigError
from mcpmux.logs import parse_level, setup_logging

log = logging.getLogger("mcpmux")

CLIENT_CONFIG_COMMAND = "client-config"
PINS_COMMAND = "pins"
AUTH_COMMAND = "auth"


class UsageError(Exception):
    """Bad command-line flags or arguments (exit status 2, like Go's flag package)."""


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: str  # "bool", "str", "float", "int" or "list" (repeatable string)
    help: str
    default: Any = None
    metavar: str = "string"


GLOBAL_FLAGS = (
    Flag("config", "str", "path to config file or a http(s) url", "config.json"),
    Flag("check-config", "bool", "validate the config, print a summary and exit", False),
    Flag("strict", "bool", "treat every config warning as an error (like mcpProxy.strict)", False),
    Flag("expand-env", "bool", "expand $VAR and ${VAR} in the config", True),
    Flag("env-file", "str", "read variables from this .env file (default: .env next to the config)"),
    Flag("http-headers", "str", 'headers for a remote config request, "K1:V1;K2:V2"', metavar="headers"),
    Flag("http-timeout", "float", "timeout for a remote config request", 10.0, metavar="seconds"),
    Flag("insecure", "bool", "skip TLS certificate verification for a remote config", False),
    Flag("log-level", "str", "debug, info, warning or error", "info", metavar="level"),
    Flag("log-format", "str", "text or json", "text", metavar="format"),
    Flag("otel", "bool", "trace requests with OpenTelemetry, like mcpProxy.tracing", False),
    Flag("listen-fd", "int", "serve on an already-bound listening socket inherited as this fd", metavar="fd"),
    Flag("lock", "str", "the pins lock file (default: mcpmux.lock.json next to the config)", metavar="path"),
    Flag("print-client-config", "bool", "print the MCP client config (JSON) for this proxy and exit", False),
    Flag("version", "bool", "print version and exit", False),
    Flag("help", "bool", "print help and exit", False),
)
CLIENT_CONFIG_FLAGS = (
    Flag("type", "str", "sse or streamable-http (default: mcpProxy.type)", metavar="transport"),
    Flag("server", "list", "only this entry (repeatable)", [], metavar="name"),
)
_TRUE_WORDS = ("1", "t", "true")
_FALSE_WORDS = ("0", "f", "false")


@dataclass(slots=True)
class CliArgs:
    config: str = "config.json"
    check_config: bool = False
    strict: bool = False
    expand_env: bool = True
    env_file: str | None = None
    http_headers: str | None = None
    http_timeout: float = 10.0
    insecure: bool = False
    log_level: str = "info"
    log_format: str = "text"
    listen_fd: int | None = None
    otel: bool = False
    print_client_config: bool = False
    version: bool = False
    help: bool = False
    command: str | None = None
    type: str | None = None
    server: list[str] = field(default_factory=list)
    lock: str | None = None
    pins_action: str | None = None
    auth_action: str | None = None
    names: list[str] = field(default_factory=list)


def usage() -> str:
    lines = [
        "Usage: mcpmux [flags]",
        f"       mcpmux [flags] {CLIENT_CONFIG_COMMAND} [-type sse|streamable-http] [-server NAME]...",
        f"       mcpmux [flags] {PINS_COMMAND} record|verify|diff [SERVER]...  |  approve SERVER [TOOL]",
        f"       mcpmux [flags] {AUTH_COMMAND} login SERVER  |  status  |  logout SERVER  |  keygen",
        "",
        "Flags (-flag and --flag both work, as do -flag=value and -flag value):",
    ]
    for flag in (*GLOBAL_FLAGS, *CLIENT_CONFIG_FLAGS):
        name = f"-{flag.name}" if flag.kind == "bool" else f"-{flag.name} {flag.metavar}"
        default = "" if flag.default in (None, False, []) else f" (default {json.dumps(flag.default)})"
        lines.append(f"  {name:<28} {flag.help}{default}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> CliArgs:
    """Parse the command line like Go's flag package, plus the `client-config` subcommand."""
    values, rest = parse_flags(argv, GLOBAL_FLAGS)
    if rest and rest[0] == CLIENT_CONFIG_COMMAND:
        more, rest = parse_flags(rest[1:], (*GLOBAL_FLAGS, *CLIENT_CONFIG_FLAGS), values)
        values = {**more, "command": CLIENT_CONFIG_COMMAND}
    elif rest and rest[0] in (PINS_COMMAND, AUTH_COMMAND):
        values, rest = parse_pins_args(rest[1:], values, rest[0]), []
    if rest:
        raise UsageError(f'unexpected argument "{rest[0]}"')
    args = CliArgs(**values)
    _validate(args)
    return args


def parse_pins_args(
    argv: Sequence[str], values: dict[str, Any], command: str = PINS_COMMAND
) -> dict[str, Any]:
    """`pins|auth ACTION [flags and names in any order]`: the action, flags, and the server/tool names."""
    action = argv[0] if argv and not argv[0].startswith("-") else None
    names: list[str] = []
    rest = list(argv[1:] if action is not None else argv)
    while rest:  # each pass consumes at least one argument
        values, rest = parse_flags(rest, GLOBAL_FLAGS, values)
        if rest:
            names.append(rest.pop(0))
    return {**values, "command": command, f"{command}_action": action, "names": names}


def parse_flags(
    argv: Sequence[str], flags: Sequence[Flag], values: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Flags until the first non-flag argument (or `--`); returns the values and the rest."""
    by_name = {flag.name: flag for flag in flags} | {"h": Flag("help", "bool", "")}
    values = dict(values or {})
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == "--":
            return values, list(argv[index + 1 :])
        if not argument.startswith("-") or argument == "-":
            break
        index = _parse_flag(argv, index, by_name, values)
    return values, list(argv[index:])


def _parse_flag(argv: Sequence[str], index: int, by_name: dict[str, Flag], values: dict[str, Any]) -> int:
    """Stores the flag at `argv[index]` (with its value, inline or the next argument); the next index."""
    argument = argv[index]
    name, has_value, value = argument.lstrip("-").partition("=")
    flag = by_name.get(name)
    if flag is None or argument.startswith("---"):
        raise UsageError(f"flag provided but not defined: {argument.partition('=')[0]}")
    if flag.kind == "bool":
        _store(values, flag, value if has_value else None)
        return index + 1
    if not has_value:
        index += 1
        if index >= len(argv):
            raise UsageError(f"flag needs an argument: -{name}")
        value = argv[index]
    _store(values, flag, value)
    return index + 1


def _store(values: dict[str, Any], flag: Flag, text: str | None) -> None:
    key = flag.name.replace("-", "_")
    try:
        if flag.kind == "list":
            values[key] = [*values.get(key, []), text]
        else:
            values[key] = _convert(flag.kind, text)
    except ValueError:
        raise UsageError(f'invalid value "{text}" for flag -{flag.name}') from None


def _convert(kind: str, text: str | None) -> Any:
    if kind == "bool":
        if text is None or text.lower() in _TRUE_WORDS:
            return True
        if text.lower() in _FALSE_WORDS:
            return False
        raise ValueError(text)
    converters: dict[str, Callable[[str], Any]] = {"str": str, "float": float, "int": int}
    return converters[kind](text or "")


def _validate(args: CliArgs) -> None:
    try:
        parse_level(args.log_level)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.log_format not in ("text", "json"):
        raise UsageError(f'invalid value "{args.log_format}" for flag -log-format (expected text or json)')
    if not args.http_timeout > 0:
        raise UsageError("-http-timeout must be a positive number of seconds")
    if args.listen_fd is not None and args.listen_fd < 0:
        raise UsageError("-listen-fd must be a file descriptor number >= 0")
    parse_http_headers(args.http_headers)


def parse_http_headers(text: str | None) -> dict[str, str]:
    """`"K1:V1;K2:V2"` -> headers; a part without `:` is a usage error."""
    headers: dict[str, str] = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        name, colon, value = part.partition(":")
        if not colon or not name.strip():
            raise UsageError(f'invalid header "{part.strip()}" in -http-headers (expected "Name:Value")')
        headers[name.strip()] = value.strip()
    return headers


def config_loader(args: CliArgs) -> Callable[[], ProxyConfig]:
    """A zero-argument loader: the same source and options each time (also used to reload)."""
    load = functools.partial(
        load_config,
        args.config,
        expand_env=args.expand_env,
        http_headers=parse_http_headers(args.http_headers),
        http_timeout_seconds=args.http_timeout,
        insecure=args.insecure,
        env_file=args.env_file,
        strict=args.strict,
    )
    return functools.partial(with_tracing, load) if args.otel else load


def with_tracing(load: Callable[[], ProxyConfig]) -> ProxyConfig:
    """`--otel`: the loaded config with tracing on (its exporter settings kept)."""
    config = load()
    return dataclasses.replace(config, tracing=dataclasses.replace(config.tracing, enabled=True))


def print_client_config(config: ProxyConfig, args: CliArgs) -> int:
    try:
        from mcpmux.clientconfig import client_config

        document = client_config(config, transport=args.type, servers=args.server or None)
    except ValueError as exc:
        print(f"mcpmux: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def run_pins_command(config: ProxyConfig, args: CliArgs) -> int:
    from mcpmux.pinning.commands import PinsError, pins_command, run_pins

    try:
        command = pins_command(config, args.pins_action, args.names, args.lock)
    except PinsError as exc:
        print(f"mcpmux: {exc}", file=sys.stderr)
        return exc.status
    return run_pins(config, command)


def run_auth_command(config: ProxyConfig | None, args: CliArgs) -> int:
    from mcpmux.oauth.commands import run_auth

    return run_auth(config, args.auth_action, args.names)


def run(args: CliArgs) -> int:
    """Load the config, then check it, export the client config, or serve."""
    if args.command == AUTH_COMMAND and args.auth_action == "keygen":
        return run_auth_command(None, args)
    load = config_loader(args)
    config = load()
    if args.check_config:
        # Disabled servers are not counted, as in the original (they are skipped entirely).
        print(f"Config OK: {len(config.enabled_servers)} MCP server(s) configured")
        return 0
    if args.print_client_config or args.command == CLIENT_CONFIG_COMMAND:
        return print_client_config(config, args)
    if args.command == PINS_COMMAND:
        return run_pins_command(config, args)
    if args.command == AUTH_COMMAND:
        return run_auth_command(config, args)
    from mcpmux.serve import run_proxy  # imported late: the server stack is not needed for the above

    return int(run_proxy(config, reload_config=load, listen_fd=args.listen_fd, lock_path=args.lock) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """The `mcpmux` command; returns the exit status (0 ok, 1 unexpected error, 2 usage or config error)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"mcpmux: {exc}\n\n{usage()}", file=sys.stderr)
        return 2
    if args.help:
        print(usage())
        return 0
    if args.version:
        print(f"mcpmux {__version__}")
        return 0
    setup_logging(args.log_level, args.log_format)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"Failed to load config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the process boundary: one clean line, a traceback only when debugging
        if args.log_level.lower() == "debug":
            log.exception("unexpected error")
        print(f"mcpmux: unexpected error: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
