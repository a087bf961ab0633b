"""A failed query's exception becomes a message naming what was lost and how to go on."""

from driftline.errors import DataLossError, JobError
from driftline.spark.failures import query_failure

CHECKPOINT = "/state/checkpoints/demo/payments"


def _failure(text: str):
    return query_failure(["payments"], text, checkpoint=CHECKPOINT, topics=["signals.payments"])


def test_offsets_that_went_backwards_name_partition_offsets_and_checkpoint() -> None:
    error = _failure(
        "[STREAM_FAILED] Query terminated with exception: [KAFKA_DATA_LOSS.PARTITION_OFFSET_CHANGED] Some data "
        "may have been lost because they are not available in Kafka any more; ... Partition signals.payments-3 "
        "offset was changed from 1200 to 0. This could be ..."
    )
    assert isinstance(error, DataLossError)
    text = str(error)
    assert "(PARTITION_OFFSET_CHANGED: topic-partition signals.payments-3, offsets 1200 -> 0)" in text
    assert f"To start afresh remove {CHECKPOINT}" in text and "fail_on_data_loss = false" in text


def test_records_removed_by_retention_name_the_range() -> None:
    error = _failure(
        "[KAFKA_DATA_LOSS.COULD_NOT_READ_OFFSET_RANGE] Some data may have been lost ... Could not read records "
        "in offset [400, 550) for topic partition signals.payments-0 with consumer group spark-kafka-source-x."
    )
    assert isinstance(error, DataLossError)
    assert "(COULD_NOT_READ_OFFSET_RANGE: topic-partition signals.payments-0, offsets 400 -> 550)" in str(
        error
    )


def test_other_failures_keep_their_first_line_and_a_missing_topic_is_named() -> None:
    other = _failure("java.lang.OutOfMemoryError: Java heap space\n\tat org.apache...")
    assert type(other) is JobError
    assert (
        str(other)
        == "the streaming query of source 'payments' failed: java.lang.OutOfMemoryError: Java heap space"
    )
    missing = _failure(
        "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: This server does not host"
    )
    assert "topic 'signals.payments' does not exist on the broker" in str(missing)


def test_a_python_error_inside_the_batch_is_reported_by_its_own_line() -> None:
    text = (
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach "
        "batch sink. Reason: An exception was raised by the Python Proxy. Return Message: Traceback (most "
        'recent call last):\n  File "/x/py4j/clientserver.py", line 644, in _call_proxy\n    return_value = '
        'getattr(self.pool[obj_id], method)(*params)\n  File "/x/driftline/spark/decode.py", line 78, in '
        "writers\n    writer = self.registry.by_id(schema_id)\ndriftline.errors.SchemaError: schema registry "
        "http://127.0.0.1:8081 could not look up schema id 7: HTTP 401 Unauthorized (error code 401); check "
        "[kafka] schema_registry_url SQLSTATE: 39000\n=== Streaming Query ===\nIdentifier: [id = 1]"
    )
    failure = _failure(text)
    assert type(failure) is JobError
    assert str(failure) == (
        "the streaming query of source 'payments' failed: SchemaError: schema registry http://127.0.0.1:8081 "
        "could not look up schema id 7: HTTP 401 Unauthorized (error code 401); check [kafka] schema_registry_url"
    )


def test_a_full_disk_is_named_with_what_to_do() -> None:
    failure = _failure(
        "Job aborted due to stage failure: ... java.io.IOException: No space left on device\n\tat java.io..."
    )
    assert type(failure) is JobError
    assert "the disk under the warehouse or the checkpoints is full (No space left on device" in str(failure)
    assert "Free space and run again: the job resumes from its last committed batch" in str(failure)


def test_a_spark_call_that_failed_in_the_jvm_names_its_root_cause() -> None:
    """A Spark action inside the batch fails: Py4J's first line names only the call, so the
    JVM trace's last "Caused by" (the root cause) is added."""
    text = (
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach "
        "batch sink. Reason: An exception was raised by the Python Proxy. Return Message: Traceback (most "
        'recent call last):\n  File "/x/driftline/spark/batch.py", line 200, in run\n    rows = frame.collect()\n'
        "py4j.protocol.Py4JJavaError: An error occurred while calling o4985.collectToPython.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 9.0 failed 1 "
        "times\n\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:1)\n"
        "Caused by: org.apache.kafka.common.KafkaException: fetch failed\n\tat org.apache.spark.sql.kafka010.x\n"
        "Caused by: org.apache.kafka.common.errors.TimeoutException: Timeout of 60000ms expired before the "
        "position for partition t-0 could be determined\n\tat org.apache.kafka.clients.y\n"
    )
    assert str(_failure(text)) == (
        "the streaming query of source 'payments' failed: Py4JJavaError: An error occurred while calling "
        "o4985.collectToPython. Caused by: org.apache.kafka.common.errors.TimeoutException: Timeout of 60000ms "
        "expired before the position for partition t-0 could be determined"
    )


def test_a_shared_query_is_named_with_its_sources() -> None:
    error = query_failure(["payments", "cards"], "No space left on device", query="pay", checkpoint=CHECKPOINT,
                          topics=["signals.payments", "signals.cards"])  # fmt: skip
    assert str(error).startswith("sources 'payments', 'cards' (query 'pay'): the disk under the warehouse")
    other = query_failure(["payments", "cards"], "boom", query="pay", checkpoint=CHECKPOINT, topics=[])
    assert str(other) == "the streaming query 'pay' of sources 'payments', 'cards' failed: boom"
