"""Typed reads of one JSON object of our schema: case-insensitive keys, JSON paths, unknown-key warnings."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from mcpmux.config.durations import DURATION_EXPECTED, parse_duration_seconds
from mcpmux.errors import ConfigError, ConfigErrors

T = TypeVar("T")
P = ParamSpec("P")
_SUGGEST_CUTOFF = 0.75  # difflib ratio: catches a dropped, doubled or swapped letter, not unrelated words


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
# a converter of one JSON value: (diag, its JSON path, the value) -> the value read, or raises diag.error
Reader = Callable[["Diagnostics", str, Any], Any]


@dataclass(slots=True)
class Diagnostics:
    """Where the config came from, and what reading it found: warnings and errors, in document order.

    Errors are collected rather than raised at the first one, so that one run reports every problem;
    `finish()` raises them all at the end. With `strict`, every warning counts as an error too.
    """

    source: str
    strict: bool = False
    findings: list[tuple[bool, ConfigError]] = field(default_factory=list)  # (is an error, the finding)

    @property
    def warnings(self) -> list[str]:
        return [str(finding) for is_error, finding in self.findings if not is_error]

    @property
    def error_count(self) -> int:
        return sum(is_error for is_error, _finding in self.findings)

    def warn(self, path: str, message: str) -> None:
        self.findings.append((False, ConfigError(self.source, path, message)))

    def error(self, path: str, message: str) -> ConfigError:
        """An error to raise: it ends the enclosing part (a key, a server, a group), which is then skipped."""
        return ConfigError(self.source, path, message)

    def report(self, path: str, message: str) -> None:
        """Record an error and carry on reading."""
        self.collect(self.error(path, message))

    def collect(self, error: ConfigError) -> None:
        self.findings.append((True, error))

    def attempt(self, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """`read(*args, **kwargs)`, or None with its error recorded."""
        try:
            return read(*args, **kwargs)
        except ConfigError as exc:
            self.collect(exc)
            return None

    def attempt_each(
        self,
        path: str,
        entries: Mapping[str, Any],
        read: Callable[Concatenate[Diagnostics, str, str, Any, P], T | None],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> dict[str, T]:
        """`read(self, <path>.<name>, name, value, ...)` for each entry of a section (servers, groups,
        clients): what the entries read to, by name; a bad entry's error is recorded and it is skipped."""
        read_ok: dict[str, T] = {}
        for name, value in entries.items():
            entry = self.attempt(read, self, join_path(path, name), name, value, *args, **kwargs)
            if entry is not None:
                read_ok[name] = entry
        return read_ok

    def finish(self) -> None:
        """Raise every error found (with `strict`, every warning too) as one ConfigErrors."""
        problems = [finding for is_error, finding in self.findings if is_error or self.strict]
        if problems:
            raise ConfigErrors(problems, strict=len(problems) > self.error_count)


def join_path(parent: str, key: str | int) -> str:
    """`mcpServers` + `github` -> `mcpServers.github`; an int index gives `authTokens[0]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def suggest_key(written: str, known_keys: Sequence[str], nested: Mapping[str, Sequence[str]]) -> str | None:
    """The key a typo most likely meant: a close known key (`authToken` -> `authTokens`), else a key of a
    nested object written one level too high (`authTokens` on a server -> `options.authTokens`)."""
    by_lower = {key.lower(): key for key in known_keys}
    close = difflib.get_close_matches(written.lower(), list(by_lower), n=1, cutoff=_SUGGEST_CUTOFF)
    if close:
        return by_lower[close[0]]
    for parent, keys in nested.items():
        inner = suggest_key(written, keys, {})
        if inner is not None:
            return f"{parent}.{inner}"
    return None


class JsonObject:
    """One object of our schema. Keys match case-insensitively (like Go's encoding/json); keys that are
    not in `known_keys` are kept out and reported as warnings (with a "did you mean" when one is close),
    since typos are the commonest config bug. `nested` names sub-objects whose keys are suggested too."""

    def __init__(
        self,
        diag: Diagnostics,
        path: str,
        data: Mapping[str, Any],
        known_keys: Sequence[str],
        nested: Mapping[str, Sequence[str]] | None = None,
    ):
        self.diag = diag
        self.path = path
        self._entries: dict[str, tuple[str, Any]] = {}  # schema key -> (key as written, value)
        by_lower = {key.lower(): key for key in known_keys}
        for written, value in data.items():
            known = by_lower.get(written.lower())
            if known is None:
                hint = suggest_key(written, known_keys, nested or {})
                message = f'unknown key; did you mean "{hint}"?' if hint else "unknown key"
                diag.warn(join_path(path, written), message)
            elif known in self._entries:
                earlier = self._entries[known][0]
                diag.warn(join_path(path, written), f'duplicate of "{earlier}"; the last one is used')
                self._entries[known] = (written, value)
            else:
                self._entries[known] = (written, value)

    def get(self, key: str) -> Any:
        """The raw value: MISSING when absent, None for an explicit null."""
        entry = self._entries.get(key)
        return MISSING if entry is None else entry[1]

    def has(self, key: str) -> bool:
        """True when the key is present with a non-null value."""
        return self.get(key) not in (MISSING, None)

    def path_of(self, key: str) -> str:
        entry = self._entries.get(key)
        return join_path(self.path, entry[0] if entry else key)

    def read(self, key: str, convert: Callable[[Diagnostics, str, Any], T]) -> T | None:
        """Convert the value with `convert(diag, path, value)`; None when absent or null, or when it is
        invalid (the error is recorded, and reading goes on)."""
        value = self.get(key)
        if value is MISSING or value is None:
            return None
        return self.diag.attempt(convert, self.diag, self.path_of(key), value)

    def read_given(self, readers: Mapping[str, tuple[str, Reader]]) -> dict[str, Any]:
        """`read` each key of `readers` (key -> (name, convert)): the values given (not absent, null or
        invalid), by name."""
        values = {name: self.read(key, convert) for key, (name, convert) in readers.items()}
        return {name: value for name, value in values.items() if value is not None}

    def object(
        self, key: str, known_keys: Sequence[str], nested: Mapping[str, Sequence[str]] | None = None
    ) -> JsonObject | None:
        value = self.get(key)
        if value is MISSING or value is None:
            return None
        return self.diag.attempt(as_object, self.diag, self.path_of(key), value, known_keys, nested)

    def keys_as_written(self) -> list[str]:
        return [written for written, _ in self._entries.values()]


def as_object(
    diag: Diagnostics,
    path: str,
    value: Any,
    known_keys: Sequence[str],
    nested: Mapping[str, Sequence[str]] | None = None,
) -> JsonObject:
    if not isinstance(value, dict):
        raise diag.error(path, "expected an object")
    return JsonObject(diag, path, value, known_keys, nested)


def as_string(diag: Diagnostics, path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise diag.error(path, "expected a string")
    return value


def as_bool(diag: Diagnostics, path: str, value: Any) -> bool:
    # "true"/"false" strings are accepted because `"${FLAG:-false}"` is how people template booleans.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise diag.error(path, "expected true or false")


def as_positive_int(diag: Diagnostics, path: str, value: Any) -> int:
    number = _integer_or_none(value)
    if number is None or number < 1:
        raise diag.error(path, "expected an integer >= 1")
    return number


def _integer_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_number(diag: Diagnostics, path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise diag.error(path, "expected a number")
    return float(value)


def as_duration(diag: Diagnostics, path: str, value: Any) -> float:
    try:
        return parse_duration_seconds(value)
    except ValueError:
        raise diag.error(path, DURATION_EXPECTED) from None


def as_string_list(diag: Diagnostics, path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise diag.error(path, "expected a list of strings")
    return tuple(value)


def as_names(diag: Diagnostics, path: str, value: Any) -> tuple[str, ...]:
    """A list of names, or one comma-separated string (so that `"${TOOLS}"` works); blanks dropped."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    else:
        items = [item.strip() for item in as_string_list(diag, path, value)]
    return tuple(dict.fromkeys(item for item in items if item))


def as_string_map(diag: Diagnostics, path: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise diag.error(path, "expected an object of strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise diag.error(join_path(path, key), "expected a string")
        result[key] = item
    return result


def as_env_map(diag: Diagnostics, path: str, value: Any) -> dict[str, str]:
    """Like as_string_map, but numbers and booleans become strings (with a warning), as a shell would."""
    if not isinstance(value, dict):
        raise diag.error(path, "expected an object of strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool | int | float):
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            diag.warn(join_path(path, key), f'expected a string; using "{text}"')
            item = text
        result[key] = as_string(diag, join_path(path, key), item)
    return result
