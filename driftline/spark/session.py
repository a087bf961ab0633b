"""Building the SparkSession driftline's jobs run in.

Local runs use ``local[*]`` with a small number of shuffle partitions (these are
2-core machines), the current interpreter for Python workers, and the JVM jars of
:mod:`driftline.jvm` (Kafka connector, spark-avro, Delta Lake) as ``spark.jars``.
``spark-submit`` runs take their master, resources and jars (``--packages``) from
``spark-conf/`` and the command line instead; :func:`build_session` only fills what
is not set.

A local driver logs with ``spark-conf/log4j2.properties`` and maps the class archive of
:mod:`driftline.spark.class_archive` (seconds off every start), unless the user's own
``SPARK_CONF_DIR`` is set (:func:`_driver_options`).

When it starts the JVM itself, it reads the JVM's stderr through a pipe and passes every
line on, except the two start-up banners no user can act on (:data:`JVM_BANNERS`):
the JVM's note that Spark's launcher always loads ``jdk.incubator.vector``, and
DataSketches' note, printed on class load, that it runs without off-heap memory on
Java > 11 (Spark's KLL sketches do not need it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_SPARK_CONF = Path(__file__).resolve().parents[2] / "spark-conf"

#: JVM options of every driftline JVM (driver and executors); see LOCAL_DEFAULTS.
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # timestamps in the tables as UTC instants (Parquet INT64 micros, isAdjustedToUTC), the same as
    # the files the driver writes with pyarrow; Spark's default, INT96, reads as naive in pandas
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Spark keeps the plans of the last 1,000 SQL executions for its UI; the job runs a few per
    # batch and source and shows no UI, so keep few, and cut a plan's text
    "spark.sql.ui.retainedExecutions": "50",
    "spark.sql.maxPlanStringLength": "100000",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.streaming.stopGracefullyOnShutdown": "true",
    "spark.driver.memory": "2g",
    # a query stopped mid-batch: Spark tells a stop from a failure by matching the Python
    # traceback of foreachBatch against a regex that recurses once per character, and a
    # traceback of a few KB overflowed the default 1 MB thread stack (StackOverflowError
    # printed at every Ctrl-C). 16 MB holds tracebacks of hundreds of frames; it is
    # reserved address space, used only as deep as a thread goes.
    # -XX:-DontCompileHugeMethods: HotSpot never JIT-compiles a method of more than 8,000
    # bytes of bytecode, and Spark's whole-stage code for the decode (one from_avro branch
    # per writer schema, the frame, trailing-bytes and UTF-8 checks) passes that from
    # about 20 fields on, and then runs interpreted: 3.6x slower for a 22-field schema
    # (python -m bench.jit; docs/streaming.md, "Generated code and the JIT")
    "spark.driver.extraJavaOptions": f"-Xss16m {JIT_OPTIONS}",
    "spark.executor.extraJavaOptions": JIT_OPTIONS,
    "spark.sql.adaptive.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Spark caches the classes Janino compiles by their source text; with the stage's id in
    # the class name (the default), the same stage at another position in another batch's
    # plan is new text and is compiled again. A micro-batch plans a dozen small jobs whose
    # stage ids shift with what the batch closes, and the default cache of 100 classes held
    # less than two batches' worth: every batch compiled 40-50 classes again, ~0.4 s
    # (docs/streaming.md, "Compiling a batch's code once")
    "spark.sql.codegen.useIdInClassName": "false",
    "spark.sql.codegen.cache.maxEntries": "1000",
}


#: Start-up lines of the JVM that carry nothing to act on (see the module docstring).
JVM_BANNERS = (
    "WARNING: Using incubator modules: jdk.incubator.vector",
    "Warning: Java versions > Java 11 can only operate in restricted mode",
)


def _forward_jvm_stderr(stream, out=None) -> None:
    """Copy the JVM's stderr to ours, line by line, without the :data:`JVM_BANNERS`."""
    out = out or sys.stderr
    for line in iter(stream.readline, b""):
        text = line.decode("utf-8", errors="replace")
        if not text.startswith(JVM_BANNERS):
            out.write(text)
            out.flush()


def _start_jvm(settings: Mapping[str, str]) -> None:
    """Start Spark's JVM with a filtered stderr, unless one runs already (or spark-submit started us)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None or "PYSPARK_GATEWAY_PORT" in os.environ:
        return
    conf = SparkConf(loadDefaults=False).setAll(list(settings.items()))
    gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(target=_forward_jvm_stderr, args=(gateway.proc.stderr,), name="jvm-stderr",
                     daemon=True).start()  # fmt: skip
    SparkContext._ensure_initialized(gateway=gateway, conf=conf)


def _driver_options(base: str) -> str:
    """``base`` plus the local driver's logging configuration and class archive.

    With ``SPARK_CONF_DIR`` unset, the driver logs with ``spark-conf/log4j2.properties``
    (a system property, not the folder on the class path: class-data sharing refuses a
    class path with a non-empty folder) and maps the class archive of
    :mod:`driftline.spark.class_archive` when ``make install`` wrote one. A user's own
    ``SPARK_CONF_DIR`` is left to Spark: its ``log4j2.properties`` and
    ``spark-defaults.conf`` apply, and no archive is used."""
    if os.environ.get("SPARK_CONF_DIR"):
        return base
    from driftline.spark import class_archive

    log4j = REPO_SPARK_CONF / "log4j2.properties"
    options = [base, f"-Dlog4j2.configurationFile={log4j.as_uri()}" if log4j.exists() else ""]
    options.append(class_archive.dump_options() or class_archive.java_options())
    return " ".join(option for option in options if option)


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
    from pyspark.sql import SparkSession

    settings: dict[str, str] = {"spark.app.name": app_name}
    if master is not None:
        settings["spark.master"] = master
        settings.update(LOCAL_DEFAULTS)
        settings["spark.driver.extraJavaOptions"] = _driver_options(
            LOCAL_DEFAULTS["spark.driver.extraJavaOptions"]
        )
        if not {"spark.jars", "spark.jars.packages"} & set(conf or {}):
            from driftline.jvm import spark_jars

            settings["spark.jars"] = spark_jars()
    settings.update({key: str(value) for key, value in (conf or {}).items()})
    if master is not None:
        _start_jvm(settings)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
