"""The decode with and without ``-XX:-DontCompileHugeMethods``, side by side.

HotSpot does not JIT-compile a method of more than 8,000 bytes of bytecode, and Spark's
whole-stage generated code for the decode (:class:`driftline.spark.decode.FrameDecoder`:
the frame check, one ``from_avro`` branch per writer schema, the trailing-bytes and
UTF-8 checks) is one such method. driftline starts its JVMs with the flag
(:data:`driftline.spark.session.JIT_OPTIONS`); this bench shows what it is worth.

Two subjects: the demo's payments schema (11 fields), whose decode method is just under the
limit, and ``bench.many_sources``' generated one (22 fields), whose method is over it.
Each JVM option set runs in a process of its own (a JVM's flags are fixed at start):
``--records`` frames per subject (default 250,000) are built, cached in Spark, and decoded
into a ``noop`` sink with the trailing-bytes check on and off, ``--rounds`` times each,
alternated; the fastest time of each counts (the first rounds pay for the JIT). The two
processes run one after the other, twice, alternated, and the faster of each counts.

``python -m bench.jit`` prints the seconds and the ratio without / with the flag.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

CHECKS = {"trailing check on": True, "trailing check off": False}


def _subjects(folder: Path) -> dict[str, tuple[Any, Any]]:
    """(registry, reader schema) per subject: the demo's payments (11 fields) and
    ``bench.many_sources``' generated wide source (an id, an event time, 20 doubles)."""
    from bench import many_sources
    from driftline.avro.registry import FileSchemaRegistry

    (folder / "wide000").mkdir(parents=True, exist_ok=True)
    (folder / "wide000" / "v1.avsc").write_text(json.dumps(many_sources._schema(0)))
    demo = FileSchemaRegistry(REPO / "schemas")
    wide = FileSchemaRegistry(folder)
    return {
        "payments, 11 fields": (demo, demo.get("payments")),
        "wide, 22 fields": (wide, wide.get("wide000")),
    }


def _records(subject: str, count: int) -> list[dict]:
    from bench import many_sources
    from driftline.demo import SignalGenerator

    if subject.startswith("payments"):
        return [r.value for r in SignalGenerator("payments", seed=1).records(count)]
    return many_sources._rows(count, seed=1)


def _measure(records: int, rounds: int) -> dict[str, dict[str, float]]:
    """In this process's JVM: per subject, the fastest decode of its cached frames per
    check setting, and the largest generated method's bytecode size."""
    from driftline.avro.codec import AvroEncoder
    from driftline.spark.decode import FrameDecoder
    from driftline.spark.session import build_session

    options = os.environ["DRIFTLINE_BENCH_JVM"]
    spark = build_session("driftline-bench-jit", conf={"spark.driver.extraJavaOptions": options})
    now = datetime.now(UTC)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for subject, (registry, reader) in _subjects(Path(folder)).items():
            encoder = AvroEncoder(reader)
            frames = [encoder.encode(r) for r in _records(subject, records)]
            rows = spark.createDataFrame(
                [(None, f, "t", 0, i, now) for i, f in enumerate(frames)],
                "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
            )
            rows = rows.repartition(2).cache()
            rows.count()
            best: dict[str, float] = {}
            for _ in range(rounds):
                for name, reject in CHECKS.items():
                    decoded = FrameDecoder(registry, reader, reject_trailing=reject).decode(rows)
                    started = time.perf_counter()
                    decoded.write.format("noop").mode("overwrite").save()
                    best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
            stats = FrameDecoder(registry, reader).decode(rows)._jdf.queryExecution().debug().codegenToSeq()
            best["method bytes"] = max(stats.apply(i)._3().maxMethodCodeSize() for i in range(stats.size()))
            rows.unpersist()
            out[subject] = best
    spark.stop()
    return out


def measure(
    records: int = 250_000, rounds: int = 4, repeats: int = 2
) -> dict[str, dict[str, dict[str, float]]]:
    """{flag setting: {subject: {check setting: seconds, "method bytes": n}}}, each time
    the fastest of its runs."""
    from driftline.spark.session import JIT_OPTIONS

    settings = {"without the flag": "-Xss16m", "with the flag": f"-Xss16m {JIT_OPTIONS}"}
    results: dict[str, dict[str, dict[str, float]]] = {label: {} for label in settings}
    for _ in range(repeats):
        for label, options in settings.items():
            command = [sys.executable, "-m", "bench.jit", "--child", "--records", str(records),
                       "--rounds", str(rounds)]  # fmt: skip
            env = {**os.environ, "DRIFTLINE_BENCH_JVM": options}
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
            for subject, seconds in json.loads(out.stdout.strip().splitlines()[-1]).items():
                kept = results[label].setdefault(subject, {})
                for name, value in seconds.items():
                    kept[name] = min(kept.get(name, float("inf")), value)
    return results


def report(results: dict[str, dict[str, dict[str, float]]], records: int) -> str:
    from driftline.spark.session import JIT_OPTIONS

    lines = [f"decode of {records:,} cached frames into noop, fastest run, without / with {JIT_OPTIONS}:"]
    without, with_flag = results["without the flag"], results["with the flag"]
    for subject in without:
        size = int(without[subject]["method bytes"])
        lines.append(f"  {subject} (largest generated method {size:,} bytes; HotSpot's limit 8,000):")
        for name in CHECKS:
            a, b = without[subject][name], with_flag[subject][name]
            lines.append(f"    {name:<20} {a:6.3f} s / {b:6.3f} s   {a / b:5.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.records, args.rounds)))
        return
    print(report(measure(args.records, args.rounds), args.records))


if __name__ == "__main__":
    main()
