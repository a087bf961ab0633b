"""Confluent-framed Avro to typed rows, as Spark SQL: the frame check, then spark-avro.

A Kafka value is ``0x00``, a 4-byte big-endian schema id, then the Avro body. Per row,
in the JVM (no Python runs per record):

* not at least 5 bytes, or a first byte other than ``0x00``: ``NOT_FRAMED``;
* a schema id the registry does not know: ``UNKNOWN_SCHEMA``;
* a body that ``from_avro`` (``PERMISSIVE``) cannot decode with the writer schema of
  its id, resolved to the reader schema (the ``avroSchema`` option), or a writer the
  reader cannot resolve at all (checked on the driver with Avro's own rules), or a
  body with bytes after its record, or a top-level string field that is not UTF-8:
  ``DECODE_FAILED`` (the message says which).

Every row keeps its original bytes in ``_raw`` and its Kafka coordinates, so a bad one
becomes a dead letter the batch processor writes as it is.

Where it runs: :meth:`FrameDecoder.decode` runs on the driver once per micro-batch
and only builds a column expression (one ``from_avro`` branch per writer schema id);
Spark evaluates it on the executors. Writer schemas come from the registry on the
driver: all versions of the reader's subject at start, any other id when a batch
first meets it (:meth:`FrameDecoder.learn`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import reduce
from operator import and_
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro, to_avro

from driftline.avro.compat import check_pair
from driftline.avro.registry import RegisteredSchema, SchemaRegistry
from driftline.quality.reasons import ReasonCode
from driftline.quality.schema_drift import IdRange
from driftline.spark.schema import METADATA_COLUMNS, source_columns

logger = logging.getLogger(__name__)
_PROBLEM = "_body_problem"  # the message of what is wrong with a body that decoded, or null

_DECODED = "_decoded"


class FrameDecoder:
    """Builds the decode expression of one source (reader schema fixed, writers learnt).

    Parameters
    ----------
    registry:
        Where writer schemas are looked up by id (file or Confluent registry).
    reader:
        The pipeline's reader schema for the source; every row comes out in its shape.
    """

    def __init__(
        self, registry: SchemaRegistry, reader: RegisteredSchema, *, reject_trailing: bool = True
    ) -> None:
        self.registry = registry
        self.reader = reader
        self._reader_json = json.dumps(reader.definition)
        self.reject_trailing = reject_trailing
        self._data_columns = [name for name, _ in source_columns(reader) if not name.startswith("_")]
        self._writers: dict[int, RegisteredSchema] = {}
        self._unresolvable: dict[int, str] = {}  # writer id -> why the reader cannot read it
        self._unknown: set[int] = set()
        for version in registry.versions(reader.subject):
            self._add(registry.get(reader.subject, version))

    @property
    def known_ids(self) -> frozenset[int]:
        return frozenset(self._writers) | frozenset(self._unresolvable)

    def learn(self, schema_ids: Iterable[int] | int) -> bool:
        """Look up ids not seen before (driver); True when one of them was found."""
        ids = [schema_ids] if isinstance(schema_ids, int) else list(schema_ids)
        found = False
        for schema_id in ids:
            if schema_id in self.known_ids:
                continue
            writer = self.registry.by_id(schema_id)
            if writer is None:
                if schema_id not in self._unknown:
                    logger.warning(
                        "schema_id_unknown id=%d subject=%s: the registry has no such schema; its records "
                        "are dead-lettered as UNKNOWN_SCHEMA",
                        schema_id, self.reader.subject,
                    )  # fmt: skip
                self._unknown.add(schema_id)
                continue
            self._add(writer)
            found = True
        return found

    def _add(self, writer: RegisteredSchema) -> None:
        if writer.schema_id in self.known_ids:
            return
        problem = check_pair(self.reader, writer)
        if problem is not None:
            self._unresolvable[writer.schema_id] = (
                f"writer schema {writer.subject} v{writer.version} (id {writer.schema_id}) cannot be "
                f"read as {self.reader.subject} v{self.reader.version}: {problem}"
            )[:500]
        else:
            self._writers[writer.schema_id] = writer
        logger.info("writer_schema id=%d subject=%s version=%d resolvable=%s", writer.schema_id,
                    writer.subject, writer.version, problem is None)  # fmt: skip

    def decode(self, kafka_rows: DataFrame) -> DataFrame:
        """Spark's Kafka rows (key, value, topic, partition, offset, timestamp, ...) to the
        reader's columns followed by :data:`~driftline.spark.schema.METADATA_COLUMNS`."""
        value = F.col("value")
        framed = value.isNotNull() & (F.length(value) >= 5) & (F.substring(value, 1, 1) == F.lit(b"\x00"))
        schema_id = F.when(framed, self._schema_id(F.substring(value, 2, 4)))
        body = F.expr("substring(value, 6)")
        decoded: Column = F.lit(None)
        branches = sorted(self._writers.items())
        if branches:
            first_id, first = branches[0]
            decoded = F.when(F.col("_schema_id") == first_id, self._from_avro(body, first))
            for writer_id, writer in branches[1:]:
                decoded = decoded.when(F.col("_schema_id") == writer_id, self._from_avro(body, writer))
        reason = (
            F.when(~framed, F.lit(ReasonCode.NOT_FRAMED.value))
            .when(
                ~F.col("_schema_id").isin(*self.known_ids) if self.known_ids else F.lit(True),
                F.lit(ReasonCode.UNKNOWN_SCHEMA.value),
            )  # fmt: skip
            .when(self._failed() | F.col(_PROBLEM).isNotNull(), F.lit(ReasonCode.DECODE_FAILED.value))
        )
        detail = (
            F.when(
                ~framed,
                F.concat(
                    F.lit("value is not Confluent-framed Avro (magic byte 0x00 + 4-byte schema id): "),
                    F.coalesce(F.length(value), F.lit(0)).cast("string"),
                    F.lit(" bytes, first byte 0x"),
                    F.coalesce(F.hex(F.substring(value, 1, 1)), F.lit("--")),
                ),
            )  # fmt: skip
            .when(
                F.col("_reason") == ReasonCode.UNKNOWN_SCHEMA.value,
                F.concat(
                    F.lit("schema id "),
                    F.col("_schema_id").cast("string"),
                    F.lit(" is not in the schema registry"),
                ),
            )  # fmt: skip
            .when(F.col("_reason") == ReasonCode.DECODE_FAILED.value, self._decode_failure_detail())
        )
        rows = (
            kafka_rows.withColumn("_schema_id", schema_id)
            .withColumn(_DECODED, decoded)
            .withColumn(_PROBLEM, self._body_problem(body))
            .withColumn("_reason", reason)
            .withColumn("_detail", detail)
        )
        good = F.col("_reason").isNull()
        data = [F.when(good, F.col(f"{_DECODED}.`{name}`")).alias(name) for name in self._data_columns]
        metadata = {
            "_topic": F.col("topic"),
            "_partition": F.col("partition"),
            "_offset": F.col("offset"),
            "_timestamp": F.col("timestamp"),
            "_key": F.col("key"),
            "_schema_id": F.col("_schema_id"),
            "_raw": value,
            "_reason": F.col("_reason"),
            "_detail": F.col("_detail"),
        }
        return rows.select(*data, *(metadata[name].alias(name) for name, _ in METADATA_COLUMNS))

    def _schema_id(self, header: Column) -> Column:
        """The frame's 4 id bytes as a number: compared as bytes with the ids known (a
        cheap binary comparison), and only an unknown id parsed through its hex text
        (``conv(hex(..))`` allocates two strings a row: it cost as much as ``from_avro``)."""
        parsed = F.conv(F.hex(header), 16, 10).cast("bigint")
        known = sorted(self.known_ids | self._unknown)
        if not known:
            return parsed
        cases = F.when(header == F.lit(known[0].to_bytes(4, "big")), F.lit(known[0]).cast("bigint"))
        for schema_id in known[1:]:
            cases = cases.when(header == F.lit(schema_id.to_bytes(4, "big")), F.lit(schema_id).cast("bigint"))
        return cases.otherwise(parsed)

    def _failed(self) -> Column:
        """``from_avro`` in ``PERMISSIVE`` mode gives a struct of nulls for a body it cannot
        decode; a field the reader declares non-nullable is never null otherwise."""
        required = [f["name"] for f in self.reader.definition["fields"] if not _nullable(f["type"])]
        names = required or self._data_columns
        failed = F.col(_DECODED).isNull()
        if names:
            failed = failed | reduce(and_, (F.col(f"{_DECODED}.`{n}`").isNull() for n in names))
        return failed

    def _trailing(self, body: Column) -> Column:
        """True where the body is longer than the record it holds: ``from_avro`` reads one
        record and ignores what follows (two records glued, a wrong writer schema that
        happens to read a prefix). The writer-shaped record is encoded again with
        ``to_avro`` and the lengths compared. That is exact for a schema without arrays
        and maps: its encoding is canonical in every Avro library (zig-zag varints,
        lengths). Arrays and maps may be written in several blocks, with a length
        different from ``to_avro``'s single block, so writers with one are not checked.
        For the reader's own schema id the decoded column is reused; an older writer's
        body is decoded once more in its own shape."""
        if not self._writers or not self.reject_trailing:
            return F.lit(False)
        check: Column | None = None
        for writer_id, writer in sorted(self._writers.items()):
            definition = json.dumps(writer.definition)
            if _has_blocks(writer.definition):
                continue
            record = (
                F.col(_DECODED)
                if writer_id == self.reader.schema_id
                else from_avro(body, definition, {"mode": "PERMISSIVE"})
            )
            longer = F.length(to_avro(record, definition)) < F.length(body)
            check = (check if check is not None else F).when(F.col("_schema_id") == writer_id, longer)
        return F.lit(False) if check is None else F.coalesce(check.otherwise(F.lit(False)), F.lit(False))

    def _body_problem(self, body: Column) -> Column:
        """What is wrong with a body ``from_avro`` did read, as the dead letter's message, or
        null: bytes after the record (:meth:`_trailing`), or a top-level string field that
        is not UTF-8 (Avro strings must be: Spark keeps the bytes as they are, and a later
        conversion to Python or Arrow fails on them; nested ones are not checked). One
        column, so the reason and the message test each row once."""
        problem: Column = F.lit(None).cast("string")
        for name in reversed(self._string_fields()):
            problem = F.when(
                F.coalesce(~F.is_valid_utf8(F.col(f"{_DECODED}.`{name}`")), F.lit(False)),
                F.lit(f"field {name!r} is not valid UTF-8"),
            ).otherwise(problem)
        # only where from_avro read a record: to_avro cannot re-encode its struct of nulls
        return F.when(self._failed(), F.lit(None).cast("string")).when(
            self._trailing(body),
            F.concat(F.lit("bytes follow the record in the Avro body of writer schema id "),
                     F.col("_schema_id").cast("string")),
        ).otherwise(problem)  # fmt: skip

    def _string_fields(self) -> list[str]:
        def is_string(kind) -> bool:
            return kind == "string" or (isinstance(kind, dict) and kind.get("type") == "string")

        return [
            f["name"]
            for f in self.reader.definition["fields"]
            if any(is_string(k) for k in (f["type"] if isinstance(f["type"], list) else [f["type"]]))
        ]

    def _from_avro(self, body: Column, writer: RegisteredSchema) -> Column:
        options = {"mode": "PERMISSIVE"}
        if writer.schema_id != self.reader.schema_id:
            options["avroSchema"] = self._reader_json
        return from_avro(body, json.dumps(writer.definition), options)

    def _decode_failure_detail(self) -> Column:
        generic = F.concat(
            F.lit("the Avro body does not decode with writer schema id "), F.col("_schema_id").cast("string")
        )
        detail = F.when(self._failed(), generic).otherwise(F.coalesce(F.col(_PROBLEM), generic))
        for writer_id, why in sorted(self._unresolvable.items()):
            detail = F.when(F.col("_schema_id") == writer_id, F.lit(why)).otherwise(detail)
        return detail

    def decode_cached(self, kafka_rows: DataFrame, cache: Callable[[DataFrame], DataFrame]):
        """``cache(decode(kafka_rows))`` and its :meth:`survey`, which materialises the
        cache (one read of the topics); a schema id met for the first time is looked up in
        the registry and, when found, the batch is decoded and cached again with it (the
        first cache unpersisted). ``cache`` persists the frame it returns. Returns
        ``(rows, survey)``; runs on the driver once per micro-batch."""
        rows = cache(self.decode(kafka_rows))
        survey = self.survey(rows)
        if survey.unknown and self.learn(survey.unknown):
            rows.unpersist()
            rows = cache(self.decode(kafka_rows))
        return rows, survey

    def survey(self, decoded: DataFrame) -> Survey:
        """The batch's row count, the schema ids of its ``UNKNOWN_SCHEMA`` rows and its
        records per writer schema id and partition (first and last offset), in one small
        aggregation (the action that materialises the cached decode)."""
        unknown = F.coalesce(F.col("_reason") == ReasonCode.UNKNOWN_SCHEMA.value, F.lit(False))
        keys = [F.col("_schema_id").alias("id"), "_topic", "_partition", unknown.alias("unknown")]
        grouped = decoded.groupBy(*keys)
        rows = grouped.agg(
            F.count(F.lit(1)).alias("n"), F.min("_offset").alias("first"), F.max("_offset").alias("last")
        ).collect()
        ranges = tuple(
            IdRange(int(r["id"]), r["_topic"], int(r["_partition"]), int(r["n"]), int(r["first"]),
                    int(r["last"]))
            for r in rows if r["id"] is not None
        )  # fmt: skip
        unknown_ids = sorted({int(r["id"]) for r in rows if r["id"] is not None and r["unknown"]})
        by_topic: dict[str, int] = {}
        for r in rows:
            by_topic[r["_topic"]] = by_topic.get(r["_topic"], 0) + r["n"]
        return Survey(sum(r["n"] for r in rows), unknown_ids, ranges, by_topic)


@dataclass(frozen=True)
class Survey:
    """What :meth:`FrameDecoder.survey` counted in a batch."""

    read: int
    unknown: list[int]  # schema ids the registry did not know when the batch was decoded
    ranges: tuple[IdRange, ...]  # records per (writer schema id, topic, partition)
    by_topic: dict[str, int] = field(default_factory=dict)  # records per topic

    def of_topic(self, topic: str) -> Survey:
        """The part of the survey about ``topic``'s records (a query of several sources)."""
        ranges = tuple(r for r in self.ranges if r.topic == topic)
        unknown = sorted({r.schema_id for r in ranges} & set(self.unknown))
        return Survey(self.by_topic.get(topic, 0), unknown, ranges, {topic: self.by_topic.get(topic, 0)})


def _nullable(avro_type) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def refuse(rows: DataFrame, bad: Column, reason: ReasonCode, detail: Column) -> DataFrame:
    """``rows`` with ``reason`` and ``detail`` set (``_reason``, ``_detail``) where ``bad``
    holds and no earlier check refused the row; the first reason a row gets is kept. The
    decode stage's value checks (event time, finite features) all mark rows this way."""
    bad = F.col("_reason").isNull() & bad
    return rows.withColumn("_detail", F.when(bad, detail).otherwise(F.col("_detail"))).withColumn(
        "_reason", F.when(bad, F.lit(reason.value)).otherwise(F.col("_reason"))
    )


def _has_blocks(schema: Any) -> bool:
    """Whether an Avro schema (parsed JSON) holds an array or a map anywhere."""
    if isinstance(schema, list):
        return any(_has_blocks(branch) for branch in schema)
    if isinstance(schema, dict):
        if schema.get("type") in ("array", "map"):
            return True
        if schema.get("type") == "record":
            return any(_has_blocks(f["type"]) for f in schema.get("fields", []))
        return _has_blocks(schema.get("type")) if isinstance(schema.get("type"), dict | list) else False
    return False
