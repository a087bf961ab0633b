"""Paths, tools and the exporter's metric catalogue for the tests of ``deploy/``.

The tests run the real ``promtool``, ``amtool`` and ``alertmanager`` binaries (Debian
packages ``prometheus`` and ``prometheus-alertmanager``). A missing tool fails the
test rather than skipping it: a skipped check would let broken alerts pass.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from ruamel.yaml import YAML

from driftline.metrics import PipelineMetrics
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "driftline.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "driftline.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE = REPO / "docker-compose.kafka.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "driftline.json"
RUNBOOK = REPO / "docs" / "runbook.md"

INSTALL_HINT = (
    "`make test` installs it (apt-get install prometheus prometheus-alertmanager); by hand on "
    "Debian/Ubuntu: sudo apt-get install -y prometheus prometheus-alertmanager"
)

#: The sample names a metric family of each type exposes, from the family name.
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "untyped": ("",),
}
_TYPE_LINE = re.compile(r"# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<type>\w+)")
_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DRIFTLINE_NAME = re.compile(r"driftline_[a-z_]+")


def exposition(metrics: PipelineMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def declared_sample_names(text: str) -> set[str]:
    """Sample names derived from the ``# TYPE`` lines, which exist before any labelled child.

    prometheus-client writes a counter's TYPE line with or without ``_total`` depending
    on its version; both give ``<base>_total``.
    """
    names = set()
    for line in text.splitlines():
        declared = _TYPE_LINE.fullmatch(line)
        if declared is None:
            continue
        name, kind = declared["name"], declared["type"]
        if kind == "counter":
            name = name.removesuffix("_total")
        names.update(name + suffix for suffix in _SAMPLE_SUFFIXES[kind])
    return names


def sample_names(text: str) -> set[str]:
    """The names of the samples actually present in an exposition."""
    return {_SAMPLE_NAME.match(line)[0] for line in text.splitlines() if line and not line.startswith("#")}


def exported_sample_names() -> frozenset[str]:
    """Every sample name the job's exporter can serve (driftline.metrics.PipelineMetrics)."""
    return frozenset(declared_sample_names(exposition(PipelineMetrics("p"))))


def metric_names_in(text: str) -> set[str]:
    """The driftline metric names a PromQL expression (or a template) refers to."""
    return set(_DRIFTLINE_NAME.findall(text))


def load_yaml(path: Path):
    return YAML(typ="safe", pure=True).load(path)


def dump_yaml(data, path: Path) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # keep PromQL and templates on one line
    yaml.dump(data, path)


def alerting_rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lowercase, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(m[1]) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", RUNBOOK.read_text(), re.M)}


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"{' or '.join(names)} not found on PATH; tests/deploy need it. {INSTALL_HINT}", pytrace=False
    )


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return _tool("prometheus-alertmanager", "alertmanager")
