"""Event-time sanity: times the job cannot window become dead letters, not watermarks.

One record with a far-future event time (a ``9999-12-31`` sentinel) would move the
watermark past every open window and make every later record ``LATE_DATA``; one with a
year-1 time (.NET's default date) cannot be handed to Python in a driver whose time
zone is west of UTC. So, as Spark SQL over the decoded rows (no Python per record),
a record whose event time ``t`` satisfies

    t > kafka_timestamp + max_future      or      t outside [EARLIEST, LATEST]

gets reason ``EVENT_TIME_OUT_OF_RANGE`` (stage ``decode``) and a detail naming both
times; it never reaches the windows, the watermark or the driver's ``max(event
time)``. ``EARLIEST``/``LATEST`` are 0001-01-02 and 9999-12-30 UTC: one day inside
what Python's ``datetime`` holds, so no time zone shifts them out of range. A time beyond
Spark's own timestamps (about ±290,000 years) does not decode at all and is a
``DECODE_FAILED`` dead letter already. Applied by
:class:`driftline.spark.batch.BatchProcessor` to every decoded batch, before the batch
is cached.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from driftline.quality.reasons import ReasonCode
from driftline.spark.decode import refuse

EARLIEST_MICROS = -62_135_510_400_000_000  # 0001-01-02T00:00:00Z
LATEST_MICROS = 253_402_128_000_000_000  # 9999-12-30T00:00:00Z
_ISO = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def with_event_time_check(rows: DataFrame, event_time: str, max_future_seconds: int) -> DataFrame:
    """``rows`` (decoded, with ``_timestamp``, ``_reason``, ``_detail``) with the check applied."""
    t, kafka_time = F.col(event_time), F.col("_timestamp")
    micros = F.unix_micros(t)
    out_of_range = (micros < F.lit(EARLIEST_MICROS)) | (micros > F.lit(LATEST_MICROS))
    ahead = micros > F.unix_micros(kafka_time) + F.lit(max_future_seconds * 1_000_000)
    bad = t.isNotNull() & (out_of_range | ahead)
    detail: Column = F.when(
        out_of_range,
        F.concat(F.lit(f"event time {event_time} = "), micros.cast("string"),
                 F.lit(" us since 1970 is outside 0001-01-02..9999-12-30 UTC")),
    ).otherwise(
        F.concat(F.lit(f"event time {event_time} = "), F.date_format(t, _ISO),
                 F.lit(f" is more than {max_future_seconds} s ahead of the record's Kafka timestamp "),
                 F.date_format(kafka_time, _ISO), F.lit(" ([windows] max_future)")),
    )  # fmt: skip
    return refuse(rows, bad, ReasonCode.EVENT_TIME_OUT_OF_RANGE, detail)


__all__ = ["with_event_time_check"]
