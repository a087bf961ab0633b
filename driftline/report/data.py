"""What the HTML drift report shows, read from the quality tables and the reference.

Per source, for windows starting in ``[since, until)``:

- ``drift``: per (feature, method) the effect size against its threshold per closed
  window, and whether the window drifted;
- ``histograms``: for the windows where a feature drifted, its reference shares
  against the window's over the reference's coarse bins (numeric: the PSI bins, the
  window's shares from its KLL sketch's CDF at the bins' edges, plus nulls;
  categorical: the vocabulary, other values and nulls, from the window's category
  counts). At most :data:`HISTOGRAMS` per source, the largest effects first;
- ``alerts``: fired and resolved events, paired into episodes per (feature, method);
- ``dead_letters``: dead-lettered records per batch by reason, placed at the batch's
  newest event time (the progress rows), and ``late`` rows;
- ``volume``: valid rows and late rows per window, and freshness: the newest event
  time and the watermark;
- ``expectations``: each window expectation's result per window.

Read with pyarrow on the driver's machine (a local warehouse or a mounted one); no Spark.
All times are UTC ISO-8601 strings, ready for JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline import tables
from driftline.config import PipelineConfig
from driftline.stats.binning import CategoricalBinning, NumericBinning

HISTOGRAMS = 12


@dataclass(frozen=True)
class Range:
    since: datetime | None = None
    until: datetime | None = None

    def keep(self, frame: pd.DataFrame, column: str = "window_start") -> pd.DataFrame:
        if frame.empty or column not in frame:
            return frame
        times = pd.to_datetime(frame[column], utc=True)
        keep = pd.Series(True, index=frame.index)
        if self.since is not None:
            keep &= times >= pd.Timestamp(self.since)
        if self.until is not None:
            keep &= times < pd.Timestamp(self.until)
        return frame[keep]


def _table(root: Path, name: str, source: str) -> pd.DataFrame:
    """Rows of ``source`` in Delta table ``name``: its newest snapshot, so a batch being
    written (or one a crash interrupted) is never half-counted."""
    return tables.read(root / name, source=source)


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return (
        pd.Timestamp(value).tz_convert("UTC").isoformat()
        if pd.Timestamp(value).tzinfo
        else (pd.Timestamp(value).tz_localize("UTC").isoformat())
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def source_report(config: PipelineConfig, source: str, window: Range, reference=None) -> dict[str, Any]:
    """Everything the report shows for ``source`` (see the module notes)."""
    root = Path(config.path(config.warehouse_dir))
    scores = window.keep(_table(root, "drift_scores", source))
    stats = window.keep(_table(root, "feature_stats", source))
    alerts = _table(root, "alerts", source)
    results = window.keep(_table(root, "quality_results", source))
    return {
        "source": source,
        "drift": _drift(scores),
        "histograms": _histograms(scores, stats, reference),
        "alerts": _episodes(alerts, window),
        "dead_letters": _dead_letters(root, source, window),
        "volume": _volume(stats),
        "expectations": _expectations(results),
        "schema_events": _schema_events(_table(root, "schema_events", source), window),
        "breaker": _breaker(root, source),
        "reference_version": None if reference is None else reference.version,
    }


def _breaker(root: Path, source: str) -> dict[str, Any] | None:
    """The circuit breaker's state in the newest committed window-state version."""
    import json

    from driftline.stats.policy import BREAKER_KEY

    folder = root / "_state" / "open" / source
    versions = sorted(
        (int(p.parent.name), p) for p in folder.glob("*/_commit.json") if p.parent.name.isdigit()
    )
    if not versions:
        return None
    policy = json.loads(versions[-1][1].read_text()).get("policy") or {}
    return policy.get(BREAKER_KEY)


def _drift(scores: pd.DataFrame) -> list[dict[str, Any]]:
    if scores.empty:
        return []
    out = []
    for (feature, method), rows in scores.sort_values("window_start").groupby(["feature", "method"]):
        out.append({
            "feature": feature, "method": method, "threshold": _number(rows["threshold"].iloc[-1]),
            "points": [{"t": _iso(r.window_start), "effect": _number(r.effect), "drifted": bool(r.drifted),
                        "degraded": r.verdict == "degraded"} for r in rows.itertuples()],
        })  # fmt: skip
    return out


def _histograms(scores: pd.DataFrame, stats: pd.DataFrame, reference) -> list[dict[str, Any]]:
    if reference is None or scores.empty or stats.empty:
        return []
    flagged = scores[scores["drifted"]].sort_values("effect", ascending=False)
    flagged = flagged.drop_duplicates(["feature", "window_start"]).head(HISTOGRAMS)
    out = []
    for row in flagged.itertuples():
        profile = reference.features.get(row.feature)
        match = stats[(stats["feature"] == row.feature) & (stats["window_start"] == row.window_start)]
        if profile is None or match.empty:
            continue
        current = _current_shares(profile, match.iloc[0])
        if current is None:
            continue
        labels, reference_shares = _reference_shares(profile)
        out.append({"feature": row.feature, "method": row.method, "t": _iso(row.window_start),
                    "effect": _number(row.effect), "labels": labels, "reference": reference_shares,
                    "current": current})  # fmt: skip
    return out


def _reference_shares(profile) -> tuple[list[str], list[float]]:
    binning = profile.binning
    counts = np.asarray(profile.counts, dtype=float)
    if isinstance(binning, NumericBinning):
        coarse = binning.coarse_counts(counts).astype(float)
        return binning.coarse_labels(), list(coarse / max(coarse.sum(), 1))
    return list(binning.labels), list(counts / max(counts.sum(), 1))


def _current_shares(profile, row: Mapping[str, Any]) -> list[float] | None:
    binning = profile.binning
    rows = int(row["rows"] or 0)
    if rows == 0:
        return None
    nulls = int(row["nulls"] or 0)
    if isinstance(binning, NumericBinning):
        sketch = row.get("sketch")
        if sketch is None or (isinstance(sketch, float) and math.isnan(sketch)):
            return None
        from datasketches import kll_doubles_sketch

        kll = kll_doubles_sketch.deserialize(bytes(sketch))
        cuts = sorted({binning.edges[i] for i in binning.coarse})
        cdf = kll.get_cdf(cuts, False) if cuts else [1.0]  # P(X < cut), then 1.0
        values = np.diff([0.0, *cdf]) * (rows - nulls)
        return [float(v) / rows for v in values] + [nulls / rows]
    assert isinstance(binning, CategoricalBinning)
    counts = row.get("category_counts")
    pairs = dict(counts) if counts is not None else {}
    shares = binning.counts({None if k is None else k: v for k, v in pairs.items()}).astype(float)
    shares[-1] = max(shares[-1], nulls)  # nulls are counted in the null slot either way
    return list(shares / max(shares.sum(), 1))


def _episodes(alerts: pd.DataFrame, window: Range) -> list[dict[str, Any]]:
    """Fired -> resolved episodes per (feature, method); one still firing has no end."""
    if alerts.empty:
        return []
    out = []
    for (feature, method), rows in alerts.sort_values("window_start").groupby(["feature", "method"]):
        start = None
        for r in rows.itertuples():
            if r.event == "fired":
                start = r.first_flagged_window if pd.notna(r.first_flagged_window) else r.window_start
            elif r.event == "resolved" and start is not None:
                out.append(
                    {"feature": feature, "method": method, "start": _iso(start), "end": _iso(r.window_end)}
                )
                start = None
        if start is not None:
            out.append({"feature": feature, "method": method, "start": _iso(start), "end": None})
    kept = []
    for e in out:  # episodes overlapping the range
        end = pd.Timestamp(e["end"]) if e["end"] else None
        if window.until is not None and pd.Timestamp(e["start"]) >= pd.Timestamp(window.until):
            continue
        if window.since is not None and end is not None and end < pd.Timestamp(window.since):
            continue
        kept.append(e)
    return kept


def _dead_letters(root: Path, source: str, window: Range) -> dict[str, Any]:
    progress = _table(root / "_state", "progress", source)
    if progress.empty:
        return {"reasons": [], "points": []}
    progress = window.keep(progress.dropna(subset=["max_event_time"]), "max_event_time")
    progress = progress.sort_values("max_event_time")
    reasons: set[str] = set()
    points = []
    for r in progress.itertuples():
        by_reason = {k: int(v) for k, v in (r.by_reason or [])}
        if r.late:
            by_reason["LATE_DATA"] = int(r.late)
        reasons |= set(by_reason)
        points.append({"t": _iso(r.max_event_time), "read": int(r.read), "by_reason": by_reason})
    return {"reasons": sorted(reasons), "points": points}


def _volume(stats: pd.DataFrame) -> dict[str, Any]:
    if stats.empty:
        return {"points": [], "newest_window": None}
    per_window = stats.groupby("window_start").agg(rows=("rows", "max"), late=("late_rows", "max"),
                                                   final=("is_final", "all")).reset_index()  # fmt: skip
    points = [
        {"t": _iso(r.window_start), "rows": int(r.rows), "late": int(r.late or 0), "final": bool(r.final)}
        for r in per_window.sort_values("window_start").itertuples()
    ]
    return {"points": points, "newest_window": points[-1]["t"] if points else None}


def _expectations(results: pd.DataFrame) -> list[dict[str, Any]]:
    if results.empty:
        return []
    out = []
    for name, rows in results.sort_values("window_start").groupby("expectation"):
        points = [
            {"t": _iso(r.window_start), "success": bool(r.success), "observed": _number(r.observed_value)}
            for r in rows.itertuples()
        ]
        out.append({"expectation": name, "expects": rows["expects"].iloc[-1], "points": points})
    return out


REPORTED_EVENTS = 200  # schema events listed per source, newest batch first


def _schema_events(events: pd.DataFrame, window: Range) -> list[dict[str, Any]]:
    """Schema drift events, newest batch first: those of a window in the range, and the
    writer schema ids (which have no window) of every batch."""
    if events.empty:
        return []
    batch_level = events["window_start"].isna()
    kept = pd.concat([events[batch_level], window.keep(events[~batch_level])])
    # newest first, at most REPORTED_EVENTS: an unregistered id repeats in every batch
    kept = kept.sort_values(["batch_id", "kind"], ascending=[False, True]).head(REPORTED_EVENTS)
    return [
        {"batch_id": int(r["batch_id"]), "kind": r["kind"],
         "field": r["field"] if isinstance(r["field"], str) else None,
         "schema_id": None if pd.isna(r["schema_id"]) else int(r["schema_id"]),
         "window": _iso(r["window_start"]), "count": int(r["count"]), "detail": r["detail"]}
        for r in kept.to_dict("records")
    ]  # fmt: skip


__all__ = ["HISTOGRAMS", "Range", "source_report"]
