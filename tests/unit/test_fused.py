"""What a shared query's fused census takes from its sources' plans, without Spark:
when it can fuse at all, which (source, feature) pairs it keeps, and which of the
collected rows and kinds each source gets back."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from driftline.spark.batch import SourcePlan
from driftline.spark.fused import FusedCensus, _groups

WAREHOUSE = object()  # never touched: no source has a reference grid here
PAYMENTS = SourcePlan(pipeline="p", source="payments", event_time="event_time", numeric=("amount", "fee"),
                      categorical=("country",), warehouse=WAREHOUSE)  # fmt: skip
CARDS = replace(PAYMENTS, source="cards", numeric=("amount",), categorical=())


def test_sources_with_different_event_time_fields_are_not_fused():
    other = replace(CARDS, event_time="settled_at")
    assert FusedCensus.of(None, [PAYMENTS, other], ["t.payments", "t.cards"]) is None
    assert FusedCensus.of(None, [PAYMENTS, CARDS], ["t.payments", "t.cards"]) is not None


def test_each_source_keeps_only_its_own_features():
    fused = FusedCensus(None, [PAYMENTS, CARDS], ["t.payments", "t.cards"])
    assert fused.numeric == ("amount", "fee") and fused.categorical == ("country",)
    assert fused.topics == {"t.payments": "payments", "t.cards": "cards"}
    assert sorted(fused._pairs("numeric")) == ["cards\x1famount", "payments\x1famount", "payments\x1ffee"]
    assert fused._pairs("categorical") == ["payments\x1fcountry"]
    # the same features everywhere: nothing to filter
    same = FusedCensus(None, [PAYMENTS, replace(PAYMENTS, source="eu")], ["a", "b"])
    assert same._pairs("numeric") is None and same._pairs("categorical") is None


def test_sources_with_equal_rule_lists_share_one_branch():
    plans = [
        replace(PAYMENTS, rules=("r1",)),
        replace(CARDS, rules=()),
        replace(PAYMENTS, source="eu", rules=("r1",)),
    ]
    assert _groups(plans, lambda plan: plan.rules) == [(("r1",), ["payments", "eu"]), ((), ["cards"])]


def test_each_source_gets_its_own_rows_of_the_kinds_its_census_has():
    fused = FusedCensus(None, [PAYMENTS, CARDS], ["t.payments", "t.cards"])
    table = lambda n: pa.table({"source": ["payments", "cards", "payments"], "n": [n, n + 1, n + 2]})  # noqa: E731
    collected = {"census": table(0), "windows": table(10), "dead": table(20), "numeric": table(30),
                 "categorical": table(40)}  # fmt: skip
    cards = fused.share(collected, "cards")
    assert sorted(cards) == ["census", "dead", "numeric", "windows"]  # cards has no categorical feature
    assert {kind: t["n"].to_pylist() for kind, t in cards.items()} == {
        "census": [1],
        "windows": [11],
        "dead": [21],
        "numeric": [31],
    }
    payments = fused.share(collected, "payments")
    assert payments["categorical"]["n"].to_pylist() == [40, 42]
