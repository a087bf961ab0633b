"""The JVM artifacts driftline runs on, declared once, and the step that fetches them.

Two sets, each resolved by Maven (``mvn dependency:copy-dependencies``, runtime scope)
from Maven Central into a folder, with Maven's own ``~/.m2`` as the download cache:

* ``spark``: Spark's Kafka connector, spark-avro and Delta Lake, pinned to the
  installed pyspark. :func:`spark_jars` lists the jar files; the SparkSession gets
  them as ``spark.jars``. ``spark-submit`` users pass :func:`spark_packages` with
  ``--packages`` instead and let Spark's Ivy resolve the same coordinates.
* ``kafka``: the Apache Kafka server (KRaft) with what it needs to run, the class path
  of the embedded broker (:mod:`driftline.kafka.broker`).

Jars pyspark already ships (same artifact, any version) are not copied into the spark
set, so a class is never on the class path twice.

Where it runs: ``python -m driftline.jvm fetch`` from ``make install``, once per
change of this list (a stamp file records the list it fetched); nothing here runs
inside a Spark job.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from driftline.errors import DriftlineError

#: The Spark version of the whole set: the newest for which the Kafka connector,
#: spark-avro and delta-spark all resolve on Maven Central (see docs/architecture.md).
SPARK_VERSION = "4.2.0"
SCALA_BINARY = "2.13"
DELTA_VERSION = "4.4.0"
KAFKA_VERSION = "4.1.1"
SLF4J_VERSION = "1.7.36"  # the slf4j-api version kafka_2.13 resolves to


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


SPARK_ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("org.apache.spark", f"spark-sql-kafka-0-10_{SCALA_BINARY}", SPARK_VERSION),
    Artifact("org.apache.spark", f"spark-avro_{SCALA_BINARY}", SPARK_VERSION),
    Artifact("io.delta", f"delta-spark_{SPARK_VERSION.rsplit('.', 1)[0]}_{SCALA_BINARY}", DELTA_VERSION),
)

KAFKA_ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("org.apache.kafka", f"kafka_{SCALA_BINARY}", KAFKA_VERSION),
    # Kafka logs through SLF4J; the simple binding writes to stderr, which the broker
    # manager sends to broker.log.
    Artifact("org.slf4j", "slf4j-simple", SLF4J_VERSION),
)

SETS: dict[str, tuple[Artifact, ...]] = {"spark": SPARK_ARTIFACTS, "kafka": KAFKA_ARTIFACTS}


class JarsMissingError(DriftlineError, FileNotFoundError):
    """The JVM artifacts were not fetched (or were fetched for another list)."""


def java_binary() -> str | None:
    """The ``java`` to run: ``$JAVA_HOME/bin/java`` when it exists, else the one on PATH
    (what Spark's launcher and the embedded broker run); None when there is neither."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is not None and candidate.exists():
        return str(candidate)
    return shutil.which("java")


def jars_home() -> Path:
    """Where fetched jars live: ``$DRIFTLINE_JARS_HOME``, else ``<venv>/share/driftline/jars``
    (beside the installed pyspark, so a new venv fetches its own)."""
    return Path(os.environ.get("DRIFTLINE_JARS_HOME") or Path(sys.prefix) / "share" / "driftline" / "jars")


def spark_packages() -> str:
    """The spark set as ``--packages`` / ``spark.jars.packages`` coordinates."""
    return ",".join(a.coordinate for a in SPARK_ARTIFACTS)


def _fingerprint(artifacts: tuple[Artifact, ...]) -> str:
    return hashlib.sha256(json.dumps([a.coordinate for a in artifacts]).encode()).hexdigest()[:16]


def jar_files(name: str, home: Path | None = None) -> list[Path]:
    """The jar files of one set; :class:`JarsMissingError` when not fetched for this list."""
    folder = (home or jars_home()) / name
    stamp = folder / ".fetched"
    if not stamp.exists() or stamp.read_text().strip() != _fingerprint(SETS[name]):
        raise JarsMissingError(
            f"the {name} jars ({', '.join(a.coordinate for a in SETS[name])}) are not in {folder}; "
            f"fetch them with 'python -m driftline.jvm fetch' (make install does)"
        )
    return sorted(folder.glob("*.jar"))


def spark_jars(home: Path | None = None) -> str:
    """The spark set as a ``spark.jars`` value (comma-separated absolute paths)."""
    return ",".join(str(p) for p in jar_files("spark", home))


def kafka_classpath(home: Path | None = None) -> str:
    """The embedded broker's Java class path."""
    return os.pathsep.join(str(p) for p in jar_files("kafka", home))


def _pom(artifacts: tuple[Artifact, ...]) -> str:
    dependencies = "".join(
        f"<dependency><groupId>{a.group}</groupId><artifactId>{a.name}</artifactId>"
        f"<version>{a.version}</version></dependency>"
        for a in artifacts
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>io.driftline</groupId><artifactId>driftline-jars</artifactId><version>0</version>"
        "<packaging>pom</packaging>"
        f"<dependencies>{dependencies}</dependencies></project>"
    )


def _shipped_by_pyspark() -> set[str]:
    """Artifact names of the jars inside the installed pyspark (``name-1.2.3.jar`` -> ``name``)."""
    import pyspark

    folder = Path(pyspark.__file__).parent / "jars"
    return {_artifact_name(p.name) for p in folder.glob("*.jar")}


def _artifact_name(filename: str) -> str:
    stem = filename.removesuffix(".jar")
    parts = stem.split("-")
    for i, part in enumerate(parts):
        if part[:1].isdigit() and i > 0:
            return "-".join(parts[:i])
    return stem


def fetch(name: str, home: Path | None = None, *, mvn: str = "mvn") -> list[Path]:
    """Resolve one set with Maven into ``<home>/<name>`` (a no-op when already fetched)."""
    try:
        return jar_files(name, home)
    except JarsMissingError:
        pass
    if shutil.which(mvn) is None:
        raise DriftlineError(
            "Maven ('mvn') is needed to fetch driftline's JVM jars from Maven Central; "
            "Debian/Ubuntu: apt-get install -y maven"
        )
    folder = (home or jars_home()) / name
    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="driftline-jars-") as work:
        (Path(work) / "pom.xml").write_text(_pom(SETS[name]))
        goal = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
        command = [mvn, "-B", "-q", "-f", str(Path(work) / "pom.xml"), goal,
                   "-DincludeScope=runtime", f"-DoutputDirectory={folder}"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise DriftlineError(f"mvn could not resolve the {name} jars:\n{tail}")
    if name == "spark":
        shipped = _shipped_by_pyspark()
        for jar in folder.glob("*.jar"):
            if _artifact_name(jar.name) in shipped:
                jar.unlink()
    (folder / ".fetched").write_text(_fingerprint(SETS[name]) + "\n")
    return sorted(folder.glob("*.jar"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["packages"]:
        print(spark_packages())
        return 0
    if args[:1] == ["jars"]:
        try:
            print(spark_jars())
        except JarsMissingError as error:
            print(f"driftline: {error}", file=sys.stderr)
            return 1
        return 0
    if args[:1] != ["fetch"]:
        print("usage: python -m driftline.jvm fetch | jars | packages", file=sys.stderr)
        return 2
    try:
        for name in SETS:
            jars = fetch(name)
            print(f"driftline: {len(jars)} {name} jars in {jars_home() / name}")
    except DriftlineError as error:
        print(f"driftline: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
