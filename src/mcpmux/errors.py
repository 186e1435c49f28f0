"""The small error tree of mcpmux: config errors, and upstream failures as seen by a client."""

from __future__ import annotations

from collections.abc import Sequence

from .core.redact import redact_running


class MuxError(Exception):
    """Base of every error mcpmux raises on purpose."""


class CommandError(MuxError):
    """A subcommand (`pins`, `auth`) cannot run; `status` is its exit code (2: bad arguments)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(MuxError):
    """A configuration problem, located by source (file or URL) and JSON path.

    str() gives the line users see, e.g. `config.json: mcpServers.github: needs "command" or "url"`.
    """

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + message)


class ConfigErrors(ConfigError):
    """Every problem found in one config, one `source: path: message` line each (the first one's
    source/path/message are this error's own). `strict`: they are warnings that --strict made errors."""

    def __init__(self, errors: Sequence[ConfigError], *, strict: bool = False) -> None:
        self.errors = tuple(errors)
        first = self.errors[0]
        super().__init__(first.source, first.path, first.message)
        lines = [str(error) for error in self.errors]
        if len(lines) > 1 or strict:
            count = f"{len(lines)} error{'s' if len(lines) > 1 else ''}"
            why = " (strict: warnings count as errors)" if strict else ""
            self.args = (f"{count}{why}:\n" + "\n".join(lines),)


class UpstreamError(MuxError):
    """An upstream server could not serve a request; carries the JSON-RPC code to answer with."""

    code = -32000

    def __init__(self, server: str, message: str) -> None:
        self.server = server
        # it reaches clients, logs and /_readyz: no URL credentials, query values or configured secrets
        super().__init__(f"{server}: {redact_running(message)}")


class UpstreamUnavailableError(UpstreamError):
    """The upstream is not connected (starting, restarting, failed) or its connection just died."""

    code = -32000


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer in time; the request was cancelled upstream."""

    code = -32001
