"""The layers of src/mcpmux import one way only: config -> protocol -> upstream -> relay -> web -> proxy.

Every import between mcpmux's packages is read from the source (type-checking imports too: they couple
the layers just the same). A module may import its own layer and the layers below it, never above.
`KNOWN_UPWARD` lists the upward imports that remain to be removed (issue 13); it may only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "mcpmux"

# Each top-level module or package of mcpmux and its layer; a module imports only layers <= its own.
LAYERS: dict[str, int] = {
    # the base: pure, shared by every layer (settings, errors, JSON-RPC framing, small pure helpers)
    "__init__": 0,
    "__version__": 0,
    "errors": 0,
    "jsonrpc": 0,
    "core": 0,
    "config": 0,
    "logs": 0,
    "reload": 0,
    "tracing": 0,
    "protocol": 1,  # pure MCP knowledge
    "oauth": 2,  # credentials for upstream HTTP and the resource-server checks
    "upstream": 2,  # transports and supervision
    "relay": 3,  # client sessions, fan-out, routing
    "pinning": 3,
    "clientconfig": 4,
    "web": 4,  # the faces
    "cluster": 5,  # the web layer's hook for several replicas
    "proxy": 6,  # the composition root
    "serve": 6,  # the root task group around it
    "cli": 7,
    "__main__": 7,
}

KNOWN_UPWARD: set[tuple[str, str]] = set()  # none left; keep it empty


def unit_of(module: str) -> str:
    """`mcpmux.upstream.session` -> `upstream`; `mcpmux` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(path: Path) -> set[str]:
    """Every mcpmux module `path` imports, absolute (relative imports resolved)."""
    module = ".".join(("mcpmux", *path.relative_to(SRC).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module or "")
                continue
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            if node.module:
                found.add(".".join((*base, node.module)))
            else:
                found.update(".".join((*base, alias.name)) for alias in node.names)
    return {m for m in found if m == "mcpmux" or m.startswith("mcpmux.")}


def upward_imports() -> set[tuple[str, str]]:
    upward = set()
    for path in sorted(SRC.rglob("*.py")):
        own = unit_of(".".join(("mcpmux", *path.relative_to(SRC).with_suffix("").parts)))
        for target in imported_modules(path):
            other = unit_of(target)
            if LAYERS[other] > LAYERS[own]:
                upward.add((path.relative_to(SRC).as_posix(), other))
    return upward


def test_every_top_level_module_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()}
    units.discard("__pycache__")
    units.discard("static")
    assert units <= set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


def test_no_module_imports_a_layer_above_its_own() -> None:
    new = upward_imports() - KNOWN_UPWARD
    assert not new, f"upward imports (the layers are {LAYERS}): {sorted(new)}"


def test_the_known_upward_imports_are_still_there_so_the_list_only_shrinks() -> None:
    gone = KNOWN_UPWARD - upward_imports()
    assert not gone, f"fixed: remove these from KNOWN_UPWARD: {sorted(gone)}"


def test_the_protocol_layer_imports_only_the_json_rpc_framing() -> None:
    for path in (SRC / "protocol").glob("*.py"):
        outside = {m for m in imported_modules(path) if not m.startswith("mcpmux.protocol")}
        assert outside <= {"mcpmux.jsonrpc"}, (path.name, outside)
