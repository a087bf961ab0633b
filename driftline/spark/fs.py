"""The job's own files through Hadoop's FileSystem API, so they work wherever Spark's do.

Checkpoints, window state and its commit records are read and written with the
``FileSystem`` of their path (``file:``, ``hdfs:``, ``s3a:``, or a plain path resolved
against Hadoop's default file system), from the driver, through Spark's JVM. Nothing
here touches the driver's local disk with Python: on a cluster the driver may be on a
different node after a restart, and only the shared storage is the truth.

Every function runs on the driver (inside ``foreachBatch`` or at query start) and does
one or a few metadata operations; none of them starts a Spark job.
"""

from __future__ import annotations

from pyspark.sql import SparkSession


def _fs(spark: SparkSession, path: str):
    hadoop_path = spark._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()), hadoop_path


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def read_text(spark: SparkSession, path: str) -> str | None:
    """A small UTF-8 text file, None if absent."""
    data = read_bytes(spark, path)
    return None if data is None else data.decode("utf-8")


def read_bytes(spark: SparkSession, path: str) -> bytes | None:
    """A whole (small) file's bytes, None if absent."""
    fs, hadoop_path = _fs(spark, path)
    if not fs.exists(hadoop_path):
        return None
    stream = fs.open(hadoop_path)
    try:
        return bytes(spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), atomically: see :func:`write_bytes`."""
    write_bytes(spark, path, text.encode("utf-8"))


def write_bytes(spark: SparkSession, path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` as one step a reader sees whole or not at all:
    written to a hidden sibling, then renamed over the target (an atomic rename on
    HDFS and local file systems; on S3 a single PUT, whole by construction)."""
    fs, target = _fs(spark, path)
    jvm = spark._jvm
    temporary = jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.tmp")
    stream = fs.create(temporary, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    if fs.exists(target):
        fs.delete(target, False)
    if not fs.rename(temporary, target):
        raise OSError(f"could not rename {temporary.toString()} to {path}")


def list_names(spark: SparkSession, path: str) -> list[str]:
    """Names of the entries directly under folder ``path`` (empty if it does not exist)."""
    fs, hadoop_path = _fs(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return [status.getPath().getName() for status in fs.listStatus(hadoop_path)]


def list_files(spark: SparkSession, path: str) -> list[tuple[str, int, int]]:
    """(name, size in bytes, modification time in epoch ms) of the files directly under ``path``."""
    fs, hadoop_path = _fs(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return [
        (s.getPath().getName(), int(s.getLen()), int(s.getModificationTime()))
        for s in fs.listStatus(hadoop_path)
        if s.isFile()
    ]


def qualify(spark: SparkSession, path: str) -> str:
    """``path`` fully qualified by its file system (``/w`` -> ``file:/w``, ``w`` against
    the working directory, ``hdfs://nn/w`` unchanged)."""
    fs, hadoop_path = _fs(spark, path)
    return str(fs.makeQualified(hadoop_path).toString())


def glob(spark: SparkSession, pattern: str) -> list[str]:
    """Paths matching the Hadoop glob ``pattern`` (``*``, ``?``, ``{a,b}``), one listing call."""
    fs, hadoop_path = _fs(spark, pattern)
    return [status.getPath().toString() for status in (fs.globStatus(hadoop_path) or [])]


def delete(spark: SparkSession, path: str) -> None:
    """Remove ``path`` and everything under it (nothing if it does not exist)."""
    fs, hadoop_path = _fs(spark, path)
    fs.delete(hadoop_path, True)


def data_file(name: str) -> bool:
    """Whether ``name`` in a table's folder is a data file: ``*.parquet``, neither hidden
    (``.``: a temporary or checksum file) nor Spark's or Delta's own (``_``)."""
    return name.endswith(".parquet") and name[0] not in "._"


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a URI or a plain path (no normalisation, no local resolution)."""
    return "/".join([str(base).rstrip("/"), *(str(p).strip("/") for p in parts)])
