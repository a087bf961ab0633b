"""The JVM's stderr reaches the user without the start-up banners nobody can act on, and the
JVM runs with the options the job needs."""

import io

import pytest

from driftline.spark.session import JIT_OPTIONS, JVM_BANNERS, _forward_jvm_stderr


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


@pytest.mark.spark
def test_the_driver_jvm_compiles_huge_generated_methods(spark):
    """The session's JVM was started with the JIT option (set before the JVM starts, not
    only in the session's conf, where it would change nothing), and HotSpot took it."""
    jvm = spark.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert JIT_OPTIONS in arguments
    hotspot = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    assert hotspot.getVMOption("DontCompileHugeMethods").getValue() == "false"
