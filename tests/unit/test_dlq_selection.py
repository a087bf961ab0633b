"""Choosing and summarising dead letters (the pure half of ``driftline dlq``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.dlq.selection import Selection, StoredLetter, summarize
from driftline.dlq.show import hexdump, listing, one, overview
from driftline.errors import ConfigError
from driftline.kafka.dead_letter import DeadLetter
from driftline.quality.reasons import ReasonCode

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def stored(
    partition: int, offset: int, reason: ReasonCode, minutes: int = 0, raw: bytes = b"x"
) -> StoredLetter:
    letter = DeadLetter(raw=raw, reason=reason, message=f"{reason} at {offset}", pipeline="demo",
                        source="payments", time=T0 + timedelta(minutes=minutes), topic="signals.payments",
                        partition=partition, offset=1000 + offset)  # fmt: skip
    return StoredLetter(partition, offset, letter, b"k")


LETTERS = [
    stored(0, 0, ReasonCode.UNKNOWN_SCHEMA, 0),
    stored(0, 1, ReasonCode.NOT_FRAMED, 5),
    stored(1, 0, ReasonCode.UNKNOWN_SCHEMA, 10),
    stored(1, 1, ReasonCode.RULE_FAILED, 15),
    stored(1, 2, ReasonCode.UNKNOWN_SCHEMA, 20),
]


def chosen(**options) -> list[str]:
    selection = Selection.parse(**options)
    return [s.place for s in LETTERS if selection.matches(s)]


def test_each_condition_narrows_the_choice_and_all_must_hold() -> None:
    assert chosen() == ["0:0", "0:1", "1:0", "1:1", "1:2"]
    assert chosen(reasons=["unknown_schema"]) == ["0:0", "1:0", "1:2"]
    assert chosen(stages=["RULE"]) == ["1:1"]
    assert chosen(since="2026-01-05T08:05:00Z", until="2026-01-05T08:15:00") == ["0:1", "1:0", "1:1"]
    assert chosen(offsets=["1:1-2", "0:0"]) == ["0:0", "1:1", "1:2"]
    assert chosen(reasons=["UNKNOWN_SCHEMA"], offsets=["1:0-9"], since="2026-01-05T08:15:00Z") == ["1:2"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"reasons": ["MELTED"]},
            "--reason: 'MELTED' is not one; valid values: NOT_PARSEABLE, MISSING_FIELD",
        ),
        ({"stages": ["compile"]}, "--stage: 'compile' is not one; valid values: ingest, decode, rule, late"),
        ({"offsets": ["1:9-3"]}, "--offsets: '1:9-3' ends before it starts"),
        ({"offsets": ["p1:3"]}, "--offsets: expected PARTITION:FIRST-LAST or PARTITION:OFFSET"),
        (
            {"since": "yesterday"},
            "--since: expected an ISO-8601 time such as 2026-01-05T08:00:00Z, got 'yesterday'",
        ),
        (
            {"since": "2026-01-06", "until": "2026-01-05"},
            "--until (2026-01-05) is before --since (2026-01-06)",
        ),
    ],
)
def test_a_bad_option_names_itself_and_what_is_valid(options, message) -> None:
    with pytest.raises(ConfigError) as caught:
        Selection.parse(**options)
    assert str(caught.value).startswith(message)


def test_groups_reconcile_count_with_replayed_and_outstanding() -> None:
    groups = summarize(LETTERS, {"0:0": {}, "1:2": {}, "1:1": {}})
    as_rows = [(g.reason, g.stage, g.count, g.replayed, g.outstanding) for g in groups]
    assert as_rows == [("UNKNOWN_SCHEMA", "decode", 3, 2, 1), ("NOT_FRAMED", "decode", 1, 0, 1),
                       ("RULE_FAILED", "rule", 1, 1, 0)]  # fmt: skip
    unknown = groups[0]
    assert unknown.offsets == {0: [0, 0], 1: [0, 2]}
    assert (unknown.first_time, unknown.last_time) == (T0, T0 + timedelta(minutes=20))
    text = overview("dlq.payments", Selection(), LETTERS, {"0:0": {}}, [])
    assert (
        text.splitlines()[0] == "dlq.payments: 5 dead letters (every dead letter), 1 replayed, 4 outstanding"
    )
    assert "UNKNOWN_SCHEMA  decode  3      1         2" in text


def test_a_listing_is_cut_at_its_limit_and_says_how_many_more() -> None:
    lines = listing(LETTERS, {}, 2).splitlines()
    assert lines[0].split() == ["place", "dead-lettered", "reason", "stage", "origin", "replayed", "message"]
    assert len(lines) == 4 and lines[-1] == "(3 more; --limit or --offsets)"
    assert "signals.payments/0/1000" in lines[1]


def test_one_record_shows_headers_and_a_hexdump_of_its_bytes() -> None:
    raw = b"\x00\x00\x00\x00\x07payload bytes\xff"
    letters = [*LETTERS, stored(2, 7, ReasonCode.DECODE_FAILED, raw=raw)]
    text = one(letters, "2:7", {"2:7": {"replay_id": "r1", "at": "2026-01-05T09:00:00"}})
    assert "dead letter 2:7: DECODE_FAILED (decode)" in text
    assert "replayed by r1 at 2026-01-05T09:00:00" in text
    assert "  driftline.error.offset: 1007" in text
    assert hexdump(raw) == [
        "  00000000  00 00 00 00 07 70 61 79 6c 6f 61 64 20 62 79 74  |.....payload byt|",
        "  00000010  65 73 ff                                         |es.|",
    ]
    with pytest.raises(ConfigError, match="no dead letter at '9:9'"):
        one(letters, "9:9", {})
