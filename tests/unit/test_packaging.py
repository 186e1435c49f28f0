"""Packaging: MIT licence as an SPDX expression with its file, and runtime dependencies that src needs."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def imported_top_level_modules(tree: Path) -> set[str]:
    return {module for path in tree.rglob("*.py") for module in imported_top_level_modules_of(path)}


def imported_top_level_modules_of(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_the_licence_is_an_spdx_string_with_an_mit_licence_file() -> None:
    # A TOML table here makes setuptools >= 77 print a deprecation warning on every install.
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert any(req.startswith("setuptools>=77") for req in PYPROJECT["build-system"]["requires"])


def test_the_installed_package_carries_the_licence_expression() -> None:
    assert metadata("mcpmux")["License-Expression"] == "MIT"


def test_the_mcp_sdk_is_not_a_runtime_dependency_since_src_does_not_import_it() -> None:
    # One exception: the upstream OAuth client's adapter around the SDK's OAuth machinery, an extra.
    src = ROOT / "src" / "mcpmux"
    adapter = src / "oauth" / "flow.py"
    others = [p for p in src.rglob("*.py") if p != adapter]
    assert not any("mcp" in imported_top_level_modules_of(p) for p in others)
    runtime = {requirement_name(req) for req in PROJECT["dependencies"]}
    assert "mcp" not in runtime
    extras = PROJECT["optional-dependencies"]
    assert "mcp>=2.3,<2.4" in extras["test"] and "mcp>=2.3,<2.4" in extras["examples"]
    assert "mcp>=2.3,<2.4" in extras["oauth"]


def test_every_dependency_is_a_range_with_an_upper_bound() -> None:
    requirements = [
        *PROJECT["dependencies"],
        *(r for e in PROJECT["optional-dependencies"].values() for r in e),
    ]
    for requirement in requirements:
        spec = requirement.split(";")[0]
        assert "==" not in spec and ">=" in spec and "<" in spec, requirement


def test_python_dotenv_is_a_runtime_dependency_because_src_imports_it() -> None:
    assert "dotenv" in imported_top_level_modules(ROOT / "src" / "mcpmux")
    assert "python-dotenv" in {requirement_name(req) for req in PROJECT["dependencies"]}
