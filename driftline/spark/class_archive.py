"""A class-data-sharing archive of the local Spark driver's classes: a faster start.

A local driver JVM loads and verifies some 18,000 classes (JDK and pyspark's jars)
before its first batch: most of the seconds every ``driftline run``, ``driftline sql``,
the demo and each test process spend before any work. HotSpot's class-data sharing
(CDS) keeps those classes parsed and verified in an archive file that later JVMs map
into memory instead. Measured here (2 cores, Java 17; ``python -m bench.startup``, also
the first stage of ``make bench``): a new session and its first small jobs 19.0 s
without the archive and 12.3 s with it (0.65x).

The archive is a JDK 17 *dynamic* archive (``-XX:ArchiveClassesAtExit``): one driver
JVM runs a small Spark workload (:func:`_workload`: DataFrames, aggregations, Arrow,
Parquet, windows, a streaming query) and writes the classes it loaded at exit: mostly
pyspark's jars and the JDK classes its base archive lacks. The jars Spark adds at run
time (``spark.jars``: the Kafka connector, spark-avro, Delta) are not on the JVM's
class path and load as they did.

An archive holds for one JVM build and one class path, so its file name carries a
fingerprint of both (:func:`fingerprint`): the ``java`` Spark's launcher runs, the
JDK's ``libjvm.so``, base archive and module image, and pyspark's jars (path, size,
modification time, which the JVM checks too). A JVM that finds the archive does not
match ignores it and starts as without; its CDS messages are turned off, so that never
reaches a user's console. Environment variables that put folders on the driver's class
path (``SPARK_CONF_DIR``, ``HADOOP_CONF_DIR``, ``YARN_CONF_DIR``,
``SPARK_DIST_CLASSPATH``), or a non-empty ``$SPARK_HOME/conf``, turn the archive off:
CDS refuses a class path with a non-empty folder. ``DRIFTLINE_CLASS_ARCHIVE=off`` turns
it off too.

Where and when it runs: :func:`build` from ``make install`` (``python -m
driftline.spark.class_archive``, a no-op when the archive of the current fingerprint
exists, so a JDK update gets a new one at the next ``make install``), in a child
process of about a minute; :func:`java_options` on the driver each time
:func:`driftline.spark.session.build_session` starts a local JVM. ``spark-submit`` runs
and executors on a cluster never use it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from driftline.jvm import java_binary

#: Environment variables whose folders Spark's launcher puts on the driver's class path.
CLASS_PATH_VARIABLES = ("SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR", "SPARK_DIST_CLASSPATH")

#: What the install prints when it writes no archive (it never fails over one).
WITHOUT = "no class archive (Spark starts without it, only slower)"

#: Unified-logging selections that silence every CDS message (a mismatched archive
#: otherwise prints a warning on stdout, where ``driftline run`` prints its JSON).
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _spark_home() -> Path:
    import pyspark

    home = os.environ.get("SPARK_HOME")
    return Path(home) if home else Path(pyspark.__file__).parent


def _stat_line(path: Path) -> bytes:
    stat = path.stat() if path.exists() else None
    return f"{path}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}\n".encode()


def fingerprint() -> str | None:
    """A digest of the JVM build and the driver's class path; None when no archive may
    be used (no ``java``, a class-path variable set, a non-empty Spark ``conf`` folder)."""
    if any(os.environ.get(name) for name in CLASS_PATH_VARIABLES):
        return None
    found = java_binary()
    java = Path(found).resolve() if found else None
    spark_home = _spark_home()
    if java is None or any((spark_home / "conf").glob("*")):
        return None
    jdk = java.parent.parent
    digest = hashlib.sha256()
    # the JVM checks its own build and base archive against a dynamic archive's header
    for path in (java, jdk / "lib" / "modules", jdk / "lib" / "server" / "libjvm.so",
                 jdk / "lib" / "server" / "classes.jsa"):  # fmt: skip
        digest.update(_stat_line(path))
    for jar in sorted((spark_home / "jars").glob("*.jar")):  # and each jar's size and mtime
        digest.update(_stat_line(jar))
    return digest.hexdigest()[:16]


def archive_folder() -> Path:
    """``<venv>/share/driftline/class-archive``: the archive belongs to this venv's pyspark."""
    return Path(sys.prefix) / "share" / "driftline" / "class-archive"


def archive_path(key: str | None = None) -> Path | None:
    """Where the archive of this JVM and class path lives."""
    key = key or fingerprint()
    return None if key is None else archive_folder() / f"driver-{key}.jsa"


def java_options() -> str:
    """The driver JVM options that use the archive, or ``""`` when there is none for
    this JVM and class path, or ``DRIFTLINE_CLASS_ARCHIVE=off`` says not to."""
    if os.environ.get("DRIFTLINE_CLASS_ARCHIVE") == "off":
        return ""
    try:
        path = archive_path()
    except OSError:  # an unreadable jar folder: Spark reports it itself, better than we could
        return ""
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
    if jvm.wait(timeout=300) != 0:  # a JVM that failed while writing leaves a partial archive
        sys.exit(1)


def _clean(folder: Path) -> None:
    """Remove other fingerprints' archives and partial files of writers no longer alive."""
    for old in folder.glob("driver-*.jsa"):
        old.unlink(missing_ok=True)
    for partial in folder.glob("driver-*.partial"):
        pid = partial.suffixes[-2].lstrip(".") if len(partial.suffixes) >= 2 else ""
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            partial.unlink(missing_ok=True)


def _stop(child: subprocess.Popen) -> None:
    """Kill the archiving child and its JVM (one process group): none writes the file later."""
    os.killpg(child.pid, 9)
    child.wait()


def build(*, force: bool = False) -> str | None:
    """Write this JVM's archive unless it exists; returns what happened for the install
    log (None: it was there already)."""
    key = fingerprint()
    if key is None:
        return "no class archive: a class-path variable is set, or Spark's conf folder, or no java"
    path = archive_path(key)
    assert path is not None
    if path.exists() and not force:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean(path.parent)
    partial = path.parent / f"driver-{key}.{os.getpid()}.partial"
    env = {**os.environ, "DRIFTLINE_CLASS_ARCHIVE_DUMP": str(partial)}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "driftline.spark.class_archive", "--workload"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)  # fmt: skip
    try:
        _, stderr = child.communicate(timeout=600)
        text = stderr.decode("utf-8", errors="replace").strip()
        ok = child.returncode == 0 and partial.exists()
        failed = None if ok else (text or f"the archiving driver exited {child.returncode}")
    except subprocess.TimeoutExpired:
        _stop(child)
        failed = "the archiving driver ran for more than 10 minutes"
    except BaseException:  # Ctrl-C: the child runs in its own session, stop it too
        _stop(child)
        partial.unlink(missing_ok=True)
        raise
    if failed is not None:
        partial.unlink(missing_ok=True)
        tail = "\n".join(failed.splitlines()[-5:])
        return f"{WITHOUT}: {tail}"
    partial.replace(path)
    return f"class archive {path} written in {time.monotonic() - started:.0f} s"


def dump_options() -> str:
    """The archiving child's extra driver options (``DRIFTLINE_CLASS_ARCHIVE_DUMP`` set by :func:`build`)."""
    target = os.environ.get("DRIFTLINE_CLASS_ARCHIVE_DUMP")
    return f'"-XX:ArchiveClassesAtExit={target}" {QUIET}' if target else ""


def main(argv: list[str] | None = None) -> int:
    """``--workload``: the archiving child; else write the archive if missing. Exits 0
    even when it cannot write one: the archive only saves time."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--workload"]:
        _workload()
        return 0
    try:
        message = build(force=args[:1] == ["--force"])
    except Exception as error:  # noqa: BLE001 - never fail an install over a speed-up
        message = f"{WITHOUT}: {error}"
    except KeyboardInterrupt:
        print("driftline: class archive not written (interrupted)", file=sys.stderr)
        return 130
    if message:
        print(f"driftline: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
