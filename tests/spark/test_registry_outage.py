"""A schema registry that fails is an outage, not unknown schemas.

Before: any registry error made the id "unknown", so good records became
UNKNOWN_SCHEMA dead letters for ever (the id was cached as unknown). Now only a 404
does; a 5xx or 401 stops the batch with the registry's answer, and the run after the
outage decodes the same records.
"""

from __future__ import annotations

import json

import pytest

from driftline.avro.codec import AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.errors import JobError
from driftline.spark.job import run
from driftline.testing.schema_registry import SchemaRegistryDouble
from tests.conftest import NO_LINGER, SCHEMAS, pipeline_copy
from tests.spark.helpers import produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka]


def test_a_failing_registry_stops_the_batch_and_the_next_run_decodes(spark, kafka_bootstrap, topic_prefix,
                                                                      tmp_path) -> None:  # fmt: skip
    with SchemaRegistryDouble() as server:
        config = load_pipeline(pipeline_copy(
            tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix,
            replace={'# schema_registry_url = "http://localhost:8081"': f'schema_registry_url = "{server.url}"',
                     **NO_LINGER},  # the failed run returns at once
        ))  # fmt: skip
        # another producer registered the payments schema under its own subject: an id the job
        # has not seen, so the batch must ask the registry for it
        local = FileSchemaRegistry(SCHEMAS).get("payments")
        elsewhere = {**local.definition, "doc": "the same fields, registered by another team"}
        other_id = server.register("payments-from-elsewhere", json.dumps(elsewhere))
        encoder = AvroEncoder(local)
        records = [r.value for r in SignalGenerator("payments", seed=3).records(40)]
        frames = [b"\x00" + other_id.to_bytes(4, "big") + encoder.encode(r)[5:] for r in records]
        produce_frames(kafka_bootstrap, config.topic("payments"), frames, [None] * 40, partitions=1)

        server.failing_lookups = 503
        with pytest.raises(JobError, match=rf"SchemaError: schema registry {server.url} could not look up "
                                           rf"schema id {other_id}: HTTP 503"):  # fmt: skip
            run(spark, config, sources=["payments"])
        server.failing_lookups = None

        summary = run(spark, config, sources=["payments"]).as_dict()["sources"]["payments"]
    assert summary["read"] == 40 and summary["reconciles"] is True
    assert "UNKNOWN_SCHEMA" not in summary["by_reason"]
    assert summary["valid"] + summary["late"] + summary["dead_lettered"] == 40 and summary["valid"] > 30
