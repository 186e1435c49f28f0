"""Environment expansion over the raw config text, and .env files."""

from __future__ import annotations

from mcpmux.config.envexpand import expand_env, parse_dotenv
from mcpmux.config.parse import parse_config


def parse(text: str, environ: dict[str, str]) -> tuple[object, list[str]]:
    return parse_config(text, "config.json", environ=environ, expand_env=True)


def test_dollar_name_and_braced_name_both_expand() -> None:
    assert expand_env('"$A-${B}x"', {"A": "1", "B": "2"}).text == '"1-2x"'


def test_a_default_is_used_when_the_name_is_unset_or_empty() -> None:
    assert expand_env('"${A:-one} ${B:-two} ${C:-three}"', {"B": "", "C": "c"}).text == '"one two c"'


def test_double_dollar_is_a_literal_dollar() -> None:
    assert expand_env('"pa$$word"', {"word": "WORD"}).text == '"pa$word"'


def test_a_dollar_not_followed_by_a_name_is_kept() -> None:
    assert expand_env('"cost: 5$ or $1 or ${}"', {}).text == '"cost: 5$ or $1 or ${}"'


def test_undefined_names_expand_to_empty_and_are_reported_once_each() -> None:
    expansion = expand_env('"$MISSING $MISSING ${OTHER}"', {})
    assert expansion.text == '"  "'
    assert expansion.undefined == ["MISSING", "OTHER"]


def test_values_inside_json_strings_are_json_escaped() -> None:
    expansion = expand_env('{"token": "$SECRET"}', {"SECRET": 'a"b\\c\nd'})
    assert expansion.text == '{"token": "a\\"b\\\\c\\nd"}'


def test_values_outside_strings_go_in_raw_so_numbers_work() -> None:
    assert expand_env('{"n": $N}', {"N": "42"}).text == '{"n": 42}'


def test_a_value_with_quotes_survives_into_the_parsed_config() -> None:
    text = '{"mcpProxy": {"options": {"authTokens": ["$TOKEN"]}}}'
    config, warnings = parse(text, {"TOKEN": 'we"ird\\tok$en'})
    assert config.defaults.auth_tokens[0].token == 'we"ird\\tok$en'  # type: ignore[attr-defined]
    assert warnings == []


def test_an_undefined_name_is_a_warning_in_the_parse_result() -> None:
    _, warnings = parse('{"mcpProxy": {"name": "x$NOPE"}}', {})
    assert warnings == ['config.json: environment variable "NOPE" is not set; it expands to an empty string']


def test_references_in_comments_are_neither_expanded_nor_reported() -> None:
    _, warnings = parse('{"mcpProxy": {} // uses $NOT_SET\n}', {})
    assert warnings == []


def test_expansion_can_be_turned_off() -> None:
    config, _ = parse_config(
        '{"mcpProxy": {"name": "$HOME"}}', "c.json", environ={"HOME": "/h"}, expand_env=False
    )
    assert config.name == "$HOME"


def test_dotenv_reads_keys_exports_quotes_and_comments() -> None:
    dotenv = parse_dotenv(
        "# comment\n\nA=1\nexport B = two words \n"
        "C=\"quoted # not a comment\"\nD='single'\nE=val # comment\n",
        ".env",
    )
    assert dotenv.values == {
        "A": "1",
        "B": "two words",
        "C": "quoted # not a comment",
        "D": "single",
        "E": "val",
    }
    assert dotenv.warnings == []


def test_dotenv_warns_about_lines_it_cannot_read() -> None:
    dotenv = parse_dotenv("GOOD=1\nthis is not a pair\n", ".env")
    assert dotenv.values == {"GOOD": "1"}
    assert [str(warning) for warning in dotenv.warnings] == [".env: line 2: expected KEY=VALUE"]


def test_dotenv_double_quotes_take_escapes_and_single_quotes_do_not() -> None:
    dotenv = parse_dotenv('A="say \\"hi\\"\\tnow\\nbye"\nB=\'raw\\n$X\'\nC="back\\\\slash"\n', ".env")
    assert dotenv.values == {"A": 'say "hi"\tnow\nbye', "B": "raw\\n$X", "C": "back\\slash"}
    assert dotenv.warnings == []


def test_dotenv_values_may_span_lines_inside_quotes() -> None:
    text = "KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nSINGLE='one\ntwo'\nAFTER=1\n"
    dotenv = parse_dotenv(text, ".env")
    assert dotenv.values == {
        "KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
        "SINGLE": "one\ntwo",
        "AFTER": "1",
    }


def test_dotenv_reports_the_line_of_an_unterminated_quote_and_reads_on() -> None:
    dotenv = parse_dotenv('A=1\n\n# c\nB="open\nC=3\n', ".env")
    assert dotenv.values == {"A": "1", "C": "3"}
    assert [str(warning) for warning in dotenv.warnings] == [".env: line 4: expected KEY=VALUE"]
