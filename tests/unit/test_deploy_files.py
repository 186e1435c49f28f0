"""Container and deployment files: the Dockerfile's rules, the Helm chart's and compose file's YAML.

There is no Docker engine or helm binary here: `helm lint`/`helm template` are not run. What is checked
instead: every YAML file parses, every `.Values.x.y` a template reads exists in values.yaml, every
`include` is defined and every block closed, the
probes and the image's HEALTHCHECK use the health endpoints, the compose example has three replicas,
Valkey and a balancer that knows them all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mcpmux"
COMPOSE = ROOT / "deploy" / "compose"
VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
OPENERS = ("if ", "with ", "range ", "define ", "block ")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_on_healthz() -> None:
    instructions = dockerfile_instructions()
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (check,) = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert '"python"' in check  # a tool the image has (no curl/wget in a slim image)
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "MCPMUX_HEALTH_URL=http://127.0.0.1:9090/_healthz" in env and "MCPMUX_HEALTH_URL" in check


def test_the_base_image_and_tools_are_pinned() -> None:
    instructions = dockerfile_instructions()
    args = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"])
    assert all(arg.startswith("${PYTHON_IMAGE}") for op, arg in instructions if op == "FROM")
    assert "uv==${UV_VERSION}" in " ".join(arg for op, arg in instructions if op == "RUN")


def test_the_build_context_leaves_out_environments_and_secrets() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".venv-*", "tests", "*.enc", ".env"} <= ignored


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def has_path(tree: Any, dotted: str) -> bool:
    for part in dotted.strip(".").split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def test_the_chart_parses_and_its_templates_read_only_values_that_exist() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "mcpmux"
    (valkey,) = chart["dependencies"]
    assert valkey["name"] == "valkey" and valkey["condition"] == "valkey.enabled"
    values = load_yaml(CHART / "values.yaml")
    templates = sorted((CHART / "templates").glob("*"))
    assert {t.name for t in templates} >= {"deployment.yaml", "service.yaml", "configmap.yaml", "secret.yaml"}
    for template in templates:
        for ref in VALUES_REF.findall(template.read_text()):
            assert has_path(values, ref), f"{template.name} reads .Values{ref}, absent from values.yaml"


def test_the_chart_templates_include_only_defined_templates_and_close_every_block() -> None:
    """What `helm lint` would catch first without a helm binary: an unknown `include`, an unclosed block."""
    templates = sorted((CHART / "templates").glob("*"))
    actions = {t.name: ACTION.findall(t.read_text()) for t in templates}
    defined = {m for acts in actions.values() for a in acts for m in re.findall(r'^define "([^"]+)"', a)}
    assert defined >= {"mcpmux.fullname", "mcpmux.labels", "mcpmux.selector", "mcpmux.secretName"}
    for name, acts in actions.items():
        for included in (m for a in acts for m in re.findall(r'include "([^"]+)"', a)):
            assert included in defined, f"{name} includes {included!r}, defined nowhere"
        depth = 0
        for action in acts:
            depth += action.startswith(OPENERS)
            depth -= action == "end"
            assert depth >= 0, f"{name}: an `end` closes no block"
        assert depth == 0, f"{name}: {depth} block(s) never closed"


def test_the_chart_probes_health_and_readiness_and_mounts_the_config_directory() -> None:
    values = load_yaml(CHART / "values.yaml")
    assert values["probes"]["liveness"]["path"] == "/_healthz"
    assert values["probes"]["readiness"]["path"] == "/_readyz"
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert "livenessProbe" in deployment and "readinessProbe" in deployment
    assert "mountPath: /config" in deployment and "subPath" not in deployment.replace("not a subPath", "")
    assert "replicas: {{ .Values.replicaCount }}" in deployment
    assert "MCPMUX_CLUSTER_ADVERTISE" in deployment and "status.podIP" in deployment


def test_the_compose_example_has_three_replicas_valkey_and_a_balancer_over_them() -> None:
    compose = load_yaml(COMPOSE / "docker-compose.yml")
    services = compose["services"]
    replicas = sorted(name for name in services if name.startswith("mcpmux-"))
    assert replicas == ["mcpmux-1", "mcpmux-2", "mcpmux-3"]
    for name in replicas:
        env = services[name]["environment"]
        assert env["MCPMUX_CLUSTER_REDIS"] == "redis://valkey:6379/0"
    assert "valkey" in services and "lb" in services
    nginx = (COMPOSE / "nginx.conf").read_text()
    assert all(f"server {name}:9090;" in nginx for name in replicas)
    assert "proxy_buffering off;" in nginx
