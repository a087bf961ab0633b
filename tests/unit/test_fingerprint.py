"""The batch fingerprint changes with what decides a batch's outputs, and only with that."""

import json

from driftline.avro.registry import FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.spark.job import batch_fingerprint, source_plan
from tests.conftest import DEMO_PIPELINE, SCHEMAS, pipeline_copy


def _fingerprint(pipeline, version="latest") -> str:
    config = load_pipeline(pipeline)
    reader = FileSchemaRegistry(SCHEMAS).get("payments", version)
    return batch_fingerprint(config, "payments", source_plan(config, "payments"), reader)


def test_the_fingerprint_follows_suite_schema_and_windows(tmp_path) -> None:
    base = pipeline_copy(tmp_path, name="a")
    assert _fingerprint(base) == _fingerprint(pipeline_copy(tmp_path, name="b"))  # other folders only
    versions = FileSchemaRegistry(SCHEMAS).versions("payments")
    assert len(versions) >= 2 and _fingerprint(base, versions[0]) != _fingerprint(base)

    suite = json.loads((DEMO_PIPELINE.parent / "expectations" / "payments.json").read_text())
    copied = tmp_path / "payments.json"
    copied.write_text(json.dumps(suite))
    moved = pipeline_copy(tmp_path, name="c", replace={
        f'expectations = "{DEMO_PIPELINE.parent}/expectations/payments.json"': f'expectations = "{copied}"'})  # fmt: skip
    same_bytes = _fingerprint(moved)
    copied.write_text(json.dumps({**suite, "expectations": suite["expectations"][:-1]}))
    assert _fingerprint(moved) != same_bytes  # one rule fewer
    copied.write_text(json.dumps(suite))
    assert _fingerprint(moved) == same_bytes

    later = pipeline_copy(tmp_path, name="d", replace={'watermark = "10 minutes"': 'watermark = "5 minutes"'})
    assert _fingerprint(later) != _fingerprint(base)
