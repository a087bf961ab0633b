"""Schema evolution: Apache Avro's checker, driven per Schema Registry's modes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.avro.compat import CompatibilityMode, check_subject
from driftline.avro.registry import FileSchemaRegistry
from tests.conftest import SCHEMAS

BASE = {"type": "record", "name": "Reading", "namespace": "t", "fields": [
    {"name": "id", "type": "string"}, {"name": "value", "type": "double"}]}  # fmt: skip


def _subject(tmp_path: Path, *versions: dict) -> FileSchemaRegistry:
    folder = tmp_path / "readings"
    folder.mkdir(parents=True)
    for number, definition in enumerate(versions, start=1):
        (folder / f"v{number}.avsc").write_text(json.dumps(definition))
    return FileSchemaRegistry(tmp_path)


def _with_fields(*extra: dict, drop: str | None = None) -> dict:
    fields = [f for f in BASE["fields"] if f["name"] != drop] + list(extra)
    return {**BASE, "fields": fields}


@pytest.mark.parametrize("mode", list(CompatibilityMode))
def test_shipped_schemas_are_compatible_in_every_mode(mode) -> None:
    registry = FileSchemaRegistry(SCHEMAS)
    assert registry.versions("payments") == [1, 2]
    assert all(check_subject(registry, s, mode) == [] for s in registry.subjects())


def test_added_field_without_default_breaks_backward_and_names_the_field(tmp_path) -> None:
    registry = _subject(tmp_path, BASE, _with_fields({"name": "unit", "type": "string"}))
    [problem] = check_subject(registry, "readings", CompatibilityMode.BACKWARD)
    assert (problem.reader_version, problem.writer_version) == (2, 1)
    assert problem.fields == ("unit",)
    assert problem.kinds == ("reader_field_missing_default_value",)
    assert check_subject(registry, "readings", CompatibilityMode.FORWARD) == []
    assert len(check_subject(registry, "readings", CompatibilityMode.FULL)) == 1


def test_removed_field_without_default_breaks_forward_only(tmp_path) -> None:
    registry = _subject(tmp_path, BASE, _with_fields(drop="value"))
    assert check_subject(registry, "readings", CompatibilityMode.BACKWARD) == []
    [problem] = check_subject(registry, "readings", CompatibilityMode.FORWARD)
    assert (problem.reader_version, problem.writer_version, problem.fields) == (1, 2, ("value",))


def test_type_change_is_reported_and_transitive_checks_all_predecessors(tmp_path) -> None:
    string_value = {**BASE, "fields": [BASE["fields"][0], {"name": "value", "type": "string"}]}
    registry = _subject(
        tmp_path,
        string_value,
        BASE,
        _with_fields({"name": "unit", "type": ["null", "string"], "default": None}),
    )
    plain = check_subject(registry, "readings", CompatibilityMode.BACKWARD)
    transitive = check_subject(registry, "readings", CompatibilityMode.BACKWARD_TRANSITIVE)
    assert [(p.reader_version, p.writer_version) for p in plain] == [(2, 1)]
    assert [(p.reader_version, p.writer_version) for p in transitive] == [(2, 1), (3, 1)]
    assert all(p.kinds == ("type_mismatch",) for p in transitive)


def test_cli_exits_5_and_names_the_offending_field(tmp_path) -> None:
    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    v2 = json.loads((tmp_path / "schemas/payments/v2.avsc").read_text())
    v2["fields"].append({"name": "merchant_id", "type": "string"})
    (tmp_path / "schemas/payments/v3.avsc").write_text(json.dumps(v2))
    run = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "schemas", "check", "--schemas-dir", str(tmp_path / "schemas")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 5, run.stderr
    assert "INCOMPATIBLE payments: v3 cannot read data written with v2" in run.stdout
    assert "field merchant_id" in run.stdout
    assert "ok sensors (v1) BACKWARD" in run.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "schemas", "check", "--schemas-dir", str(SCHEMAS), "--mode", "full"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok payments (v1, v2) FULL" in ok.stdout


def test_cli_rejects_an_unknown_mode_listing_the_valid_ones() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "schemas", "check", "--schemas-dir", str(SCHEMAS), "--mode", "SIDEWAYS"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert (
        "--mode: 'SIDEWAYS' is not a compatibility mode; valid: BACKWARD, BACKWARD_TRANSITIVE" in run.stderr
    )
