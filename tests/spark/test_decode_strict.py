"""The decode stage's strict checks, on frames built by hand: bytes after the record and
string fields that are not UTF-8 are DECODE_FAILED, and ``reject_trailing_bytes = false``
lets the first through (what Confluent's deserializers and spark-avro do)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from driftline.avro.codec import AvroEncoder
from driftline.demo import SignalGenerator
from driftline.spark.decode import FrameDecoder
from tests.spark.helpers import REGISTRY

pytestmark = pytest.mark.spark


def _rows(spark, frames: list[bytes]):
    now = datetime.now(UTC)
    rows = [(None, f, "t", 0, i, now) for i, f in enumerate(frames)]
    return spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )


@pytest.mark.parametrize("reject", [True, False])
def test_trailing_bytes_and_invalid_utf8(spark, reject) -> None:
    writer = REGISTRY.get("clickstream")
    record = next(iter(SignalGenerator("clickstream", seed=1).records(1))).value
    good = AvroEncoder(writer).encode(record)
    session = record["session_id"].encode()
    bad_text = good.replace(session, b"\xff" + session[1:], 1)  # same length: only the bytes are wrong
    assert bad_text != good and len(bad_text) == len(good)
    frames = [good, good + b"\x00", good + b"\x02\x61", bad_text]
    decoder = FrameDecoder(REGISTRY, writer, reject_trailing=reject)
    out = decoder.decode(_rows(spark, frames)).orderBy("_offset").select("_reason", "_detail").collect()
    reasons = [r["_reason"] for r in out]
    assert reasons == [
        None,
        "DECODE_FAILED" if reject else None,
        "DECODE_FAILED" if reject else None,
        "DECODE_FAILED",
    ]
    if reject:
        assert (
            out[1]["_detail"]
            == f"bytes follow the record in the Avro body of writer schema id {writer.schema_id}"
        )
    assert out[3]["_detail"] == "field 'session_id' is not valid UTF-8"
