"""SIGKILL the job at random points, restart it from its checkpoint, and compare every
output with a clean run on the same input: nothing lost, nothing doubled. Two sources
run in the one driver (sensors, which drifts half-way, so drift scores, alert events
and the alerts topic are compared too, and payments); every kill takes both down.

A third source, ``cards``, shares one streaming query with ``payments`` (the same reader
schema, ``query = "pay"``): its census is aggregated with payments' in one plan
(:mod:`driftline.spark.fused`), so a kill lands in a shared query's batch too, and
both sources' tables and topics must come out equal to the clean run's.

Two kinds of kill, in one crashed run: first a kill from outside at a random moment
after the first committed batch (``make soak``, with ``DRIFTLINE_SOAK_KILLS=20``: 20 of
them, batches of 300 records, one after each newly committed batch plus a random
moment), then one run per named fault point (:mod:`driftline.faults`: inside a
dead-letter Kafka transaction, between the ``dead_letters`` table and its topic, in the
middle of a window-state write, after everything but the state commit), each at the
batch after the last one's, so every point is hit for sure; then a run to the end. The
random kill adds a moment nobody chose; each kill is a job start-up of its own, which is
why ``make test`` has one of them and ``make soak`` the long series. It prints its
figures (``kills=... runs=...``)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

from driftline import faults
from driftline.config import load_pipeline
from driftline.demo import Drift, SignalGenerator, write_records
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.reference import baseline_from_file
from tests.conftest import REPO, pipeline_copy
from tests.spark.helpers import driftline_run, encode_mix, produce_frames, read_delta, within_rank_bound

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]
RECORDS = 9000
KLL_RANK_BOUND = 0.0165 + 1 / 250  # k=200 bound, plus one step of a ~300-row window's CDF
SECOND = timedelta(seconds=1)  # one record a second: 30 windows of 300 rows, closing batch by batch
DRIFTS = (
    Drift("variance_change", "vibration_mm_s", RECORDS // 2, 2.5),
    Drift("null_rate", "pressure_kpa", RECORDS // 2, 0.3),
)
SOAK_KILLS = int(os.environ.get("DRIFTLINE_SOAK_KILLS", "0"))
PER_BATCH = "300" if SOAK_KILLS else "1000"  # 9 batches: the random kill's, then one per fault point
PAYMENTS = 3000  # the second source: two queries in one driver, killed together
CARDS = 1500  # the third, sharing payments' query
SOURCES = ("--source", "sensors", "--source", "payments")  # payments' query runs cards too
SHARED = {"[sources.payments]\n": '[sources.payments]\nquery = "pay"\n'}
CARDS_SOURCE = """
[sources.cards]
subject = "payments"
query = "pay"
event_time = "event_time"
entity_id = "card_id"
{topic}
[sources.cards.features]
amount = {{ kind = "numeric" }}
country = {{ kind = "categorical" }}
"""


def _committed_batches(pipeline_dir) -> int:
    folder = pipeline_dir / "warehouse" / "_state" / "progress" / "source=sensors"
    return len(list(folder.glob("batch_id=*/_SUCCESS")))


def _run_to_fault(pipeline, point: str, batch_id: int) -> int:
    """Run the job with ``DRIFTLINE_FAULT=point@batch_id``: the driver SIGKILLs itself
    there; what it started (the JVM, Python workers) goes with its process group."""
    process = subprocess.Popen(
        [sys.executable, "-m", "driftline.cli", "run", "-p", str(pipeline), "--until-idle",
         *SOURCES, "--max-records-per-batch", PER_BATCH],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, faults.ENV: f"{point}@{batch_id}"},
    )  # fmt: skip
    code = process.wait(timeout=600)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return code


def _run_until_killed(pipeline, pipeline_dir, kill_after: int, rng: random.Random) -> int | None:
    """Start the job; SIGKILL its whole process group (driver, JVM, Python workers) once
    ``kill_after`` batches are committed plus a random moment (often mid-batch)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "driftline.cli", "run", "-p", str(pipeline), "--until-idle",
         *SOURCES, "--max-records-per-batch", PER_BATCH],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while process.poll() is None and _committed_batches(pipeline_dir) < kill_after:
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.1)
    if process.poll() is not None:
        return process.returncode
    time.sleep(rng.uniform(0.0, 4.0))  # the fault lands anywhere in the next batch
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return None


def _table(pipeline_dir, name: str) -> pd.DataFrame:
    return read_delta(pipeline_dir / "warehouse" / name)


def _dead_letter_topic(bootstrap: str, topic: str) -> Counter:
    letters = [DeadLetter.from_message(m.value(), m.headers()) for m in read_topic(bootstrap, topic)]
    return Counter((letter.origin, letter.reason.value, letter.raw) for letter in letters)


@pytest.fixture(scope="module")
def clean_run(kafka_bootstrap, tmp_path_factory) -> SimpleNamespace:
    """The input topics and the clean run the crashed run is compared with (the same seeded
    records, the same reference; the crashed run writes its own output topics)."""
    root, prefix = tmp_path_factory.mktemp("crash"), f"t{uuid.uuid4().hex[:10]}."
    generated = SignalGenerator("sensors", seed=31, interval=SECOND, drifts=DRIFTS).records(RECORDS)
    records = [r.value for r in generated]
    for index in range(7, RECORDS, 97):
        records[index]["temperature_c"] = 900.0  # breaks the suite's temperature rule
    kinds = {i: ("wrong_schema_id", "truncated", "not_framed")[i % 3] for i in range(13, RECORDS, 151)}
    frames = encode_mix("sensors", records, kinds)
    keys = [r["sensor_id"].encode() for r in records]
    produce_frames(kafka_bootstrap, prefix + "signals.sensors", frames, keys)
    pay = [r.value for r in SignalGenerator("payments", seed=33, interval=SECOND).records(PAYMENTS)]
    pay_kinds = {i: ("truncated", "not_framed")[i % 2] for i in range(11, PAYMENTS, 89)}
    produce_frames(kafka_bootstrap, prefix + "signals.payments", encode_mix("payments", pay, pay_kinds),
                   [r["card_id"].encode() for r in pay])  # fmt: skip
    cards = [r.value for r in SignalGenerator("payments", seed=34, interval=SECOND).records(CARDS)]
    cards_kinds = {i: ("wrong_schema_id", "truncated")[i % 2] for i in range(5, CARDS, 73)}
    produce_frames(kafka_bootstrap, prefix + "signals.cards", encode_mix("payments", cards, cards_kinds),
                   [r["card_id"].encode() for r in cards])  # fmt: skip

    clean = pipeline_copy(root, bootstrap=kafka_bootstrap, prefix=prefix, name="clean", replace=SHARED,
                          extra=CARDS_SOURCE.format(topic=""))  # fmt: skip
    training = SignalGenerator("sensors", seed=32, interval=SECOND).records(6000)
    reference = baseline_from_file(
        load_pipeline(clean),
        "sensors",
        write_records(root / "train.jsonl", training, [*training[0].value]),
    )
    baseline = driftline_run(clean, *SOURCES, "--max-records-per-batch", PER_BATCH)
    assert baseline.returncode == 0, baseline.stderr[-3000:]
    sources = json.loads(baseline.stdout.strip().splitlines()[-1])["sources"]
    return SimpleNamespace(dir=root / "clean", prefix=prefix, sources=sources, records=records, kinds=kinds,
                           reference=reference.path)  # fmt: skip


@pytest.mark.timeout(3600 if SOAK_KILLS else 1200)  # the killed runs and a final one
def test_sigkill_restarts_lose_and_double_nothing(kafka_bootstrap, clean_run, tmp_path) -> None:
    topic_prefix, records, kinds = clean_run.prefix, clean_run.records, clean_run.kinds
    crash = "crash"  # the crashed run's own output topics
    crash_topics = {
        'subject = "sensors"': f'subject = "sensors"\ndead_letter_topic = "dlq.sensors.{crash}"',
        'subject = "payments"': f'subject = "payments"\ndead_letter_topic = "dlq.payments.{crash}"',
        "resolve_after = 3": f'resolve_after = 3\nalerts_topic = "alerts.drift.{crash}"',
        **SHARED,
    }
    crashed = pipeline_copy(
        tmp_path,
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        name="crashed",
        replace=crash_topics,
        extra=CARDS_SOURCE.format(topic=f'dead_letter_topic = "dlq.cards.{crash}"'),
    )
    (tmp_path / "crashed" / "references" / "sensors").mkdir(parents=True)
    shutil.copy(clean_run.reference, tmp_path / "crashed" / "references" / "sensors")
    dirs = {"clean": clean_run.dir, "crashed": tmp_path / "crashed"}

    clean_sources = clean_run.sources
    clean_summary = clean_sources["sensors"]
    assert clean_sources["payments"]["read"] == PAYMENTS and clean_sources["payments"]["reconciles"]
    assert clean_sources["cards"]["read"] == CARDS and clean_sources["cards"]["reconciles"]
    assert clean_summary["read"] == RECORDS and clean_summary["reconciles"]
    assert clean_summary["batches"] >= len(faults.POINTS) + 4

    kills, runs = 0, 0
    rng = random.Random(7)
    wanted = SOAK_KILLS or 1
    for kill_after in range(1, 10 * wanted):  # from outside, at random moments
        if kills == wanted:
            break
        runs += 1
        assert _run_until_killed(crashed, tmp_path / "crashed", kill_after, rng) is None, "the job finished"
        kills += 1
    # the batch after the one the next run begins with: that one may be a replay, whose
    # dead letters are already in their topic (no transaction to kill), the next is fresh
    first = _committed_batches(tmp_path / "crashed") + 1
    assert first + len(faults.POINTS) <= clean_summary["batches"], "too few batches left for the points"
    for offset, point in enumerate(faults.POINTS):  # each point at the batch after the last one's
        runs += 1
        assert _run_to_fault(crashed, point, first + offset) == -signal.SIGKILL, f"{point} was not reached"
        kills += 1
    print(f"kills={kills} runs={runs} batches={_committed_batches(tmp_path / 'crashed')} records={RECORDS}")
    final = driftline_run(crashed, *SOURCES, "--max-records-per-batch", PER_BATCH)
    assert final.returncode == 0, final.stderr[-3000:]
    crash_sources = json.loads(final.stdout.strip().splitlines()[-1])["sources"]
    for source in ("sensors", "payments", "cards"):
        for key in ("read", "valid", "dead_lettered", "by_reason", "late", "windows", "scored_windows",
                    "alerts_fired", "drifted", "reference_version"):  # fmt: skip
            assert crash_sources[source][key] == clean_sources[source][key], (source, key)
    assert set(clean_summary["drifted"]) == {"vibration_mm_s", "pressure_kpa"}

    ignore = ["batch_id", "sketch"]
    stats = {
        name: _table(dirs[name], "feature_stats").drop(columns=ignore)
        .sort_values(["source", "window_start", "feature"]).reset_index(drop=True)
        for name in ("clean", "crashed")
    }  # fmt: skip
    assert len(stats["clean"]) == len(stats["crashed"]) > 0
    assert not stats["crashed"].duplicated(["source", "window_start", "feature"]).any()
    assert set(stats["crashed"]["source"]) == {"sensors", "payments", "cards"}
    exact = ["window_start", "feature", "rows", "nulls", "n", "mean", "stddev", "min", "max", "late_rows",
             "distinct_count", "is_final"]  # fmt: skip
    pd.testing.assert_frame_equal(stats["clean"][exact], stats["crashed"][exact], rtol=1e-12)
    # KLL compaction is randomised: quantiles are compared with the truth, within the bound
    assert clean_summary["late"] == 0
    truth = pd.DataFrame([r for i, r in enumerate(records) if i not in kinds and i % 97 != 7])
    truth["window_start"] = truth["event_time"].dt.floor("5min")  # UTC instants, as in the tables
    for name, table in stats.items():
        for row in table[(table["kind"] == "numeric") & (table["source"] == "sensors")].itertuples():
            values = truth.loc[truth["window_start"] == row.window_start, row.feature].dropna().to_numpy()
            for column, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95)):
                quantile = getattr(row, column)
                assert within_rank_bound(values, quantile, q, KLL_RANK_BOUND), (name, row.feature, column)

    key = ["_topic", "_partition", "_offset"]
    dead = {name: _table(dirs[name], "dead_letters") for name in ("clean", "crashed")}
    assert not dead["crashed"].duplicated(key).any()
    expected = sum(clean_sources[s]["dead_lettered"] + clean_sources[s]["late"] for s in clean_sources)
    assert len(dead["clean"]) == len(dead["crashed"]) == expected
    merged = dead["clean"].merge(dead["crashed"], on=key, suffixes=("", "_crash"))
    assert len(merged) == len(dead["clean"])
    assert (merged["reason"] == merged["reason_crash"]).all()

    for source in ("sensors", "payments", "cards"):
        topic_clean = _dead_letter_topic(kafka_bootstrap, topic_prefix + f"dlq.{source}")
        topic_crash = _dead_letter_topic(kafka_bootstrap, topic_prefix + f"dlq.{source}.{crash}")
        assert set(topic_crash.values()) == {1}, f"a dead letter of {source} is in the topic twice"
        assert topic_crash == topic_clean
        assert sum(topic_clean.values()) == (dead["clean"]["source"] == source).sum() > 0

    # drift: every closed window scored once, the same scores, the same alert events, in table and topic
    def drift_table(name: str, table: str, key: list[str]) -> pd.DataFrame:
        frame = _table(dirs[name], table).drop(columns=["batch_id"])
        assert not frame.duplicated(key).any(), (name, table)
        return frame.sort_values(key).reset_index(drop=True)

    score_key = ["window_start", "feature", "method"]
    scores = {name: drift_table(name, "drift_scores", score_key) for name in ("clean", "crashed")}
    assert len(scores["clean"]) >= 12 * 20
    columns = [*score_key, "score", "p_value", "p_adjusted", "verdict", "n"]
    pd.testing.assert_frame_equal(scores["clean"][columns], scores["crashed"][columns], rtol=1e-12)
    alert_key = ["alert_id", "event", "window_start"]
    alerts = {name: drift_table(name, "alerts", alert_key) for name in ("clean", "crashed")}
    assert len(alerts["clean"]) >= 2
    pd.testing.assert_frame_equal(
        alerts["clean"][[*alert_key, "score"]], alerts["crashed"][[*alert_key, "score"]]
    )

    def events(topic: str) -> Counter:
        return Counter(m.value() for m in read_topic(kafka_bootstrap, topic_prefix + topic))

    crash_events = events(f"alerts.drift.{crash}")
    assert set(crash_events.values()) == {1}, "an alert event is in the topic twice"
    assert crash_events == events("alerts.drift")
    assert sum(crash_events.values()) == len(alerts["clean"])
