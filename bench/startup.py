"""A local Spark driver's start with and without the class archive, side by side.

:mod:`driftline.spark.class_archive` (written by ``make install``) keeps the classes a
driver loads from pyspark's jars parsed and verified in a class-data-sharing archive.
Each round starts two fresh processes, one after the other, alternating which goes
first: one with the archive (the default) and one with ``DRIFTLINE_CLASS_ARCHIVE=off``.
A process times ``build_session()`` (the JVM, the SparkContext, the session) and its
first small jobs (an aggregation collected as Arrow, a Parquet write and read back):
what every ``driftline run``, ``driftline sql``, demo and test process spends before
its own work. The median of each setting counts.

``python -m bench.startup --rounds 3`` prints the seconds and the ratio with / without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = {"with the archive": {}, "without": {"DRIFTLINE_CLASS_ARCHIVE": "off"}}


def _child() -> None:
    """One fresh driver: seconds to a session, then to the end of its first jobs (JSON)."""
    started = time.perf_counter()
    from pyspark.sql import functions as F

    from driftline.spark.session import build_session

    spark = build_session("driftline-bench-startup")
    session = time.perf_counter()
    frame = spark.range(20_000).select((F.col("id") % 7).alias("k"), F.col("id").cast("double").alias("x"))
    frame.groupBy("k").agg(F.avg("x"), F.kll_sketch_agg_double("x", 200)).toArrow()
    with tempfile.TemporaryDirectory() as folder:
        frame.write.parquet(f"{folder}/t")
        spark.read.parquet(f"{folder}/t").where("k = 3").count()
    done = time.perf_counter()
    print(json.dumps({"session": session - started, "first_jobs": done - session}))
    spark.stop()


def measure(rounds: int = 3) -> dict[str, list[dict[str, float]]]:
    """Per setting, each round's ``session`` and ``first_jobs`` seconds."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    for round_ in range(rounds):
        order = list(SETTINGS) if round_ % 2 == 0 else list(reversed(SETTINGS))
        for name in order:
            env = {**os.environ, **SETTINGS[name]}
            run = subprocess.run([sys.executable, "-m", "bench.startup", "--child"], env=env,
                                 capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
            out[name].append(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def report(result: dict[str, list[dict[str, float]]]) -> str:
    totals = {
        name: statistics.median(r["session"] + r["first_jobs"] for r in runs) for name, runs in result.items()
    }
    lines = []
    for name, runs in result.items():
        session = statistics.median(r["session"] for r in runs)
        jobs = statistics.median(r["first_jobs"] for r in runs)
        total = totals[name]
        lines.append(f"{name:<17} session {session:5.2f} s + first jobs {jobs:5.2f} s = {total:5.2f} s "
                     f"(median of {len(runs)})")  # fmt: skip
    with_, without = totals["with the archive"], totals["without"]
    lines.append(f"with / without: {with_ / without:.2f}x ({without - with_:.1f} s less per driver process)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child()
        return
    print(report(measure(args.rounds)))


if __name__ == "__main__":
    main()
