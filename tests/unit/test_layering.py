"""The pure packages import none of the edges' heavy dependencies."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["pyspark", "confluent_kafka", "great_expectations"]
PACKAGE = Path(__file__).resolve().parents[2] / "driftline"
TESTING = PACKAGE / "testing"


@pytest.mark.parametrize(
    "module", ["driftline", "driftline.quality", "driftline.config", "driftline.testing", "driftline.stats"]
)
def test_pure_modules_load_no_edge_dependencies(module) -> None:
    code = f"import sys, json, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_the_check_itself_sees_a_heavy_import() -> None:
    code = "import sys, json, driftline.kafka.clients; print(json.dumps('confluent_kafka' in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(run.stdout) is True


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _leans_on_testing(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == "driftline.testing" or n.startswith("driftline.testing."))


def test_no_production_module_imports_the_test_package() -> None:
    offenders = {}
    for path in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "jobs").rglob("*.py")]:
        if TESTING in path.parents:
            continue
        found = _leans_on_testing(_imported_modules(path))
        if found:
            offenders[str(path.relative_to(PACKAGE.parent))] = found
    assert offenders == {}


def test_the_import_scan_sees_an_import_of_the_test_package(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from driftline.testing.live import wait_until\n")
    assert _leans_on_testing(_imported_modules(probe)) == [
        "driftline.testing.live",
        "driftline.testing.live.wait_until",
    ]
