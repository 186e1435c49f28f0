"""README.md as a reference: every config key the parser knows, every CLI flag and every served path is in it.

The keys come from the parser's own known-key tables (every `*_KEYS`/`*_FIELDS` table of
mcpmux.config), the flags from cli.py's flag tables, the paths from the path table of a built ProxyApp:
a key, flag or endpoint added to the code without a line in the README fails here. The default columns
of the `options` and `mcpProxy.http` tables are read back through the parser and must give the defaults
the code applies (and each flag's row names its default).
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import mcpmux.config
from mcpmux import cli
from mcpmux.cluster.node import Cluster
from mcpmux.config.httplimits import HTTP_KEYS
from mcpmux.config.model import HttpLimits, ProxyConfig, ServerOptions
from mcpmux.config.options import INHERITED_OPTIONS
from mcpmux.config.parse import parse_config
from mcpmux.errors import ConfigErrors
from mcpmux.proxy import Proxy
from mcpmux.web.app import ProxyApp
from mcpmux.web.oauth_front import WELL_KNOWN
from mcpmux.web.pins import PinsEndpoints

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIG_DIR = ROOT / "src" / "mcpmux" / "config"

# Where in the README each known-key table is documented: the section (by its heading) whose text must
# name every key of the table. Which table sits where is the one thing written by hand; that every table
# is placed is checked below, so a new table fails until it is documented.
SECTIONS = {
    "parse.TOP_LEVEL_KEYS": "## Configuration",
    "parse.PROXY_KEYS": "### `mcpProxy`",
    "parse.TRACING_KEYS": "### `mcpProxy`",
    "httplimits.HTTP_KEYS": "### `mcpProxy.http`: limits of the HTTP server",
    "servers.TRANSPORT_FIELD_KEYS": "### `mcpServers.<name>`",
    "servers.SERVER_KEYS": "### `mcpServers.<name>`",
    "options.OPTION_KEYS": "### `options` (on `mcpProxy` as defaults, and per server)",
    "options.PER_SERVER_KEYS": "### `options` (on `mcpProxy` as defaults, and per server)",
    "options.RESTART_KEYS": "### `options` (on `mcpProxy` as defaults, and per server)",
    "options.HEALTH_CHECK_KEYS": "### `options` (on `mcpProxy` as defaults, and per server)",
    "options.TOOL_FILTER_KEYS": "### `options` (on `mcpProxy` as defaults, and per server)",
    "options.OVERRIDE_KEYS": "### `options` (on `mcpProxy` as defaults, and per server)",
    "options.TOKEN_KEYS": "### Auth",
    "groups.MERGED_KEYS": "### `mcpProxy`",
    "groups.GROUP_KEYS": "### `mcpGroups`: hand-picked virtual servers",
    "groups.ROUTE_SETTING_KEYS": "### `mcpGroups`: hand-picked virtual servers",
    "groups.GROUP_MEMBER_KEYS": "### `mcpGroups`: hand-picked virtual servers",
    "legacy.LEGACY_SERVER_KEYS": "### The old format",
    "legacy.LEGACY_CLIENT_KEYS": "### The old format",
    "oauth.OAUTH_KEYS": "### OAuth",
    "oauth.INTROSPECTION_KEYS": "### OAuth",
    "oauth.GRANT_KEYS": "### OAuth",
    "upstream_oauth.UPSTREAM_OAUTH_KEYS": "### OAuth to upstreams",
    "upstream_oauth.TOKEN_STORE_KEYS": "### `mcpProxy`",
    "cluster.CLUSTER_KEYS": "### `mcpProxy`",
    "statekeys.KEY_FIELDS": "### `mcpProxy`",
}
# Tables whose section is a table of keys: each key must head a row there (`| \`key\` |`), not only be
# mentioned. The others are documented as annotated JSON examples or inline (nested objects).
ROW_TABLES = {
    "parse.PROXY_KEYS",
    "httplimits.HTTP_KEYS",
    "servers.SERVER_KEYS",
    "servers.TRANSPORT_FIELD_KEYS",
    "options.OPTION_KEYS",
    "options.PER_SERVER_KEYS",
    "groups.GROUP_KEYS",
    "groups.ROUTE_SETTING_KEYS",
    "legacy.LEGACY_SERVER_KEYS",
    "legacy.LEGACY_CLIENT_KEYS",
    "upstream_oauth.UPSTREAM_OAUTH_KEYS",
}
TABLE_NAME = re.compile(r"[A-Z][A-Z_]*(KEYS|FIELDS)")
# the calls that take a known-key table: as_object(diag, path, value, KEYS), JsonObject(…, KEYS),
# obj.object("key", KEYS)
KNOWN_KEYS_ARG = {"as_object": 3, "JsonObject": 3, "object": 1}


@functools.cache
def key_tables() -> dict[str, tuple[str, ...]]:
    """Every known-key table of the config parser, as `module.NAME` (re-exports counted once)."""
    tables: dict[str, tuple[str, ...]] = {}
    seen: set[int] = set()
    for info in sorted(pkgutil.iter_modules(mcpmux.config.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mcpmux.config.{info.name}")
        for name, value in vars(module).items():
            defined_here = name in _assigned_names(info.name)
            if TABLE_NAME.fullmatch(name) and defined_here and id(value) not in seen:
                seen.add(id(value))
                tables[f"{info.name}.{name}"] = tuple(value)
    return tables


@functools.cache
def _assigned_names(module: str) -> set[str]:
    tree = ast.parse((CONFIG_DIR / f"{module}.py").read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


@functools.cache
def section(heading: str) -> str:
    """The README text under `heading` up to the next heading of the same or a higher level."""
    level = len(heading.split(" ", 1)[0])
    lines = README.splitlines()
    start = lines.index(heading)
    fenced = False
    for end in range(start + 1, len(lines)):
        line = lines[end]
        fenced ^= line.startswith("```")
        hashes = len(line) - len(line.lstrip("#"))
        if not fenced and 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def documented(key: str, text: str) -> bool:
    """Named in backticks (a table row, prose; alone or as the last part of a dotted path such as
    `server.addr`), or as a key of a JSON example."""
    in_backticks = re.search(rf"`(?:[^`\s]*\.)?{re.escape(key)}`", text)
    return in_backticks is not None or f'"{key}":' in text


def test_every_known_key_table_of_the_parser_is_placed_in_a_readme_section() -> None:
    tables = key_tables()
    assert set(tables) == set(SECTIONS), "place new tables in SECTIONS (and document their keys)"
    for heading in set(SECTIONS.values()):
        assert heading in README.splitlines(), heading


@pytest.mark.parametrize("table", sorted(SECTIONS))
def test_every_config_key_is_documented_in_its_readme_section(table: str) -> None:
    text = section(SECTIONS[table])
    keys = key_tables()[table]
    assert keys, table
    missing = [key for key in keys if not documented(key, text)]
    assert not missing, f"{table}: not in README section {SECTIONS[table]!r}: {missing}"


@pytest.mark.parametrize("table", sorted(ROW_TABLES))
def test_every_key_of_a_key_table_heads_a_row_of_its_readme_table(table: str) -> None:
    first_cells = [row.split("|")[1] for row in section(SECTIONS[table]).splitlines() if row.startswith("| ")]
    missing = [key for key in key_tables()[table] if not any(documented(key, cell) for cell in first_cells)]
    assert not missing, f"{table}: no row in README section {SECTIONS[table]!r} for {missing}"


def test_the_parser_reads_objects_only_with_named_key_tables() -> None:
    """A known-key set written inline at a call would hide its keys from the tests above."""
    tables = {name.split(".")[1] for name in key_tables()}
    inline, checked = [], 0
    for path in sorted(CONFIG_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            argument = _known_keys_argument(node)
            if argument is None:
                continue
            checked += 1
            if isinstance(argument, ast.Call) and len(argument.args) == 1:  # tuple(HTTP_KEYS)
                argument = argument.args[0]
            if not (isinstance(argument, ast.Name) and argument.id in tables | {"known_keys"}):
                inline.append(f"{path.name}:{node.lineno}: {ast.unparse(argument)}")
    assert not inline, inline
    assert checked >= 20  # the parser's object reads were found


def _known_keys_argument(node: ast.AST) -> ast.expr | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    index = KNOWN_KEYS_ARG.get(name)
    if index is None or len(node.args) <= index:
        return None
    return node.args[index]


OPTIONS_HEADING = SECTIONS["options.OPTION_KEYS"]
HTTP_HEADING = SECTIONS["httplimits.HTTP_KEYS"]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def default_cell(heading: str, key: str) -> str:
    """The `default` column of the key's row in a README table of keys."""
    row = next(line for line in section(heading).splitlines() if line.startswith(f"| `{key}` |"))
    return row.split("|")[2]


def written_values(cell: str) -> list[Any]:
    """What a default cell may mean: each value in backticks (JSON, else the text) and each bare number."""
    values: list[Any] = []
    for text in [*re.findall(r"`([^`]+)`", cell), *NUMBER.findall(cell)]:
        try:
            values.append(json.loads(text))
        except ValueError:
            values.append(text)
    return values


def parsed(proxy: dict[str, Any]) -> ProxyConfig | None:
    """The config with these `mcpProxy` keys and one stdio server, or None if the parser refuses them."""
    document = {"mcpProxy": proxy, "mcpServers": {"s": {"command": "x"}}}
    try:
        return parse_config(json.dumps(document), "test", environ={}, expand_env=False)[0]
    except ConfigErrors:
        return None


def option_as_read(key: str, value: Any) -> Any:
    config = parsed({"options": {key: value}})
    return None if config is None else getattr(config.servers["s"].options, INHERITED_OPTIONS[key][0])


def http_limit_as_read(key: str, value: Any) -> Any:
    config = parsed({"http": {key: value}})
    return None if config is None else getattr(config.http, HTTP_KEYS[key][0])


@pytest.mark.parametrize("key", sorted(INHERITED_OPTIONS))
def test_every_options_default_in_the_readme_is_the_parsers_default(key: str) -> None:
    """The default column read back through the parser gives the default the code applies."""
    default = getattr(ServerOptions(), INHERITED_OPTIONS[key][0])
    cell = default_cell(OPTIONS_HEADING, key)
    if not default and cell.strip() == "none":
        return
    read = [option_as_read(key, value) for value in written_values(cell)]
    assert default in read, f"options.{key}: README says {cell.strip()!r}, the code's default is {default!r}"


@pytest.mark.parametrize("key", sorted(HTTP_KEYS))
def test_every_http_limit_default_in_the_readme_is_the_parsers_default(key: str) -> None:
    default = getattr(HttpLimits(), HTTP_KEYS[key][0])
    cell = default_cell(HTTP_HEADING, key)
    read = [http_limit_as_read(key, value) for value in written_values(cell)]
    assert default in read, f"http.{key}: README says {cell.strip()!r}, the code's default is {default!r}"


def all_flags() -> list[cli.Flag]:
    return [*cli.GLOBAL_FLAGS, *cli.CLIENT_CONFIG_FLAGS]


@pytest.mark.parametrize("flag", all_flags(), ids=lambda f: f.name)
def test_every_cli_flag_is_in_the_command_line_section_with_its_default(flag: cli.Flag) -> None:
    text = section("## Command line")
    assert f"--{flag.name}" in text, f"--{flag.name} is not in the README's Command line section"
    if isinstance(flag.default, str | int | float) and not isinstance(flag.default, bool):
        row = next(line for line in text.splitlines() if line.startswith(f"| `--{flag.name}"))
        default = f"{flag.default:g}" if isinstance(flag.default, float) else str(flag.default)
        assert default in row, f"--{flag.name}: its default {default} is not in {row!r}"


@pytest.mark.parametrize("command", [cli.CLIENT_CONFIG_COMMAND, cli.PINS_COMMAND, cli.AUTH_COMMAND])
def test_every_subcommand_is_in_the_command_line_section(command: str) -> None:
    assert f"`mcpmux {command} " in section("## Command line")


BASE = "/base"


@functools.cache
def served_paths() -> frozenset[str]:
    """Every path the app serves with every optional part on, written as the README writes them."""
    document: dict[str, Any] = {
        "mcpProxy": {
            "baseURL": f"http://127.0.0.1:9999{BASE}",
            "addr": "127.0.0.1:9999",
            "options": {"oauth": {"issuer": "https://as.example.com", "audience": "mcpmux"}},
            "cluster": {"redis": "redis://127.0.0.1:1/0", "secret": "s" * 32},
        },
        "mcpServers": {
            "srv": {"command": "fixture"},
            "up": {"url": "https://up.example.com/mcp", "oauth": {"clientId": "mcpmux"}},
        },
        "mcpGroups": {"grp": {"servers": ["srv"]}},
    }
    config, _ = parse_config(json.dumps(document), "test", environ={}, expand_env=False)
    app = ProxyApp(Proxy(config))
    app.tables.append(PinsEndpoints(app).table)
    assert config.cluster is not None
    app.tables.append(Cluster(config.cluster, "http://127.0.0.1:9999", config.max_request_bytes).paths)
    app.rebuild()
    return frozenset(_as_written(path) for path in app.table)


def _as_written(path: str) -> str:
    if path.startswith(WELL_KNOWN + "/"):
        return f"{WELL_KNOWN}/<route path>"
    if path.startswith(BASE + "/"):
        path = path[len(BASE) :]
    return path.replace("/srv/", "/<name>/").replace("/up/", "/<name>/").replace("/grp/", "/<group>/")


def test_the_path_table_is_read_with_every_optional_endpoint_on() -> None:
    paths = served_paths()
    expected = {"/_healthz", "/_readyz", "/_status", "/metrics", "/_cluster", "/_pins", "/_oauth/callback"}
    assert expected <= paths
    assert {"/<name>/mcp", "/<group>/sse", "/mcp", f"{WELL_KNOWN}/<route path>"} <= paths


@pytest.mark.parametrize("path", sorted(served_paths()))
def test_every_served_path_is_in_the_endpoints_section(path: str) -> None:
    assert re.search(rf"`{re.escape(path)}[`?]", section("## Endpoints")), (
        f"{path} is not in README's Endpoints"
    )
