"""A new checkpoint over a warehouse another run filled stops before Spark starts.

Its batch ids would start at 0 again and overwrite and mix with the old run's batches
(and its window state would read the old run's versions). The first run records its
query id in the warehouse; a run from a new checkpoint is refused, naming both and the
ways out. The old checkpoint, restored, runs on.
"""

from __future__ import annotations

import json
import shutil

import pytest

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.errors import ConfigError
from driftline.spark.job import checkpoint_of, run
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka]


def test_a_new_checkpoint_over_a_filled_warehouse_is_refused(
    spark, kafka_bootstrap, topic_prefix, tmp_path
) -> None:
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    records = [r.value for r in SignalGenerator("payments", seed=4).records(100)]
    produce_frames(
        kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}), [None] * 100
    )
    first = run(spark, config, sources=["payments"]).as_dict()["sources"]["payments"]
    assert first["read"] == 100

    checkpoint = checkpoint_of(config, "payments")
    owner = json.loads((config.path(config.warehouse_dir) / "_state" / "owner" / "payments.json").read_text())
    assert owner["checkpoint"] == checkpoint
    kept = tmp_path / "kept-checkpoint"
    shutil.move(checkpoint, kept)  # the checkpoint is lost; the warehouse stays
    with pytest.raises(ConfigError) as refused:
        run(spark, config, sources=["payments"])
    message = str(refused.value)
    assert message.startswith(
        f"warehouse_dir: {config.location(config.warehouse_dir)} holds source 'payments'"
    )
    assert f"query {owner['query_id']}" in message and "Restore that checkpoint (state_dir)" in message

    shutil.rmtree(checkpoint)  # what the refused run's pre-start checks recorded there
    shutil.move(kept, checkpoint)  # restored: the run goes on where it stopped
    produce_frames(
        kafka_bootstrap, config.topic("payments"), encode_mix("payments", records[:10], {}), [None] * 10
    )
    again = run(spark, config, sources=["payments"]).as_dict()["sources"]["payments"]
    assert again["read"] == 110 and again["reconciles"]


def test_a_run_without_metrics_claims_the_id_its_checkpoint_keeps(
    spark, kafka_bootstrap, topic_prefix, tmp_path
) -> None:
    """The id claimed in the warehouse is the one written in the new checkpoint, whether
    or not the metrics listener read it first: a plain restart goes on."""
    no_metrics = {'enabled = true\naddress = "127.0.0.1"': 'enabled = false\naddress = "127.0.0.1"'}
    config = load_pipeline(
        pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, replace=no_metrics)
    )
    assert not config.metrics.enabled
    records = [r.value for r in SignalGenerator("payments", seed=5).records(60)]
    produce_frames(
        kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}), [None] * 60
    )
    assert run(spark, config, sources=["payments"]).as_dict()["sources"]["payments"]["read"] == 60
    owner = json.loads((config.path(config.warehouse_dir) / "_state" / "owner" / "payments.json").read_text())
    metadata = json.loads((config.path(checkpoint_of(config, "payments")) / "metadata").read_text())
    assert owner["query_id"] == metadata["id"]
    again = run(spark, config, sources=["payments"]).as_dict()["sources"]["payments"]
    assert again["read"] == 60 and again["reconciles"]
