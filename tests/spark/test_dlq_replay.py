"""Dead letters inspected and replayed after a fix, through the job, exactly once.

A payments stream of 600 records: 570 valid, 20 written with a schema version the
registry does not hold yet (``UNKNOWN_SCHEMA``) and 10 damaged frames (``NOT_FRAMED``).
The job dead-letters the 30. Then, as a user would, with the ``driftline`` command:
``dlq inspect`` counts and shows them; the missing schema version is registered; a
replay of the 20 is killed inside its second transaction and run again, then repeated;
a replay of the damaged frames sends nothing. The job runs again on the same checkpoint
and counts the 20 as valid. Nothing is sent twice and every count reconciles.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from driftline.avro.codec import AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.kafka.reading import read_topic
from driftline.spark.job import run
from tests.conftest import REPO, SCHEMAS, pipeline_copy
from tests.spark.helpers import produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]
N, NEW_VERSION, DAMAGED = 600, 20, 10


def _v2(schemas) -> None:
    """payments v2: v1 plus an optional field."""
    definition = json.loads((schemas / "payments" / "v1.avsc").read_text())
    definition["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    (schemas / "payments" / "v2.avsc").write_text(json.dumps(definition, indent=2))


def _driftline(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "driftline.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.fixture(scope="module")
def first_run(spark, kafka_bootstrap, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("replay")
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    future = tmp_path / "future"  # the v2 the producer already writes with, not registered yet
    shutil.copytree(SCHEMAS, future)
    _v2(future)
    path = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:10]}.", replace={
        f'schemas_dir = "{SCHEMAS}"': f'schemas_dir = "{schemas}"',
        'schema_version = "latest"': "schema_version = 1",  # the job's reader stays v1
    })  # fmt: skip
    config = load_pipeline(path)
    records = [r.value for r in SignalGenerator("payments", seed=3, interval=timedelta(seconds=1)).records(N)]
    registry = FileSchemaRegistry(future)
    v1, v2 = AvroEncoder(registry.get("payments", 1)), AvroEncoder(registry.get("payments", 2))
    frames = []
    for i, record in enumerate(records):
        if i >= N - NEW_VERSION:  # the newest records: on time when they come back
            frames.append(v2.encode({**record, "note": f"n{i}"}))
        elif i % 50 == 7 and len([f for f in frames if f[:1] != b"\x00"]) < DAMAGED:
            frames.append(b"not a frame %d" % i)
        else:
            frames.append(v1.encode(record))
    produce_frames(kafka_bootstrap, config.topic("payments"), frames, [str(i).encode() for i in range(N)])
    summary = run(spark, config, sources=["payments"], max_records_per_batch=300).sources["payments"]
    return config, path, schemas, future, summary


def test_inspect_counts_the_dead_letters_and_shows_one(first_run):
    config, path, _, _, summary = first_run
    assert summary.read == N and summary.reconciles
    assert dict(summary.by_reason) == {"UNKNOWN_SCHEMA": NEW_VERSION, "NOT_FRAMED": DAMAGED}
    shown = _driftline("dlq", "inspect", "-p", str(path), "-s", "payments", "--json")
    assert shown.returncode == 0, shown.stderr
    overview = json.loads(shown.stdout)
    assert (overview["dead_letters"], overview["replayed"], overview["outstanding"]) == (30, 0, 30)
    groups = {(g["reason"], g["stage"]): g["count"] for g in overview["groups"]}
    assert groups == {("UNKNOWN_SCHEMA", "decode"): NEW_VERSION, ("NOT_FRAMED", "decode"): DAMAGED}
    listed = _driftline("dlq", "inspect", "-p", str(path), "-s", "payments", "--list", "--json",
                        "--reason", "not_framed")  # fmt: skip
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(lines) == DAMAGED and {line["reason"] for line in lines} == {"NOT_FRAMED"}
    one = _driftline("dlq", "inspect", "-p", str(path), "-s", "payments", "--show", lines[0]["place"])
    assert one.returncode == 0, one.stderr
    assert "driftline.error.reason: NOT_FRAMED" in one.stdout and "|not a frame" in one.stdout
    missing = _driftline("dlq", "inspect", "-p", str(path), "-s", "payments", "--show", "0:999999")
    assert missing.returncode == 2 and "no dead letter at '0:999999'" in missing.stderr
    bad = _driftline("dlq", "inspect", "-p", str(path), "-s", "payments", "--reason", "MELTED")
    assert bad.returncode == 2 and "--reason: 'MELTED' is not one; valid values: NOT_PARSEABLE" in bad.stderr


def test_a_replay_killed_and_repeated_sends_each_record_once_and_the_job_takes_them(first_run, spark):
    config, path, schemas, future, _ = first_run
    before = _driftline("dlq", "replay", "-p", str(path), "-s", "payments", "--reason", "UNKNOWN_SCHEMA",
                        "--dry-run")  # fmt: skip
    assert json.loads(before.stdout)["still_failing"] == {"UNKNOWN_SCHEMA": NEW_VERSION}  # not fixed yet
    shutil.copy(future / "payments" / "v2.avsc", schemas / "payments" / "v2.avsc")  # the fix: register v2
    replay = ["dlq", "replay", "-p", str(path), "-s", "payments", "--reason", "UNKNOWN_SCHEMA",
              "--transaction-records", "5"]  # fmt: skip
    killed = _driftline(*replay, env={"DRIFTLINE_FAULT": "replay_transaction@1"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL inside its second transaction
    resumed = json.loads(_driftline(*replay).stdout)
    assert (resumed["selected"], resumed["already_replayed"], resumed["sent"]) == (NEW_VERSION, 5, 15)
    again = json.loads(_driftline(*replay).stdout)
    assert (again["already_replayed"], again["sent"]) == (NEW_VERSION, 0)
    frames = json.loads(_driftline("dlq", "replay", "-p", str(path), "-s", "payments", "--reason",
                                   "NOT_FRAMED").stdout)  # fmt: skip
    assert (frames["sent"], frames["still_failing"]) == (0, {"NOT_FRAMED": DAMAGED})

    # the source topic holds each replayed record once (the killed transaction was aborted)
    topic = [m for m in read_topic(config.kafka.bootstrap_servers, config.topic("payments"))]
    replayed = Counter(dict(m.headers() or []).get("driftline.replay.of") for m in topic)
    replayed.pop(None)
    assert len(replayed) == NEW_VERSION and set(replayed.values()) == {1}
    assert len(topic) == N + NEW_VERSION

    # the job reads them on the same checkpoint: 20 more read, all valid; the totals reconcile
    summary = run(spark, config, sources=["payments"], max_records_per_batch=300).sources["payments"]
    assert summary.read == N + NEW_VERSION and summary.reconciles
    assert summary.valid == N - NEW_VERSION - DAMAGED + NEW_VERSION and summary.dead_lettered == 30
    overview = json.loads(_driftline("dlq", "inspect", "-p", str(path), "-s", "payments", "--json").stdout)
    assert (overview["dead_letters"], overview["replayed"], overview["outstanding"]) == (30, 20, 10)
    runs = overview["replays"]
    assert [(r["sent"], r["already_replayed"]) for r in runs if not r["dry_run"]] == [
        (15, 5),
        (0, 20),
        (0, 0),
    ]
