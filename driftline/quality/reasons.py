"""Stable reason codes and pipeline stages for dead-lettered records.

The string values are a public contract: they appear in dead-letter headers, quality
tables and metric labels, so they never change once released (add, never rename).

>>> ReasonCode.MISSING_FIELD.value
'MISSING_FIELD'
>>> ReasonCode.MISSING_FIELD.stage
<Stage.INGEST: 'ingest'>
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where in the pipeline a record was rejected."""

    INGEST = "ingest"
    DECODE = "decode"
    RULE = "rule"
    LATE = "late"


class ReasonCode(StrEnum):
    """Why a record was rejected. Each code belongs to exactly one stage."""

    # ingest: the input record against the source's Avro schema
    NOT_PARSEABLE = "NOT_PARSEABLE"
    MISSING_FIELD = "MISSING_FIELD"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    TOO_LARGE = "TOO_LARGE"  # the encoded record is larger than one Kafka message
    # decode: bytes read back from Kafka
    NOT_FRAMED = "NOT_FRAMED"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    DECODE_FAILED = "DECODE_FAILED"
    EVENT_TIME_OUT_OF_RANGE = "EVENT_TIME_OUT_OF_RANGE"
    NOT_FINITE = "NOT_FINITE"  # a numeric feature is +-Infinity (NaN counts as null)
    # rule: row-level expectations
    RULE_FAILED = "RULE_FAILED"
    # late: event time behind the watermark
    LATE_DATA = "LATE_DATA"

    @property
    def stage(self) -> Stage:
        return _STAGE_OF[self]


_STAGE_OF: dict[ReasonCode, Stage] = {
    ReasonCode.NOT_PARSEABLE: Stage.INGEST,
    ReasonCode.MISSING_FIELD: Stage.INGEST,
    ReasonCode.TYPE_MISMATCH: Stage.INGEST,
    ReasonCode.OUT_OF_RANGE: Stage.INGEST,
    ReasonCode.UNKNOWN_FIELD: Stage.INGEST,
    ReasonCode.SCHEMA_INVALID: Stage.INGEST,
    ReasonCode.TOO_LARGE: Stage.INGEST,
    ReasonCode.NOT_FRAMED: Stage.DECODE,
    ReasonCode.UNKNOWN_SCHEMA: Stage.DECODE,
    ReasonCode.DECODE_FAILED: Stage.DECODE,
    ReasonCode.EVENT_TIME_OUT_OF_RANGE: Stage.DECODE,
    ReasonCode.NOT_FINITE: Stage.DECODE,
    ReasonCode.RULE_FAILED: Stage.RULE,
    ReasonCode.LATE_DATA: Stage.LATE,
}
