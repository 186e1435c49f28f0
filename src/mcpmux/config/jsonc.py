"""JSON with comments: strip `//` and `/* */` comments and trailing commas, then parse with positions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

SegmentKind = Literal["code", "string", "comment"]

_SPECIAL = re.compile(r'"|//|/\*')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[\]}])")


class JsonSyntaxError(ValueError):
    """Text that is not JSON(C), located by 1-based line and column."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    start: int
    end: int


def scan_segments(text: str) -> Iterator[Segment]:
    """Split `text` into code, string literal and comment spans; an unterminated string runs to the end."""
    position = 0
    while position < len(text):
        special = _SPECIAL.search(text, position)
        if special is None:
            yield Segment("code", position, len(text))
            return
        if special.start() > position:
            yield Segment("code", position, special.start())
        end = _special_end(text, special.start(), special.group())
        kind: SegmentKind = "string" if special.group() == '"' else "comment"
        yield Segment(kind, special.start(), end)
        position = end


def _special_end(text: str, start: int, opener: str) -> int:
    if opener == '"':
        match = _STRING.match(text, start)
        return match.end() if match else len(text)
    if opener == "//":
        newline = text.find("\n", start)
        return newline if newline >= 0 else len(text)
    close = text.find("*/", start + 2)
    if close < 0:
        line, column = line_and_column(text, start)
        raise JsonSyntaxError(line, column, "unterminated /* comment")
    return close + 2


def strip_comments(text: str) -> str:
    """Blank out comments with spaces, keeping line breaks so that error positions stay true."""
    parts: list[str] = []
    for segment in scan_segments(text):
        chunk = text[segment.start : segment.end]
        if segment.kind == "comment":
            chunk = re.sub(r"[^\r\n]", " ", chunk)
        parts.append(chunk)
    return "".join(parts)


def strip_trailing_commas(text: str) -> str:
    """Replace a comma that closes an array or object with a space (comments must be gone already)."""
    parts: list[str] = []
    for segment in scan_segments(text):
        chunk = text[segment.start : segment.end]
        if segment.kind == "code":
            chunk = _TRAILING_COMMA.sub(r" \1", chunk)
        parts.append(chunk)
    return "".join(parts)


def load_json(text: str) -> Any:
    """Parse JSON text whose comments are already stripped; trailing commas are accepted."""
    if not text.strip():
        raise JsonSyntaxError(1, 1, "the file is empty")
    text = strip_trailing_commas(text)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(exc.lineno, exc.colno, exc.msg) from None
    except _ConstantError as exc:
        line, column = line_and_column(text, _find_in_code(text, exc.name))
        raise JsonSyntaxError(line, column, f"{exc.name} is not valid JSON") from None
    except RecursionError:
        raise JsonSyntaxError(1, 1, "nested too deeply") from None


class _ConstantError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON and which no other tool would read.
    raise _ConstantError(name)


def _find_in_code(text: str, word: str) -> int:
    for segment in scan_segments(text):
        if segment.kind == "code":
            found = text.find(word, segment.start, segment.end)
            if found >= 0:
                return found
    return 0


def line_and_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` of `text`."""
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column
