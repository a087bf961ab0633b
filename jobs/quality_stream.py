"""spark-submit entry point: ``spark-submit jobs/quality_stream.py --pipeline pipelines/demo.toml``.

Thin on purpose: ``main()`` parses arguments, loads the pipeline and builds the
session; ``run(spark, config)`` in ``driftline.spark.job`` does the work, the same
function ``driftline run`` calls.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="driftline quality stream job")
    parser.add_argument("--pipeline", required=True, help="pipeline definition (TOML)")
    parser.add_argument("--until-idle", action="store_true", help="process what is available, then exit")
    parser.add_argument(
        "--source",
        action="append",
        help="only these sources (repeatable; a shared query's other sources come along)",
    )
    parser.add_argument("--max-records-per-batch", type=int, default=None)
    parser.add_argument("--master", default=None, help="Spark master when not run by spark-submit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from driftline.config import load_pipeline
    from driftline.spark.job import run
    from driftline.spark.session import build_session

    config = load_pipeline(args.pipeline)
    # spark-submit starts this script with its JVM already running and says so in the
    # environment; its --master (and spark-defaults.conf) must win then. (A SparkConf()
    # made before the session exists cannot tell: it does not see spark-submit's settings.)
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    spark = build_session(
        f"driftline-{config.name}", master=None if submitted else (args.master or "local[*]")
    )
    summary = run(spark, config, until_idle=args.until_idle, sources=args.source,
                  max_records_per_batch=args.max_records_per_batch)  # fmt: skip
    print(summary.to_json())
    spark.stop()
    return 0 if all(s.reconciles for s in summary.sources.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
