"""JSONC: comments and trailing commas, without touching string contents."""

from __future__ import annotations

import json

import pytest

from mcpmux.config.jsonc import JsonSyntaxError, load_json, strip_comments
from mcpmux.config.parse import parse_config


def load(text: str) -> object:
    return load_json(strip_comments(text))


def test_line_and_block_comments_are_accepted() -> None:
    text = '{\n  // a line comment\n  "a": 1, /* a block\n comment */ "b": 2 // trailing\n}'
    assert load(text) == {"a": 1, "b": 2}


def test_trailing_commas_in_objects_and_arrays_are_accepted() -> None:
    assert load('{"a": [1, 2, ], "b": {"c": 3,\n},\n}') == {"a": [1, 2], "b": {"c": 3}}


def test_a_url_with_double_slashes_inside_a_string_is_untouched() -> None:
    text = '{"url": "https://example.com/a//b", "c": "/* not a comment */", "d": "x,]"}'
    assert load(text) == {"url": "https://example.com/a//b", "c": "/* not a comment */", "d": "x,]"}


def test_escaped_quotes_do_not_end_a_string_early() -> None:
    assert load(r'{"a": "say \"//hi\"" // c' + "\n}") == {"a": 'say "//hi"'}


def test_comments_keep_line_numbers_for_errors() -> None:
    with pytest.raises(JsonSyntaxError) as caught:
        load('{\n/* one\ntwo */\n "a" 1\n}')
    assert (caught.value.line, caught.value.column) == (4, 6)


def test_an_unterminated_block_comment_is_located() -> None:
    with pytest.raises(JsonSyntaxError) as caught:
        load('{"a": 1\n  /* never closed')
    assert str(caught.value) == "line 2, column 3: unterminated /* comment"


def test_the_seed_readme_example_with_a_comment_parses() -> None:
    text = '{"mcpProxy": {"type": "streamable-http",// the transport\n "addr": ":9090"}, "mcpServers": {}}'
    config, warnings = parse_config(text, "config.json", environ={}, expand_env=True)
    assert config.type == "streamable-http"
    assert warnings == []


def test_plain_json_is_unchanged() -> None:
    document = {"a": [1, {"b": "c//d"}], "e": None}
    assert load(json.dumps(document)) == document
