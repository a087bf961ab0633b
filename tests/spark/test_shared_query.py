"""Sources that name one ``query`` share a streaming query, and lose nothing by it.

Two sources with the payments reader schema (``payments``, with its row rules and six
features; ``cards``, with no rules and two features) get different records, different
damage and different partition counts. Run in one shared query they must give, source by
source, the same counts, window statistics and dead letters as run in a query each, under
one checkpoint instead of two. A source taken out of the query afterwards is refused
before Spark starts, naming the topic whose offsets the checkpoint still holds.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.errors import ConfigError
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.spark.job import run
from driftline.testing.live import build_reference
from tests.conftest import DEMO_PIPELINE, pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

EXACT = ["window_start", "feature", "rows", "nulls", "n", "mean", "min", "max", "distinct_count", "is_final"]
CARDS = """
[sources.cards]
subject = "payments"
query = "{query}"
event_time = "event_time"
entity_id = "card_id"
partitions = 2

[sources.cards.features]
amount = {{ kind = "numeric" }}
country = {{ kind = "categorical" }}
"""


def _pipeline(tmp_path: Path, bootstrap: str, prefix: str, name: str, query: str | None) -> Path:
    """The demo pipeline plus ``cards``; with ``query``, payments and cards share it."""
    replace = {"[sources.payments]\n": f'[sources.payments]\nquery = "{query}"\n'} if query else {}
    cards = CARDS.format(query=query or "cards")
    return pipeline_copy(tmp_path, bootstrap=bootstrap, prefix=prefix, name=name, replace=replace,
                         extra=cards)  # fmt: skip


def _mix(source_seed: int, count: int, every: int):
    """Records one second apart; every ``every``-th frame damaged, a few amounts negative
    (a rule failure for payments, valid for cards)."""
    records = [r.value for r in SignalGenerator("payments", seed=source_seed,
                                                interval=timedelta(seconds=1)).records(count)]  # fmt: skip
    for i in range(7, count, 97):
        records[i]["amount"] = -3.0
    kinds = {i: ("wrong_schema_id", "truncated", "not_framed")[i % 3] for i in range(2, count, every)}
    return encode_mix("payments", records, kinds, seed=source_seed)


def _stats(warehouse: Path, source: str) -> pd.DataFrame:
    frame = read_delta(warehouse / "feature_stats", source=source, columns=EXACT)
    return frame.sort_values(["window_start", "feature"]).reset_index(drop=True)


def _letters(warehouse: Path, source: str) -> pd.DataFrame:
    columns = ["reason", "stage", "_partition", "_offset", "_raw"]
    frame = read_delta(warehouse / "dead_letters", source=source, columns=columns)
    return frame.sort_values(["_partition", "_offset"]).reset_index(drop=True)


def _scores(warehouse: Path, source: str) -> pd.DataFrame:
    columns = ["window_start", "feature", "method", "score", "p_value", "n", "verdict"]
    frame = read_delta(warehouse / "drift_scores", source=source, columns=columns)
    return frame.sort_values(["window_start", "feature", "method"]).reset_index(drop=True)


def test_shared_query_matches_a_query_per_source(spark, kafka_bootstrap, topic_prefix, tmp_path, caplog):
    frames = {"payments": _mix(41, 3000, 113), "cards": _mix(42, 2000, 71)}
    configs = {}
    for layout, query in (("shared", "pay"), ("apart", None)):
        prefix = f"{topic_prefix}{layout}."
        configs[layout] = load_pipeline(_pipeline(tmp_path, kafka_bootstrap, prefix, layout, query))
        for source, partitions in (("payments", 4), ("cards", 2)):
            # each source its own reference (grids from different samples)
            build_reference(configs[layout], source, tmp_path / layout, records=3000, seed=len(source))
            topic = configs[layout].topic(source)
            keys = [f"{source}-{i}".encode() for i in range(len(frames[source]))]  # the same partitions
            produce_frames(kafka_bootstrap, topic, frames[source], keys, partitions)

    shared, apart = configs["shared"], configs["apart"]
    assert shared.queries == {"pay": ["payments", "cards"], "sensors": ["sensors"],
                              "clickstream": ["clickstream"]}  # fmt: skip
    # asking for one source of a shared query runs the whole query
    with caplog.at_level(logging.INFO, logger="driftline.spark"):
        together = run(spark, shared, sources=["cards"], max_records_per_batch=1500).sources
    # one census action per query batch, keyed by source (driftline.spark.fused), none per source
    steps = [r.getMessage() for r in caplog.records if "step=census" in r.getMessage()]
    assert steps and all(m.startswith(f"batch_step source={shared.name}.pay ") for m in steps), steps
    separate = run(spark, apart, sources=["payments", "cards"], max_records_per_batch=1500).sources

    assert set(together) == {"payments", "cards"}
    for source in ("payments", "cards"):
        got, want = together[source], separate[source]
        assert got.read == want.read == len(frames[source]), source
        assert got.reconciles and want.reconciles
        for key in ("valid", "dead_lettered", "late", "by_reason", "windows"):
            assert getattr(got, key) == getattr(want, key), (source, key)
        shared_root, apart_root = (c.path(c.warehouse_dir) for c in (shared, apart))
        pd.testing.assert_frame_equal(_stats(shared_root, source), _stats(apart_root, source),
                                      check_exact=False, rtol=1e-12)  # fmt: skip
        pd.testing.assert_frame_equal(_letters(shared_root, source), _letters(apart_root, source))
        # the reference-grid bins (one sort over both sources' grids) score as the Bucketizer's do
        scores = _scores(shared_root, source)
        assert len(scores) >= 20 and scores["method"].nunique() >= 3, (source, scores)
        pd.testing.assert_frame_equal(scores, _scores(apart_root, source), check_exact=False, rtol=1e-9)
    # the rules are per source: payments dead-letters the negative amounts, cards keeps them
    assert together["payments"].by_reason.get("RULE_FAILED", 0) >= 25
    assert "RULE_FAILED" not in together["cards"].by_reason
    assert set(_stats(shared.path(shared.warehouse_dir), "cards")["feature"]) == {"amount", "country"}

    # each source's dead letters went to its own topic, labelled with it
    for source in ("payments", "cards"):
        letters = [DeadLetter.from_message(m.value(), m.headers())
                   for m in read_topic(kafka_bootstrap, shared.dead_letter_topic(source))]  # fmt: skip
        assert len(letters) == together[source].dead_lettered + together[source].late > 0
        assert {(d.source, d.topic) for d in letters} == {(source, shared.topic(source))}

    # one checkpoint for the shared query, none per source
    checkpoints = Path(shared.location(shared.state_dir)) / "checkpoints" / shared.name
    assert sorted(p.name for p in checkpoints.iterdir()) == ["pay"]
    assert (checkpoints / "pay" / "commits").is_dir()

    # cards leaves the query: its topic's offsets are in the checkpoint, and Spark would
    # stop the query as data loss, so driftline refuses before starting it
    text = (
        Path(shared.base_dir / "shared.toml").read_text().replace('query = "pay"\nevent_time', "event_time")
    )
    (shared.base_dir / "shared.toml").write_text(text)
    parted = load_pipeline(shared.base_dir / "shared.toml")
    assert parted.queries["pay"] == ["payments"] and parted.queries["cards"] == ["cards"]
    with pytest.raises(ConfigError) as refused:
        run(spark, parted, sources=["payments"], max_records_per_batch=1500)
    assert repr(shared.topic("cards")) in str(refused.value) and "query" in str(refused.value)


def test_sources_of_one_query_must_share_the_reader_schema(tmp_path):
    """Validated with the configuration, naming the field, the query and each source's schema."""
    from driftline.config.loader import load_pipeline as load

    text = (
        DEMO_PIPELINE.read_text()
        .replace("[sources.sensors]\n", '[sources.sensors]\nquery = "shared"\n')
        .replace("[sources.payments]\n", '[sources.payments]\nquery = "shared"\n')
    )
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert "query" in message and "'shared'" in message and "payments (payments" in message
    assert "sensors (sensors" in message

    # a query named after another source, which is not in it
    path.write_text(DEMO_PIPELINE.read_text().replace("[sources.payments]\n",
                                                      '[sources.payments]\nquery = "sensors"\n'))  # fmt: skip
    path.write_text(path.read_text().replace("[sources.sensors]\n", '[sources.sensors]\nquery = "other"\n'))
    with pytest.raises(ConfigError) as error:
        load(path)
    assert "sources.payments.query" in str(error.value) and "'sensors'" in str(error.value)
