"""Building the SparkSession driftline's jobs run in.

Local runs use ``local[*]`` with a small number of shuffle partitions (these are
2-core machines), the current interpreter for Python workers, and the JVM jars of
:mod:`driftline.jvm` (Kafka connector, spark-avro, Delta Lake) as ``spark.jars``.
``spark-submit`` runs take their master, resources and jars (``--packages``) from
``spark-conf/`` and the command line instead; :func:`build_session` only fills what
is not set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_SPARK_CONF = Path(__file__).resolve().parents[2] / "spark-conf"

LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.streaming.stopGracefullyOnShutdown": "true",
    "spark.driver.memory": "2g",
    "spark.sql.adaptive.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def build_session(
    app_name: str = "driftline", *, master: str | None = "local[*]", conf: Mapping[str, Any] | None = None
):
    """Return a SparkSession with the Kafka connector, spark-avro and Delta Lake on its class path.

    Parameters
    ----------
    master:
        ``local[*]`` by default; ``None`` leaves it to ``spark-submit``.
    conf:
        Extra Spark settings; they win over the local defaults.
    """
    # Python workers must run this interpreter (the venv's), not whatever is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log4j = REPO_SPARK_CONF / "log4j2.properties"
    if log4j.exists():
        os.environ.setdefault("SPARK_CONF_DIR", str(REPO_SPARK_CONF))
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
        for key, value in LOCAL_DEFAULTS.items():
            builder = builder.config(key, value)
        conf = dict(conf or {})
        if "spark.jars" not in conf and "spark.jars.packages" not in conf:
            from driftline.jvm import spark_jars

            builder = builder.config("spark.jars", spark_jars())
    for key, value in (conf or {}).items():
        builder = builder.config(key, str(value))
    return builder.getOrCreate()
