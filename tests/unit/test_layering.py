"""The pure packages import none of the edges' heavy dependencies."""

import json
import subprocess
import sys

import pytest

HEAVY = ["pyspark", "confluent_kafka", "great_expectations"]


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
