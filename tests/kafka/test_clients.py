"""librdkafka's own log lines through ``driftline.librdkafka``: what a user sees."""

import logging

import pytest

from driftline.kafka.clients import librdkafka_logger


@pytest.fixture
def captured():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler, level = Keep(), librdkafka_logger.level
    librdkafka_logger.addHandler(handler)
    yield records
    librdkafka_logger.removeHandler(handler)
    librdkafka_logger.setLevel(level)


RETRYING = ("GETPID [rdkafka#producer-3] [thrd:main]: Failed to acquire idempotence PID from broker "
            "127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying")  # fmt: skip


def test_a_state_librdkafka_retries_by_itself_is_not_a_warning(captured):
    librdkafka_logger.setLevel(logging.WARNING)
    librdkafka_logger.warning(RETRYING)
    librdkafka_logger.warning("FAIL [rdkafka#producer-1] 127.0.0.1:9092/bootstrap: Connect failed")
    assert [r.getMessage() for r in captured] == [
        "FAIL [rdkafka#producer-1] 127.0.0.1:9092/bootstrap: Connect failed"
    ]


def test_with_info_logging_it_shows_as_info(captured):
    librdkafka_logger.setLevel(logging.INFO)
    librdkafka_logger.warning(RETRYING)
    assert [(r.levelname, r.getMessage()) for r in captured] == [("INFO", RETRYING)]
