"""The lost-offset arithmetic of a run with fail_on_data_loss = false, against a brute-force count."""

from hypothesis import given
from hypothesis import strategies as st

from driftline.spark.offsets import offset_loss, parse_offset_log_entry

TP = ("t", 0)


@st.composite
def partitions(draw):
    """A partition's log [0, end) with head deletion up to ``earliest`` and a batch [start, stop)."""
    end = draw(st.integers(0, 60))
    start = draw(st.integers(0, end))
    stop = draw(st.integers(start, end))
    deleted_before_read = draw(st.integers(0, end))  # log start offset when Spark read the batch
    deleted_later = draw(st.integers(deleted_before_read, end))  # log start offset when we ask
    markers = draw(st.sets(st.integers(0, max(end - 1, 0)), max_size=5))  # offsets that hold no record
    return start, stop, deleted_before_read, deleted_later, markers


@given(partitions())
def test_lost_offsets_are_the_records_deleted_before_they_were_read(case):
    start, stop, deleted_before_read, deleted_later, markers = case
    # what Spark read: records (not markers) in [max(start, log start), stop)
    read = [o for o in range(max(start, deleted_before_read), stop) if o not in markers]
    truly_lost = [o for o in range(start, min(deleted_before_read, stop))]
    loss = offset_loss({TP: start}, {TP: stop}, {TP: read[0]} if read else {}, {TP: deleted_later})
    assert loss.reset == ()
    counted = loss.lost.get(TP, 0)
    # exact unless the first offsets of the range are markers that retention also removed since
    leading_markers = 0
    for offset in range(max(start, deleted_before_read), stop):
        if offset not in markers:
            break
        leading_markers += 1
    assert len(truly_lost) <= counted <= len(truly_lost) + leading_markers


def test_offsets_going_back_are_a_reset_and_the_new_log_below_the_end_is_lost():
    # Spark plans [400, 250) as empty and goes on at 250: the recreated topic's 0-249 are skipped
    loss = offset_loss({TP: 400, ("t", 1): 10}, {TP: 250, ("t", 1): 12}, {("t", 1): 10}, {TP: 0, ("t", 1): 0})
    assert loss.reset == (TP,)
    assert loss.lost == {TP: 250}
    retention_ran_too = offset_loss({TP: 400}, {TP: 250}, {}, {TP: 100})
    assert retention_ran_too.lost == {TP: 150}


def test_a_partition_new_in_the_batch_lost_nothing():
    assert offset_loss({}, {TP: 30}, {}, {TP: 20}).lost == {}


def test_offset_log_entry_without_a_source_line():
    assert parse_offset_log_entry('v1\n{"batchWatermarkMs":0}\n') is None
    assert parse_offset_log_entry('v1\n{}\n{"a":{"0":1,"1":2}}\n') == {"a": {"0": 1, "1": 2}}
