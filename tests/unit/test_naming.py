"""Unit tests of core/naming.py: published names on merged endpoints, and their collisions."""

from __future__ import annotations

import hashlib
import itertools
import random
import re

import pytest

from mcpmux.core.naming import (
    MAX_NAME_LENGTH,
    NameEntry,
    build_name_table,
    is_valid_published_name,
    published_name,
    server_labels,
)


def hash8(server: str, name: str) -> str:
    return hashlib.sha256(f"{server}\0{name}".encode()).hexdigest()[:8]


@pytest.mark.parametrize("name", ["a", "read_file", "A-Z.0_9", "x" * 64, "-leading", ".", "__"])
def test_valid_names_are_recognised(name: str) -> None:
    assert is_valid_published_name(name)


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a/b", "é", "tool\n", "a:b", "a\0b", "٣"])
def test_invalid_names_are_recognised(name: str) -> None:
    assert not is_valid_published_name(name)


def test_a_plain_pair_joins_server_and_tool_with_the_separator() -> None:
    assert published_name("github", "create_issue") == "github__create_issue"
    assert published_name("github", "create_issue", separator=".") == "github.create_issue"
    assert published_name("github", "create_issue", separator="") == "githubcreate_issue"


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("my server", "look up", "my_server__look_up"),
        ("fetch/abc123", "fetch", "fetch_abc123__fetch"),
        ("wéb", "sûche", "w_b__s_che"),
        ("emoji", "🔍find", "emoji___find"),
        ("a:b", "c@d", "a_b__c_d"),
        ("x", "line\nbreak", "x__line_break"),
    ],
)
def test_characters_outside_the_allowed_set_become_underscores(server: str, tool: str, expected: str) -> None:
    assert published_name(server, tool) == expected


def test_an_invalid_separator_is_sanitized_too() -> None:
    assert published_name("a", "b", separator="::") == "a__b"


def test_a_name_of_exactly_64_characters_is_kept() -> None:
    server, tool = "s" * 30, "t" * 32
    assert published_name(server, tool) == f"{server}__{tool}"


def test_a_long_name_keeps_a_prefix_and_ends_with_a_hash_of_the_original_pair() -> None:
    server, tool = "s" * 30, "t" * 33
    published = published_name(server, tool)
    assert len(published) == MAX_NAME_LENGTH
    assert published == f"{server}__{'t' * 23}-{hash8(server, tool)}"


def test_shortened_names_of_pairs_sharing_a_prefix_differ() -> None:
    server = "fetch/" + "k" * 60
    first, second = published_name(server, "get"), published_name(server, "put")
    assert first != second
    assert first[:55] == second[:55] == "fetch_" + "k" * 49
    assert is_valid_published_name(first) and is_valid_published_name(second)


def test_the_hash_is_over_the_original_pair_not_the_sanitized_one() -> None:
    assert published_name("é" * 70, "x") != published_name("è" * 70, "x")


def test_empty_inputs_still_give_a_valid_name() -> None:
    published = published_name("", "", separator="")
    assert published == hash8("", "")
    assert is_valid_published_name(published)


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("github", "create_or_update_file", "github__create_or_update_file"),
        ("wéb search", "look up", "w_b_search__look_up"),
        ("a" * 70, "b", "a" * 55 + "-0cc8ed57"),
        (
            "fetch/" + "x" * 40,
            "fetch_markdown_from_a_really_long_url",
            "fetch_" + "x" * 40 + "__fetch_m-439e6474",
        ),
    ],
)
def test_published_names_are_stable_across_versions(server: str, tool: str, expected: str) -> None:
    # Computed once and hard-coded: clients store these names, so a change of algorithm must be seen.
    assert published_name(server, tool) == expected


def test_table_publishes_and_resolves_each_pair() -> None:
    table = build_name_table([("fs", "read"), ("git", "log")])
    assert table.publish("fs", "read") == "fs__read"
    assert table.resolve("fs__read") == ("fs", "read")
    assert table.resolve("git__log") == ("git", "log")
    assert table.resolve("nope") is None
    assert "fs__read" in table and "nope" not in table
    assert len(table) == 2


def test_publishing_an_unknown_pair_raises_key_error() -> None:
    with pytest.raises(KeyError):
        build_name_table([("fs", "read")]).publish("fs", "write")


def test_duplicate_pairs_are_published_once() -> None:
    table = build_name_table([("fs", "read"), ("fs", "read")])
    assert list(table) == [NameEntry("fs__read", "fs", "read")]


def test_an_empty_table_is_empty() -> None:
    table = build_name_table([])
    assert len(table) == 0
    assert list(table) == []


def test_iteration_is_ordered_by_server_then_name() -> None:
    table = build_name_table([("b", "x"), ("a", "z"), ("a", "y")])
    assert [(e.server, e.name) for e in table] == [("a", "y"), ("a", "z"), ("b", "x")]


def test_a_collision_gives_the_second_pair_a_hash_suffix() -> None:
    table = build_name_table([("a_", "b"), ("a", "_b")])
    assert table.publish("a", "_b") == "a___b"
    assert table.publish("a_", "b") == f"a___b-{hash8('a_', 'b')}" == "a___b-a00766a3"
    assert table.resolve("a___b") == ("a", "_b")
    assert table.resolve("a___b-a00766a3") == ("a_", "b")


def test_a_collision_after_sanitizing_is_resolved() -> None:
    table = build_name_table([("web", "look up"), ("web", "look_up"), ("web", "look/up")])
    # By (server, name), " " < "/" < "_": the pair with the space keeps the name.
    assert table.publish("web", "look up") == "web__look_up"
    assert table.publish("web", "look/up") == "web__look_up-" + hash8("web", "look/up")
    assert table.publish("web", "look_up") == "web__look_up-" + hash8("web", "look_up")


def test_a_collision_of_long_names_still_fits_in_64() -> None:
    server = "s" * 62
    table = build_name_table([(server, "x"), (server + "_", "_x")])
    names = [entry.published for entry in table]
    assert len(set(names)) == 2
    assert all(is_valid_published_name(name) for name in names)


def test_a_shortened_name_that_collides_with_a_literal_name_gets_a_different_suffix() -> None:
    server, tool = "s", "t" * 70
    shortened = published_name(server, tool)
    literal_server, literal_tool = shortened.split("__", 1)
    table = build_name_table([(server, tool), (literal_server, literal_tool)])
    assert table.publish(literal_server, literal_tool) == shortened
    renamed = table.publish(server, tool)
    assert renamed != shortened
    assert is_valid_published_name(renamed)
    assert table.resolve(renamed) == (server, tool)


def test_a_suffixed_name_never_takes_another_pairs_natural_name() -> None:
    suffixed = f"a___b-{hash8('a_', 'b')}"
    table = build_name_table([("a_", "b"), ("a", "_b"), ("a", f"_b-{hash8('a_', 'b')}")])
    assert table.publish("a", f"_b-{hash8('a_', 'b')}") == suffixed
    assert table.publish("a_", "b") not in ("a___b", suffixed)
    assert len({entry.published for entry in table}) == 3


def test_collision_resolution_does_not_depend_on_input_order() -> None:
    pairs = [("a_", "b"), ("a", "_b"), ("a__", ""), ("", "a___b"), ("x y", "z"), ("x/y", "z"), ("q", "r")]
    expected = list(build_name_table(pairs))
    for permutation in itertools.permutations(pairs):
        assert list(build_name_table(permutation)) == expected


def test_adding_a_pair_renames_only_its_own_collision_group() -> None:
    before = build_name_table([("fs", "read"), ("git", "log"), ("a", "_b")])
    after = build_name_table([("fs", "read"), ("git", "log"), ("a", "_b"), ("a_", "b")])
    for entry in before:
        assert after.publish(entry.server, entry.name) == entry.published


def test_every_published_name_is_valid_and_unique_on_a_messy_catalog() -> None:
    rng = random.Random(7)
    alphabet = "ab_ /é-.:" + "x" * 5
    pairs = {
        (
            "".join(rng.choices(alphabet, k=rng.randint(0, 40))),
            "".join(rng.choices(alphabet, k=rng.randint(0, 40))),
        )
        for _ in range(2000)
    }
    table = build_name_table(pairs)
    published = [entry.published for entry in table]
    assert len(table) == len(pairs) == len(set(published))
    assert all(is_valid_published_name(name) for name in published)
    assert all(table.resolve(table.publish(*pair)) == pair for pair in pairs)


def test_a_plain_server_name_is_its_own_label() -> None:
    assert server_labels(["github", "my.fs-2"]) == {"github": "github", "my.fs-2": "my.fs-2"}


def test_a_token_in_the_server_path_never_reaches_the_label() -> None:
    assert server_labels(["fetch/s3cr3t"]) == {"fetch/s3cr3t": "fetch"}


def test_servers_sharing_a_label_all_get_a_hash_suffix() -> None:
    labels = server_labels(["fetch/a", "fetch/b", "other"])
    assert labels["fetch/a"] == f"fetch-{hash8('fetch/a', '')}"
    assert labels["fetch/b"] == f"fetch-{hash8('fetch/b', '')}"
    assert labels["other"] == "other"


def test_labels_are_sanitized_unique_and_independent_of_order() -> None:
    servers = ["my server", "my_server", "wéb", "/x", "a/b/c", "a"]
    labels = server_labels(servers)
    assert labels == server_labels(reversed(servers))
    assert len(set(labels.values())) == len(servers)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", label) for label in labels.values())
    assert labels["wéb"] == "w_b"
