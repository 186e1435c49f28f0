"""Unit tests of relay/merged_catalog.py: what a merged endpoint publishes and how it routes back."""

from __future__ import annotations

from typing import Any

from mcpmux.config.model import ToolFilter, ToolOverride
from mcpmux.core.toolfilter import NameFilter
from mcpmux.relay.merged_catalog import MemberCatalog, MergedCatalog


def member(server: str, label: str | None = None, **fields: Any) -> MemberCatalog[str]:
    return MemberCatalog(member=f"member-{server}", server=server, label=label or server, **fields)


def allow(*names: str) -> NameFilter:
    return NameFilter(ToolFilter("allow", names))


def block(*names: str) -> NameFilter:
    return NameFilter(ToolFilter("block", names))


def test_tools_of_every_member_are_published_as_label_separator_name() -> None:
    catalog = MergedCatalog([member("a", tools=["echo", "slow"]), member("b", tools=["echo"])], "__")
    assert sorted(catalog.tools) == ["a__echo", "a__slow", "b__echo"]
    target = catalog.tools["b__echo"]
    assert (target.member, target.server, target.upstream, target.published) == (
        "member-b",
        "b",
        "echo",
        "b__echo",
    )
    assert catalog.tool_by_pair["a", "slow"].published == "a__slow"


def test_the_separator_is_configurable() -> None:
    catalog = MergedCatalog([member("a", tools=["echo"])], ".")
    assert list(catalog.tools) == ["a.echo"]


def test_the_label_not_the_server_name_is_the_namespace() -> None:
    catalog = MergedCatalog([member("fetch/s3cr3t", label="fetch", tools=["get"])], "__")
    assert list(catalog.tools) == ["fetch__get"]
    assert catalog.tools["fetch__get"].server == "fetch/s3cr3t"


def test_the_servers_own_filter_matches_upstream_names_and_the_groups_the_presented_ones() -> None:
    overrides = {"echo": ToolOverride(name="say")}
    listed = member(
        "a",
        tools=["echo", "slow", "fail"],
        server_filter=block("fail"),
        member_filter=allow("say", "fail"),
        overrides=overrides,
    )
    catalog = MergedCatalog([listed], "__")
    assert list(catalog.tools) == ["a__say"]
    assert catalog.tools["a__say"].upstream == "echo"
    assert not catalog.knows_tool("a", "slow")
    assert listed.shows("echo") and not listed.shows("slow") and not listed.shows("fail")


def test_an_override_changes_name_description_and_title_and_keeps_everything_else() -> None:
    override = ToolOverride(name="say", description="Says it", title="Say")
    catalog = MergedCatalog([member("a", tools=["echo"], overrides={"echo": override})], "__")
    upstream = {"name": "echo", "description": "old", "inputSchema": {"type": "object"}, "_meta": {"x": 1}}
    assert catalog.tools["a__say"].present(upstream) == {
        "name": "a__say",
        "description": "Says it",
        "title": "Say",
        "inputSchema": {"type": "object"},
        "_meta": {"x": 1},
    }


def test_an_override_without_a_new_name_keeps_the_upstream_name() -> None:
    override = ToolOverride(description="Described")
    catalog = MergedCatalog([member("a", tools=["echo"], overrides={"echo": override})], "__")
    presented = catalog.tools["a__echo"].present({"name": "echo", "description": "old", "title": "T"})
    assert presented == {"name": "a__echo", "description": "Described", "title": "T"}


def test_names_that_collide_after_joining_are_resolved_the_same_way_whatever_the_member_order() -> None:
    first = member("a_", tools=["b"])
    second = member("a", tools=["_b"])
    one, other = MergedCatalog([first, second], "__"), MergedCatalog([second, first], "__")
    assert set(one.tools) == set(other.tools)
    assert len(one.tools) == 2
    assert one.tools["a___b"].server == other.tools["a___b"].server == "a"


def test_prompts_are_namespaced_and_resolved() -> None:
    catalog = MergedCatalog([member("a", prompts=["p"]), member("b", prompts=["p"])], "__")
    assert catalog.prompts["b__p"][0].server == "b" and catalog.prompts["b__p"][1] == "p"
    assert catalog.prompt_by_pair["a", "p"] == "a__p"
    assert catalog.knows_prompt("a", "p") and not catalog.knows_prompt("a", "q")


def test_a_uri_only_one_server_offers_is_published_unchanged_and_routed_to_it() -> None:
    a, b = member("a", resources=["x://only-a"]), member("b", resources=["x://only-b"])
    catalog = MergedCatalog([a, b], "__")
    assert catalog.publish_uri(catalog.by_label["a"], "x://only-a") == "x://only-a"
    found = catalog.resolve_uri("x://only-b")
    assert found is not None and found[0].server == "b" and found[1] == "x://only-b"


def test_a_uri_several_servers_offer_is_published_with_the_server_label() -> None:
    catalog = MergedCatalog([member("a", resources=["x://s"]), member("b", resources=["x://s"])], "__")
    assert catalog.publish_uri(catalog.by_label["b"], "x://s") == "mcpmux://b/x://s"
    found = catalog.resolve_uri("mcpmux://b/x://s")
    assert found is not None and (found[0].server, found[1]) == ("b", "x://s")
    bare = catalog.resolve_uri("x://s")
    assert bare is not None and bare[0].server == "a"  # the first member answers a bare shared URI


def test_templates_several_servers_offer_are_labelled_and_their_expansions_routed() -> None:
    a = member("a", template_prefixes=["t://item/"])
    b = member("b", template_prefixes=["t://item/", "t://"])
    catalog = MergedCatalog([a, b], "__")
    assert catalog.publish_template(catalog.by_label["a"], "t://item/{id}") == "mcpmux://a/t://item/{id}"
    assert catalog.publish_template(catalog.by_label["b"], "t://{x}") == "t://{x}"
    expanded = catalog.resolve_uri("mcpmux://b/t://item/7")
    assert expanded is not None and (expanded[0].server, expanded[1]) == ("b", "t://item/7")


def test_the_longest_template_prefix_wins() -> None:
    catalog = MergedCatalog(
        [member("a", template_prefixes=["t://"]), member("b", template_prefixes=["t://deep/"])], "__"
    )
    deep, shallow = catalog.resolve_uri("t://deep/1"), catalog.resolve_uri("t://other")
    assert deep is not None and deep[0].server == "b"
    assert shallow is not None and shallow[0].server == "a"


def test_an_unknown_uri_goes_to_the_only_member_or_nowhere() -> None:
    alone = MergedCatalog([member("a")], "__").resolve_uri("y://anything")
    assert alone is not None and alone[0].server == "a"
    assert MergedCatalog([member("a"), member("b")], "__").resolve_uri("y://anything") is None


def test_an_upstream_uri_that_looks_labelled_but_names_no_member_is_routed_as_it_is() -> None:
    nested = "mcpmux://elsewhere/x://s"
    catalog = MergedCatalog([member("a", resources=[nested]), member("b")], "__")
    found = catalog.resolve_uri(nested)
    assert found is not None and (found[0].server, found[1]) == ("a", nested)
    assert catalog.resolve_uri("mcpmux://b") is None
