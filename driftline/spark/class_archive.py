"""A class-data-sharing archive of the local Spark driver's classes: a faster start.

A local driver JVM loads and verifies about 18,000 classes from pyspark's jars before
its first batch: most of the seconds every ``driftline run``, ``driftline sql``, the
demo and each test process spend before any work. HotSpot's class-data sharing (CDS)
keeps those classes parsed and verified in an archive file that later JVMs map into
memory instead. Measured here (2 cores, Java 17; ``python -m driftline.spark.class_archive
``python -m bench.startup``, also a stage of ``make bench``): a new session and its first
small jobs 18.5 s without the archive and 10.9 s with it.

The archive is a JDK 17 *dynamic* archive (``-XX:ArchiveClassesAtExit``): one driver
JVM runs a small Spark workload (:func:`_workload`: DataFrames, aggregations, Arrow,
Parquet, windows, a streaming query) and writes the classes it loaded at exit. Only the
classes of the JVM's own class path are archived: pyspark's jars. The jars Spark adds
at run time (``spark.jars``: the Kafka connector, spark-avro, Delta) load as before.

An archive holds for one JVM build and one class path, so its file name carries a
fingerprint of both (:func:`fingerprint`): the ``java`` Spark's launcher runs, the
JDK's module image, and pyspark's jar folder. A JVM that finds the archive does not
match (another JDK, changed jars) ignores it and starts as without; its CDS messages
are turned off, so that never reaches a user's console. Environment variables that put
folders on the driver's class path (``SPARK_CONF_DIR``, ``HADOOP_CONF_DIR``,
``YARN_CONF_DIR``, ``SPARK_DIST_CLASSPATH``) turn the archive off: CDS refuses a class
path with a non-empty folder, and a user's own configuration folder is theirs to keep.
``DRIFTLINE_CLASS_ARCHIVE=off`` turns it off too.

Where and when it runs: :func:`build` from ``make install`` (``python -m
driftline.spark.class_archive``), once per fingerprint, in a child process of about 40
seconds; :func:`java_options` on the driver each time
:func:`driftline.spark.session.build_session` starts a local JVM. ``spark-submit`` runs
and executors on a cluster never use it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Environment variables whose folders Spark's launcher puts on the driver's class path.
CLASS_PATH_VARIABLES = ("SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR", "SPARK_DIST_CLASSPATH")

#: Unified-logging selections that silence every CDS message (a mismatched archive
#: otherwise prints a warning on stdout, where ``driftline run`` prints its JSON).
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    """The ``java`` Spark's launcher runs: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def _spark_jars_folder() -> Path:
    import pyspark

    home = os.environ.get("SPARK_HOME")
    return Path(home) / "jars" if home else Path(pyspark.__file__).parent / "jars"


def fingerprint() -> str | None:
    """A digest of the JVM build and the driver's class path; None when no archive may
    be used (no ``java``, or a class-path variable set)."""
    if any(os.environ.get(name) for name in CLASS_PATH_VARIABLES):
        return None
    java = _java()
    if java is None:
        return None
    digest = hashlib.sha256()
    modules = java.parent.parent / "lib" / "modules"  # the JDK's class image: any update changes it
    for path in (java, modules):
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}\n".encode())
    jars = _spark_jars_folder()
    for jar in sorted(jars.glob("*.jar")):
        digest.update(f"{jar}:{jar.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def archive_path(key: str | None = None) -> Path | None:
    """Where the archive of this JVM and class path lives (beside the fetched jars)."""
    from driftline.jvm import jars_home

    key = key or fingerprint()
    return None if key is None else jars_home() / "class-archive" / f"driver-{key}.jsa"


def java_options() -> str:
    """The driver JVM options that use the archive, or ``""`` when there is none for
    this JVM and class path, or ``DRIFTLINE_CLASS_ARCHIVE=off`` says not to."""
    if os.environ.get("DRIFTLINE_CLASS_ARCHIVE") == "off":
        return ""
    path = archive_path()
    if path is None or not path.exists():
        return ""
    return f'"-XX:SharedArchiveFile={path}" {QUIET}'


def _workload() -> None:
    """Runs in the archiving child: the kinds of Spark work a driftline driver does."""
    from pyspark.sql import functions as F

    from driftline.spark.session import build_session

    spark = build_session("driftline-class-archive")
    with tempfile.TemporaryDirectory(prefix="driftline-cds-") as folder:
        import pandas as pd

        frame = spark.createDataFrame(pd.DataFrame({"k": [i % 7 for i in range(2000)],
                                                    "x": [float(i) for i in range(2000)]}))  # fmt: skip
        frame = frame.withColumn("t", F.timestamp_seconds(F.col("x").cast("long")))
        windowed = frame.withColumn("w", F.window("t", "10 seconds")).cache()
        windowed.groupBy("k", "w").agg(
            F.count(F.lit(1)), F.avg("x"), F.var_pop("x"), F.min("x"), F.max("x"),
            F.kll_sketch_agg_double("x", 200), F.count_if(F.col("x").isNull()),
        ).unionByName(windowed.groupBy("k", "w").agg(F.count(F.lit(1)).alias("n")), allowMissingColumns=True
        ).toArrow()  # fmt: skip
        windowed.unpersist()
        frame.write.partitionBy("k").parquet(f"{folder}/table")
        spark.read.parquet(f"{folder}/table").where("k = 3").toPandas()
        stream = (
            spark.readStream.format("rate").option("rowsPerSecond", 100).load()
            .writeStream.foreachBatch(lambda batch, _: batch.groupBy().count().collect())
            .option("checkpointLocation", f"{folder}/checkpoint").trigger(processingTime="1 second").start()
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while (
            stream.lastProgress is None or stream.lastProgress["batchId"] < 2
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        stream.stop()
    from pyspark import SparkContext

    jvm = SparkContext._gateway.proc  # the JVM writes the archive as it exits: wait for that
    spark.stop()
    jvm.stdin.close()  # Spark's gateway exits when the Python side's pipe closes
    jvm.wait(timeout=300)


def build(*, force: bool = False) -> tuple[Path | None, str]:
    """Write this JVM's archive unless it exists; returns its path (None when there is
    none) and what happened, for the install log."""
    key = fingerprint()
    if key is None:
        return None, "no class archive: a class-path variable is set or java was not found"
    path = archive_path(key)
    assert path is not None
    if path.exists() and not force:
        return path, f"class archive {path} is there"
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("driver-*.jsa"):  # another JDK's or pyspark's
        old.unlink()
    partial = path.with_suffix(f".{os.getpid()}.partial")
    env = {**os.environ, "DRIFTLINE_CLASS_ARCHIVE_DUMP": str(partial)}
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "driftline.spark.class_archive", "--workload"],
                                env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        ok = result.returncode == 0 and partial.exists()
        failed = None if ok else (result.stderr.strip() or f"the archiving driver exited {result.returncode}")
    except subprocess.TimeoutExpired:
        failed = "the archiving driver ran for more than 10 minutes"
    if failed is not None:
        partial.unlink(missing_ok=True)
        tail = "\n".join(failed.strip().splitlines()[-5:])
        return None, f"no class archive (Spark starts without it, only slower): {tail}"
    partial.replace(path)
    return path, f"class archive {path} written in {time.monotonic() - started:.0f} s"


def dump_options() -> str:
    """The archiving child's extra driver options (``DRIFTLINE_CLASS_ARCHIVE_DUMP`` set by :func:`build`)."""
    target = os.environ.get("DRIFTLINE_CLASS_ARCHIVE_DUMP")
    return f'"-XX:ArchiveClassesAtExit={target}" {QUIET}' if target else ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--workload"]:
        _workload()
        return 0
    path, message = build(force=args[:1] == ["--force"])
    print(f"driftline: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
