"""Running totals (kept in the state's commit record) and progress-row pruning, pure Python."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from driftline.spark.retention import batches_below
from driftline.spark.totals import COUNTS, add_totals

reasons = st.sampled_from(["NOT_FRAMED", "RULE_FAILED", "DECODE_FAILED", "EVENT_TIME_OUT_OF_RANGE"])
records = st.fixed_dictionaries(
    {key: st.integers(0, 10_000) for key in COUNTS},
    optional={"by_reason": st.dictionaries(reasons, st.integers(0, 500))},
)


@given(st.lists(records, max_size=30), st.integers(0, 30))
def test_totals_kept_batch_by_batch_equal_the_sums_over_all_batches(batches, split):
    # folded in two legs (as a restart resumes from a committed version's totals) or in one
    first = None
    for record in batches[:split]:
        first = add_totals(first, record)
    totals = first
    for record in batches[split:]:
        totals = add_totals(totals, record)
    if not batches:
        assert totals is None
        return
    assert totals["batches"] == len(batches)
    for key in COUNTS:
        assert totals[key] == sum(r[key] for r in batches)
    expected = Counter()
    for r in batches:
        expected.update(r.get("by_reason", {}))
    assert totals["by_reason"] == dict(expected)
    if first is not None and split < len(batches):
        assert first["batches"] == min(split, len(batches))  # the first leg's totals were not changed


def test_missing_counts_in_old_progress_rows_count_as_zero():
    totals = add_totals(None, {"read": 5, "valid": 4, "dead_lettered": 1, "late": 0, "by_reason": None})
    assert totals == {"batches": 1, "read": 5, "valid": 4, "dead_lettered": 1, "late": 0, "lost": 0,
                      "offsets_reset": 0, "by_reason": {}}  # fmt: skip


@given(st.sets(st.integers(0, 3000), max_size=60), st.integers(0, 3100))
def test_batches_below_keeps_exactly_the_newer_batch_folders(numbers, below):
    names = [f"batch_id={n}" for n in numbers] + ["_SUCCESS", "batch_id=x", ".batch_id=3.crc"]
    gone = batches_below(names, below)
    assert gone == [f"batch_id={n}" for n in sorted(numbers) if n < below]
