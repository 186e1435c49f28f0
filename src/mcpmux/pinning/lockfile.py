"""The lock file on disk: where it is by default, reading it (clear errors) and writing it atomically."""

from __future__ import annotations

import json
import os
import tempfile

from ..config.loader import beside_config
from ..core.pins import Lock, lock_from_json, lock_to_json

DEFAULT_NAME = "mcpmux.lock.json"


class LockFileError(OSError):
    """The lock file cannot be read or written; the message names the file and what is wrong."""


def default_lock_path(config_source: str) -> str:
    """`mcpmux.lock.json` next to the config file (in the working directory for a remote config)."""
    return beside_config(config_source, DEFAULT_NAME)


def read_lock(path: str) -> Lock | None:
    """The lock at `path`, or None when there is no such file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockFileError(f"{path}: cannot read the lock file: {exc.strerror or exc}") from None
    try:
        return lock_from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise LockFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except ValueError as exc:
        raise LockFileError(f"{path}: {exc}") from None


def write_lock(path: str, lock: Lock) -> None:
    """Write the lock (sorted, indented: committable, small diffs) by replacing the file atomically."""
    text = json.dumps(lock_to_json(lock), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(prefix=".mcpmux-lock-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise LockFileError(f"{path}: cannot write the lock file: {exc.strerror or exc}") from None
