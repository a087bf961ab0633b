"""Turn consumed Kafka messages into the Arrow record batches the source yields.

Runs on executors inside ``KafkaStreamReader.read``. Values are decoded in bulk per
chunk (:class:`driftline.kafka.bulk_decode.BulkDecoder`); Kafka metadata is appended
as the ``_``-prefixed columns of :data:`driftline.spark.schema.METADATA_COLUMNS`.
The batch matches the declared Spark schema exactly (pyspark rejects anything else:
column order, int64 for BIGINT, tz-aware microsecond timestamps).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from driftline.kafka.bulk_decode import BulkDecoder
from driftline.kafka.registry import RegisteredSchema, SchemaRegistry

METADATA_ARROW = pa.schema(
    [
        ("_topic", pa.string()),
        ("_partition", pa.int32()),
        ("_offset", pa.int64()),
        ("_timestamp", pa.timestamp("us", tz="UTC")),
        ("_key", pa.binary()),
        ("_schema_id", pa.int64()),
        ("_raw", pa.binary()),
        ("_reason", pa.string()),
        ("_detail", pa.string()),
    ]
)


class RangeDecoder:
    """Decodes chunks of messages of one offset range into Arrow record batches."""

    def __init__(self, registry: SchemaRegistry, reader: RegisteredSchema) -> None:
        # A damaged block makes polars panic and BulkDecoder falls back per record: that is
        # expected data, not a crash, so keep Rust's panic message to one line in task logs.
        os.environ["RUST_BACKTRACE"] = "0"
        self._decoder = BulkDecoder(registry, reader)

    def batches(self, messages: Iterable[Any], chunk_rows: int) -> Iterator[pa.RecordBatch]:
        chunk: list[Any] = []
        for message in messages:
            chunk.append(message)
            if len(chunk) >= chunk_rows:
                yield self.decode(chunk)
                chunk = []
        if chunk:
            yield self.decode(chunk)

    def decode(self, messages: list[Any]) -> pa.RecordBatch:
        values = [m.value() for m in messages]
        decoded = self._decoder.decode(values)
        metadata = [
            pa.array([m.topic() for m in messages], pa.string()),
            pa.array([m.partition() for m in messages], pa.int32()),
            pa.array([m.offset() for m in messages], pa.int64()),
            pa.array([m.timestamp()[1] * 1000 for m in messages], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            pa.array([m.key() for m in messages], pa.binary()),
            pa.array(decoded.schema_ids, pa.int64()),
            pa.array(values, pa.binary()),
            pa.array(decoded.reasons, pa.string()),
            pa.array(decoded.details, pa.string()),
        ]
        table = decoded.table
        columns = [table.column(i).combine_chunks() for i in range(table.num_columns)] + metadata
        schema = pa.schema(list(table.schema) + list(METADATA_ARROW))
        return pa.RecordBatch.from_arrays(columns, schema=schema)
