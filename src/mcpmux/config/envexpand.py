"""Environment references in the raw config text (`$NAME`, `${NAME:-default}`, `$$`) and .env files."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dotenv.parser import parse_stream

from mcpmux.config.jsonc import scan_segments
from mcpmux.errors import ConfigError

# `$$` is a literal dollar; `${NAME}` / `${NAME:-default}` / `$NAME` expand. A `$` followed by anything else
# is kept as it is (the original ate it, mangling secrets that contain a dollar sign).
_REFERENCE = re.compile(
    r"\$(?:(?P<dollar>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(slots=True)
class Expansion:
    """The expanded text and the referenced names that were not set (each once, in order)."""

    text: str
    undefined: list[str] = field(default_factory=list)


def expand_env(text: str, environ: Mapping[str, str]) -> Expansion:
    """Substitute environment references in JSON(C) text whose comments are already stripped.

    Substitution works on the raw text like the original's, so a value is pasted where the reference is.
    Inside a JSON string literal the value is JSON-escaped first: a password containing `"` or `\\` must
    not end the string or start an escape. Outside string literals (`"port": $PORT`) values go in raw,
    which is what makes numbers and booleans from the environment possible. A `:-default` is copied
    verbatim in both places, since it is written in the file's own (JSON) syntax already.
    """
    expansion = Expansion(text="")
    parts: list[str] = []
    for segment in scan_segments(text):
        chunk = text[segment.start : segment.end]
        parts.append(_expand_chunk(chunk, environ, expansion, in_string=segment.kind == "string"))
    expansion.text = "".join(parts)
    return expansion


def _expand_chunk(chunk: str, environ: Mapping[str, str], expansion: Expansion, *, in_string: bool) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("bare")
        value = environ.get(name)
        default = match.group("default")
        if default is not None and not value:
            return default
        if value is None:
            if name not in expansion.undefined:
                expansion.undefined.append(name)
            return ""
        return json.dumps(value, ensure_ascii=False)[1:-1] if in_string else value

    return _REFERENCE.sub(substitute, chunk)


@dataclass(slots=True)
class DotenvFile:
    """Variables read from a .env file, and one warning per statement that could not be read."""

    values: dict[str, str] = field(default_factory=dict)
    warnings: list[ConfigError] = field(default_factory=list)


def parse_dotenv(text: str, source: str) -> DotenvFile:
    """Read a .env file with python-dotenv's parser: `KEY=VALUE`, `export KEY=VALUE`, single and double
    quotes (double quotes take escapes like `\\n` and `\\"`), values spanning lines inside quotes, and
    `#` comments. Values are taken literally (no `${VAR}` interpolation inside the .env file)."""
    result = DotenvFile()
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is not None and binding.value is not None and not binding.error:
            result.values[binding.key] = binding.value
        elif binding.error or binding.key is not None:  # not a comment or a blank line
            original = binding.original.string
            line = binding.original.line + len(original) - len(original.lstrip("\n"))
            result.warnings.append(ConfigError(source, f"line {line}", "expected KEY=VALUE"))
    return result
