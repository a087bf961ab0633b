"""Shared pieces of the Spark-tier tests: pipelines on the session broker, producing known mixes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from deltalake import DeltaTable

from driftline.avro.codec import AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.demo import corrupt_frame
from driftline.kafka.clients import (
    TopicSpec,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
)
from tests.conftest import REPO, SCHEMAS

REGISTRY = FileSchemaRegistry(SCHEMAS)


def read_delta(path, columns: list[str] | None = None, source: str | None = None) -> pd.DataFrame:
    """A quality table's newest snapshot, read with the ``deltalake`` package (not with
    driftline's own reader): only the files its Delta log lists count, so a replaced
    window's old file or a crashed attempt's never does. ``source``: that partition only."""
    filters = [("source", "=", source)] if source else None
    return DeltaTable(str(path)).to_pandas(columns=columns, filters=filters)


SPARK_DELTA = """
import json, sys
from pyspark.sql import SparkSession

jars, warehouse, query, *tables = sys.argv[1:]
spark = (SparkSession.builder.master("local[1]").config("spark.jars", jars)
         .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
         .getOrCreate())
paths = {name: f"delta.`{warehouse}/{name}`" for name in tables}
print(json.dumps({
    "counts": {name: spark.sql(f"select count(*) from {path}").first()[0] for name, path in paths.items()},
    "operations": {name: sorted({r.operation for r in spark.sql(f"describe history {path}").collect()})
                   for name, path in paths.items()},
    "rows": [list(r) for r in spark.sql(query.format(**paths)).collect()] if query else [],
}, default=str))
"""


def spark_delta_read(warehouse: Path, tables: list[str], query: str = "") -> dict:
    """``tables`` of ``warehouse`` read by Delta's own Spark reader, in a fresh pyspark with
    Delta's session extension and catalog (as a user's session would be): row counts,
    the operations in each table's history, and the rows of ``query`` (``{name}`` stands
    for ``delta.`<warehouse>/<name>```)."""
    from driftline.jvm import spark_jars

    done = subprocess.run([sys.executable, "-c", SPARK_DELTA, spark_jars(), str(warehouse), query, *tables],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def produce_frames(
    bootstrap: str, topic: str, frames: list[bytes], keys: list[bytes | None], partitions: int = 4
):
    """Produce ``frames`` as they are; return {(partition, offset): value} from delivery reports."""
    ensure_topics(make_admin(bootstrap), [TopicSpec(topic, partitions)])
    placed: dict[tuple[int, int], bytes] = {}

    def delivered(error, message) -> None:
        assert error is None, error
        placed[(message.partition(), message.offset())] = message.value()

    producer = make_producer(bootstrap)
    for frame, key in zip(frames, keys, strict=True):
        produce(producer, topic, value=frame, key=key, on_delivery=delivered)
    assert producer.flush(60) == 0
    assert len(placed) == len(frames)
    return placed


def encode_mix(source: str, records, frame_kinds: dict[int, str], seed: int = 0) -> list[bytes]:
    """Encode records with the latest schema; damage those whose index is in ``frame_kinds``."""
    encoder = AvroEncoder(REGISTRY.get(source))
    rng = np.random.default_rng(seed)
    out = []
    for index, record in enumerate(records):
        frame = encoder.encode(record)
        out.append(corrupt_frame(frame_kinds[index], frame, rng) if index in frame_kinds else frame)
    return out


def driftline_run(pipeline: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli", "run", "-p", str(pipeline), "--until-idle", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip


def within_rank_bound(values, quantile: float, rank: float, bound: float) -> bool:
    """Whether ``quantile`` is a valid ``rank`` quantile of ``values`` up to ``bound`` in rank.

    With ties (integer features) a value q is an exact rank-r quantile when
    ``P(X < q) <= r <= P(X <= q)``; the sketch may be off by ``bound`` on either side.
    """
    below, at_or_below = (values < quantile).mean(), (values <= quantile).mean()
    return below - bound <= rank <= at_or_below + bound


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """GET a Prometheus text exposition: ``{(sample name, frozenset(labels.items())): value}``."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels`` (None if absent)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else None
