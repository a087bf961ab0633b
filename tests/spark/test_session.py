"""The JVM's stderr reaches the user without the start-up banners nobody can act on."""

import io

from driftline.spark.session import JVM_BANNERS, _forward_jvm_stderr


def test_banners_are_dropped_and_everything_else_passes_in_order():
    jvm = io.BytesIO(
        b"WARNING: Using incubator modules: jdk.incubator.vector\n"
        b"26/12/04 19:30:01 WARN KafkaOffsetReaderAdmin: Error in attempt 1 getting Kafka offsets\n"
        b"Warning: Java versions > Java 11 can only operate in restricted mode where no off-heap operations "
        b"are allowed!\n"
        b'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space \xff\n'
    )
    out = io.StringIO()
    _forward_jvm_stderr(jvm, out)
    assert out.getvalue().splitlines() == [
        "26/12/04 19:30:01 WARN KafkaOffsetReaderAdmin: Error in attempt 1 getting Kafka offsets",
        'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space \ufffd',
    ]
    assert len(JVM_BANNERS) == 2
