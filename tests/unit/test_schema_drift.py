"""Schema drift events, pure: new writer schema ids, all-null fields, unseen categories."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from driftline.quality.schema_drift import (
    MAX_ID_EVENTS,
    MAX_LISTED,
    IdRange,
    SchemaEventKind,
    all_null_fields,
    new_writer_schemas,
    unseen_categories,
)

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)


def test_before_any_batch_only_the_reader_id_is_known():
    ranges = [IdRange(7, "t", 0, 5, 10, 20), IdRange(3, "t", 1, 2, 4, 9), IdRange(7, "t", 1, 1, 30, 30)]
    events, seen = new_writer_schemas(None, reader_id=3, ranges=ranges, registered=[3])
    assert seen == (3,)  # 7 is not registered: not remembered, so the next batch with it reports it again
    (event,) = events
    assert event.kind is SchemaEventKind.NEW_WRITER_SCHEMA and event.schema_id == 7
    assert event.count == 6 and event.registered is False
    assert [(r["partition"], r["first_offset"], r["last_offset"]) for r in event.offset_ranges] == [
        (0, 10, 20), (1, 30, 30),
    ]  # fmt: skip
    assert "UNKNOWN_SCHEMA" in event.detail and "t/0@10" in event.detail


def test_an_id_met_before_is_no_event_and_the_reader_id_is_not_implied_later():
    ranges = [IdRange(3, "t", 0, 5, 0, 4), IdRange(9, "t", 0, 1, 5, 5)]
    events, seen = new_writer_schemas((9,), reader_id=1, ranges=ranges, registered=[3, 9])
    assert [e.schema_id for e in events] == [3] and events[0].registered is True
    assert seen == (3, 9)
    assert new_writer_schemas(seen, reader_id=1, ranges=ranges, registered=[]) == ([], (3, 9))


@given(
    seen=st.one_of(st.none(), st.frozensets(st.integers(0, 20), max_size=6)),
    ids=st.lists(st.integers(0, 20), max_size=MAX_ID_EVENTS),  # never more new ids than reported one by one
    reader=st.integers(0, 20),
)
def test_events_are_exactly_the_ids_not_known_before(seen, ids, reader):
    ranges = [IdRange(i, "t", n % 3, 1, n, n) for n, i in enumerate(ids)]
    registered = set(ids[::2])
    events, after = new_writer_schemas(seen, reader, ranges, registered=registered)
    known = {reader} if seen is None else set(seen)
    assert [e.schema_id for e in events] == sorted(set(ids) - known)
    assert [e.count for e in events] == [Counter(ids)[e.schema_id] for e in events]
    assert all(e.registered == (e.schema_id in registered) for e in events)
    assert set(after) == known | (set(ids) & registered) and list(after) == sorted(after)


def test_a_batch_naming_many_unknown_ids_reports_the_most_frequent_and_sums_the_rest():
    ranges = [IdRange(i, "t", 0, 1 + (i < 5) * 10, i, i) for i in range(100, 100 + MAX_ID_EVENTS + 30)]
    events, seen = new_writer_schemas(None, reader_id=1, ranges=ranges, registered=[])
    assert len(events) == MAX_ID_EVENTS + 1 and seen == (1,)
    *one_by_one, rest = events
    assert [e.schema_id for e in one_by_one] == list(range(100, 100 + MAX_ID_EVENTS))  # ties: lowest ids
    assert rest.schema_id is None and rest.count == 30 and "30 more schema ids" in rest.detail
    assert sum(e.count for e in events) == sum(r.count for r in ranges)


def test_all_null_fields_need_every_row_null_and_a_field_known_to_carry_values():
    nulls = {"risk_score": 300, "channel": 299, "legacy": 300, "note": 300}
    events = all_null_fields(START, END, 300, nulls, {"risk_score", "channel", "note"})
    assert [e.field for e in events] == ["note", "risk_score"]  # legacy: never had a value, no event
    assert all(e.count == 300 and e.share == 1.0 and e.window_start == START for e in events)
    assert all_null_fields(START, END, 0, {"x": 0}, {"x"}) == []  # an empty window is no evidence


@given(rows=st.integers(1, 50), nulls=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 50)))
def test_all_null_matches_a_direct_count(rows, nulls):
    nulls = {f: min(n, rows) for f, n in nulls.items()}
    known = {"a", "c", "e"}
    got = {e.field for e in all_null_fields(START, END, rows, nulls, known)}
    assert got == {f for f, n in nulls.items() if n == rows and f in known}


def test_unseen_categories_lists_values_by_count_and_their_share_of_non_null_rows():
    counts = {"DE": 100, "BR": 40, "MX": 10, None: 50, "AR": 10}
    event = unseen_categories(START, END, "country", counts, ["DE", "FR"])
    assert event.values == ("BR", "AR", "MX")  # count descending, then value
    assert event.count == 60 and event.share == 60 / 160
    assert "37.5%" in event.detail
    assert unseen_categories(START, END, "country", {"DE": 3, None: 9}, ["DE"]) is None


def test_unseen_categories_lists_at_most_max_listed():
    counts = {f"v{i:03d}": 1000 - i for i in range(MAX_LISTED + 5)}
    event = unseen_categories(START, END, "page", counts, [])
    assert len(event.values) == MAX_LISTED and event.values[0] == "v000"
    assert event.detail.endswith("and 5 more")


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", None]), st.integers(0, 30)),
       st.sets(st.sampled_from(["a", "b", "c", "d"])))  # fmt: skip
def test_unseen_count_matches_a_direct_count(counts, vocabulary):
    outside = {v: c for v, c in counts.items() if v is not None and v not in vocabulary and c > 0}
    event = unseen_categories(START, END, "f", counts, vocabulary)
    if not outside:
        assert event is None
    else:
        assert event.count == sum(outside.values()) and set(event.values) == set(outside)
        assert event.as_row()["values"] == list(event.values)
