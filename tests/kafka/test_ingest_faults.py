"""Ingest under hostile input and interruptions: no traceback, nothing lost, nothing doubled.

Each test failed on the ingest before transactions: a record over the message limit
or a line nested 100,000 deep ended the run with a traceback (and the records still
queued were lost), and a re-run after any failure produced every delivered record again.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from driftline.demo import Corruption, generator_for, write_records
from driftline.errors import ConfigError
from driftline.ingest.run import ingest_file
from driftline.kafka.dead_letter import DEFAULT_MAX_MESSAGE_BYTES, DeadLetter
from driftline.kafka.reading import read_topic
from tests.conftest import pipeline_copy
from tests.e2e.test_cli import driftline

pytestmark = pytest.mark.kafka


def _lines(demo_config, tmp_path, n: int, seed: int = 4) -> list[bytes]:
    generator, names = generator_for(demo_config, "payments", seed=seed, corruption=Corruption(0.05))
    path = write_records(tmp_path / f"gen{seed}.jsonl", generator.records(n), names)
    return path.read_bytes().splitlines()


def _topics(demo_config) -> tuple[list, list]:
    bootstrap = demo_config.kafka.bootstrap_servers
    return (read_topic(bootstrap, demo_config.topic("payments")),
            read_topic(bootstrap, demo_config.dead_letter_topic("payments")))  # fmt: skip


def test_oversize_and_deeply_nested_records_are_dead_letters(demo_config, tmp_path) -> None:
    lines = _lines(demo_config, tmp_path, 300)
    good = json.loads(lines[0])
    huge = json.dumps({**good, "merchant_category": "x" * 1_100_000}).encode()  # valid, too large to send
    deep = b'{"amount": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    lines[100], lines[200] = huge, deep
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    summary = ingest_file(demo_config, "payments", path)

    assert summary.error is None and summary.reconciles, summary.as_dict()
    assert (summary.read, summary.delivered, summary.undelivered) == (300, 300, 0)
    assert summary.by_reason["TOO_LARGE"] == 1 and summary.by_reason["NOT_PARSEABLE"] >= 1
    produced, letters = _topics(demo_config)
    assert (len(produced), len(letters)) == (summary.valid, summary.dead_lettered)
    by_line = {
        int(letter.input_location.split()[1]): letter
        for letter in (DeadLetter.from_message(m.value(), m.headers()) for m in letters)
    }
    assert by_line[101].reason.value == "TOO_LARGE" and by_line[101].original_size == len(huge)
    assert huge.startswith(by_line[101].raw) and len(by_line[101].raw) < DEFAULT_MAX_MESSAGE_BYTES
    assert by_line[201].reason.value == "NOT_PARSEABLE" and "nested too deep" in by_line[201].message
    assert by_line[201].raw == deep  # 200,002 bytes fit whole


def test_an_interrupted_ingest_resumes_after_what_it_committed(demo_config, tmp_path) -> None:
    lines = _lines(demo_config, tmp_path, 2500, seed=7)
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    def interrupt(position: int) -> None:  # called every 1,000 records read
        raise KeyboardInterrupt

    first = ingest_file(
        demo_config, "payments", path, commit_records=700, commit_seconds=1e9, progress=interrupt
    )
    # records 1-700 committed; 701-1000 were in the open transaction when the run stopped
    assert first.error == "interrupted" and (first.read, first.delivered, first.undelivered) == (
        1000,
        700,
        300,
    )
    produced, letters = _topics(demo_config)
    assert len(produced) + len(letters) == 700  # read_committed: the aborted 300 are invisible

    second = ingest_file(demo_config, "payments", path, commit_records=700)
    assert second.error is None and (second.skipped, second.read, second.delivered) == (700, 1800, 1800)
    third = ingest_file(demo_config, "payments", path)
    assert (third.skipped, third.read, third.delivered) == (2500, 0, 0)

    produced, letters = _topics(demo_config)
    origins = Counter(m.value() for m in produced) + Counter(
        DeadLetter.from_message(m.value(), m.headers()).input_location for m in letters
    )
    assert len(produced) + len(letters) == 2500 and set(origins.values()) == {1}, "a record is in Kafka twice"

    # the file grows: the next run sends only the new lines
    more = _lines(demo_config, tmp_path, 40, seed=8)
    path.write_bytes(path.read_bytes() + b"\n".join(more) + b"\n")
    fourth = ingest_file(demo_config, "payments", path)
    assert (fourth.skipped, fourth.read, fourth.delivered) == (2500, 40, 40)


def test_an_edited_file_is_refused_unless_from_start(demo_config, tmp_path) -> None:
    lines = _lines(demo_config, tmp_path, 50, seed=9)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert ingest_file(demo_config, "payments", path).delivered == 50
    lines[10] = lines[11]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(
        ConfigError,
        match="committed its first 50 records, but the file differs in them now; pass --from-start",
    ):
        ingest_file(demo_config, "payments", path)
    again = ingest_file(demo_config, "payments", path, from_start=True)
    assert (again.skipped, again.delivered) == (0, 50)
    produced, letters = _topics(demo_config)
    assert len(produced) + len(letters) == 100  # on purpose: --from-start produces the file again


@pytest.mark.e2e
def test_the_cli_prints_a_summary_for_hostile_input_and_a_rerun_sends_nothing(
    demo_config, kafka_bootstrap, topic_prefix, tmp_path
) -> None:
    lines = _lines(demo_config, tmp_path, 100, seed=10)
    lines[5] = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    lines[6] = json.dumps({**json.loads(lines[0]), "merchant_category": "y" * 2_000_000}).encode()
    path = tmp_path / "cli.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    pipeline, bootstrap = str(pipeline_copy(tmp_path, prefix=topic_prefix)), kafka_bootstrap

    first = driftline("ingest", "-p", pipeline, "-s", "payments", "-i", str(path), bootstrap=bootstrap)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["read"], summary["delivered"], summary["skipped"], summary["error"]) == (
        100,
        100,
        0,
        None,
    )
    assert summary["by_reason"]["TOO_LARGE"] == 1

    rerun = driftline("ingest", "-p", pipeline, "-s", "payments", "-i", str(path), bootstrap=bootstrap)
    assert rerun.returncode == 0, rerun.stderr
    assert {k: json.loads(rerun.stdout)[k] for k in ("read", "delivered", "skipped")} == {
        "read": 0, "delivered": 0, "skipped": 100,
    }  # fmt: skip
