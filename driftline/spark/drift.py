"""Streaming drift: per-window bin counts in Spark, scores and alerts from them on the driver.

Per micro-batch, inside the source's ``foreachBatch`` (driver side; the row work is
Spark SQL, no Python UDF):

1. :func:`bin_partials` counts the batch's valid rows per (window, numeric feature,
   reference grid bin); the driver adds them to the open windows' state (``bins`` in
   :mod:`driftline.spark.window_state`) like the other partials. Categorical counts
   per value are already in the state's ``categorical``.
2. When windows *close* (the watermark passes their end, which happens once per
   window), :class:`DriftScorer` takes the closed windows' counts from the state
   version of this batch, held by the driver (at most ``grid + 2`` numbers per
   feature and window), and hands them to :func:`driftline.stats.score_window`: the
   one place the formulas live. No raw row is re-scanned, no earlier batch is read.
3. The alert policy's state (k-of-n history, firing, hysteresis) comes from the
   previous state version's commit record, is advanced window by window in
   event-time order and goes into this version's commit record. A replayed batch
   reads the same state and closes the same windows, so it writes the same rows.
4. ``drift_scores`` and ``alerts`` rows go to the batch's own partitions
   (``source=<s>/batch_id=<n>``, replaced on replay; written by pyarrow,
   :mod:`driftline.spark.arrow_files`); alert events go to the alerts
   topic in one Kafka transaction with a commit marker (skipped if already committed).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter
from driftline.metrics import AlertEvent, DriftObservation, PipelineMetrics
from driftline.spark import feature_stats
from driftline.spark import window_stats as ws
from driftline.spark.grid_bins import GridBins
from driftline.spark.tables import Warehouse, iso_utc
from driftline.spark.window_state import StateVersion, WindowState, window_offset_ranges
from driftline.stats import AlertPolicy, PolicyState, ReferenceProfile
from driftline.stats import partials as pt
from driftline.stats.binning import NumericBinning
from driftline.stats.breaker import BreakerPolicy, BreakerState
from driftline.stats.policy import Verdict
from driftline.stats.scoring import FeatureScore, finite_or_none

logger = logging.getLogger(__name__)

_TIME = pa.timestamp("us", tz="UTC")
SHIFTED = pa.list_(pa.struct([("bin", pa.string()), ("reference", pa.float64()), ("current", pa.float64())]))
RANGES = feature_stats.SCHEMA.field("offset_ranges").type
_SCORE_FIELDS = [
    ("score", pa.float64()), ("effect", pa.float64()), ("p_value", pa.float64()),
    ("p_adjusted", pa.float64()), ("threshold", pa.float64()),
]  # fmt: skip
DRIFT_SCORES_SCHEMA = pa.schema([
    ("pipeline", pa.string()), ("window_start", _TIME), ("window_end", _TIME), ("feature", pa.string()),
    ("kind", pa.string()), ("method", pa.string()), *_SCORE_FIELDS, ("verdict", pa.string()),
    ("drifted", pa.bool_()), ("n", pa.int64()), ("ks_bound", pa.float64()), ("psi_smoothing", pa.float64()),
    ("reference_version", pa.string()), ("top_shifted", SHIFTED), ("offset_ranges", RANGES),
])  # fmt: skip
ALERTS_SCHEMA = pa.schema([
    ("pipeline", pa.string()), ("event", pa.string()), ("alert_id", pa.string()), ("feature", pa.string()),
    ("method", pa.string()), ("window_start", _TIME), ("window_end", _TIME), ("first_flagged_window", _TIME),
    ("score", pa.float64()), ("effect", pa.float64()), ("threshold", pa.float64()), ("p_value", pa.float64()),
    ("p_adjusted", pa.float64()), ("n", pa.int64()), ("reference_version", pa.string()),
    ("top_shifted", SHIFTED), ("offset_ranges", RANGES), ("episode_offset_ranges", RANGES),
    ("early", pa.bool_()),
])  # fmt: skip


def merge_ranges(windows: list[list[dict]]) -> list[dict]:
    """Offset ranges of several windows as one range per (topic, partition): the smallest
    first offset and the largest last offset. Pure; for a fired alert's episode."""
    merged: dict[tuple[str, int], dict] = {}
    for ranges in windows:
        for r in ranges or ():
            key = (r["topic"], int(r["partition"]))
            known = merged.get(key)
            if known is None:
                merged[key] = {"topic": key[0], "partition": key[1], "first_offset": int(r["first_offset"]),
                               "last_offset": int(r["last_offset"])}  # fmt: skip
            else:
                known["first_offset"] = min(known["first_offset"], int(r["first_offset"]))
                known["last_offset"] = max(known["last_offset"], int(r["last_offset"]))
    return [merged[key] for key in sorted(merged)]


def offsets_label(ranges: list[dict]) -> str:
    """``topic/partition:first-last`` per range, comma-separated (a metric label, a webhook field)."""
    return ",".join(f"{r['topic']}/{r['partition']}:{r['first_offset']}-{r['last_offset']}" for r in ranges)


def bin_partials(windowed: DataFrame, grid: GridBins) -> DataFrame:
    """Per (window, feature, bin): rows of ``windowed`` in that reference grid bin.

    The bin of ``x`` is ``searchsorted(edges, x, side="right")``, the bins of
    :class:`~driftline.stats.binning.NumericBinning`; null and NaN go to its null slot
    ``len(edges) + 1`` (:mod:`driftline.spark.grid_bins`, a JVM ``Bucketizer``).
    """
    slotted = grid.slots(windowed, list(ws.WINDOW_KEY))
    return (
        slotted.select(*ws.WINDOW_KEY, F.explode(grid.pairs()).alias("_pair"))
        .groupBy(*ws.WINDOW_KEY, "_pair.feature", "_pair.bin")
        .agg(F.count(F.lit(1)).alias("count"))
    )


@dataclass
class DriftScorer:
    """Scores a source's windows as they close and raises alerts; driver side, per batch."""

    pipeline: str
    source: str
    reference: ReferenceProfile
    methods: tuple[str, ...]
    policy: AlertPolicy
    warehouse: Warehouse
    alerts: TransactionalBatchWriter | None = None
    metrics: PipelineMetrics | None = None
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    _grid: GridBins | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def binnings(self) -> dict[str, NumericBinning]:
        return {
            name: f.binning
            for name, f in self.reference.features.items()
            if f.kind == "numeric" and isinstance(f.binning, NumericBinning)
        }

    def grid(self, spark: SparkSession) -> GridBins:
        """The source's JVM bucketizer over :attr:`binnings`, built on first use."""
        if self._grid is None:
            self._grid = GridBins(spark, self.binnings)
        return self._grid

    def _window_counts(
        self, state: StateVersion, closed: list[datetime]
    ) -> dict[datetime, dict[str, np.ndarray]]:
        """Counts per closed window and feature, from the state version that closed them."""
        starts = [pd.Timestamp(start) for start in closed]
        out: dict[datetime, dict[str, np.ndarray]] = defaultdict(dict)
        bins = state.frame("bins")
        if bins is not None:
            slots = {name: binning.slots for name, binning in self.binnings.items()}
            in_closed = bins[bins["window_start"].isin(starts) & bins["feature"].isin(list(slots))]
            for (start, feature), counts in pt.bin_counts(in_closed, slots).items():
                out[start.to_pydatetime()][feature] = counts
        categorical = [n for n, f in self.reference.features.items() if f.kind == "categorical"]
        values = state.frame("categorical")
        if categorical and values is not None:
            rows = values[values["window_start"].isin(starts) & values["feature"].isin(categorical)]
            for (start, feature), group in rows.groupby(["window_start", "feature"], sort=True):
                by_value = dict(zip(group["value"].where(group["value"].notna(), None), group["count"],
                                    strict=True))  # fmt: skip
                out[start.to_pydatetime()][feature] = self.reference.features[feature].binning.counts(
                    by_value
                )
        return out

    def _dead_and_valid(self, state: StateVersion, closed: list[datetime]) -> dict[datetime, tuple[int, int]]:
        """Per closed window: (dead letters, valid rows), for the circuit breaker."""
        starts = [pd.Timestamp(s) for s in closed]
        out = {start: [0, 0] for start in closed}
        for kind, column, slot in (("dead", "count", 0), ("windows", "rows", 1)):
            frame = state.frame(kind)
            if frame is None or frame.empty:
                continue
            sums = frame[frame["window_start"].isin(starts)].groupby("window_start")[column].sum()
            for start, total in sums.items():
                out.setdefault(start.to_pydatetime(), [0, 0])[slot] = int(total)
        return {start: (dead, valid) for start, (dead, valid) in out.items()}

    def score_closed(
        self,
        spark,
        batch_id: int,
        closed: list[tuple[datetime, datetime]],
        windows: StateVersion,
        policy: dict[str, Any] | None,
        still_open: list[tuple[datetime, datetime]] = (),
        newest_event: datetime | None = None,
    ) -> dict[str, Any] | None:
        """Score ``closed`` windows (start, end) from the state version ``windows`` of this
        batch, advance the alert policy from its state ``policy`` (``PolicyState.to_dict``,
        kept in the window state's commit record), write scores and alerts. With early
        alerts on, the ``still_open`` windows may then fire a track one window short
        (:meth:`_fire_early`; ``newest_event``, the newest valid event time so far, tells which
        of them the stream has passed).

        Returns the policy's new state (``policy`` itself when nothing closed or fired).
        """
        early = self.policy.early_alerts and bool(still_open)
        if not closed and not early:
            return policy
        starts = [start for start, _ in closed]
        counts = self._window_counts(windows, starts)
        ranges = window_offset_ranges(windows, starts)
        state = PolicyState.from_dict(policy) if policy else PolicyState()
        breaker = BreakerState.from_dict(state.breaker)
        dead = self._dead_and_valid(windows, starts)
        version = self.reference.version
        score_rows, alert_rows = [], []
        newest: dict[str, tuple[FeatureScore, datetime]] = {}  # key -> its newest window's score
        for start, end in sorted(closed):
            window_counts = counts.get(start, {})
            if not window_counts:
                continue  # only late rows ever reached it: nothing to score
            event = breaker.observe(self.breaker, iso_utc(start), *dead.get(start, (0, 0)))
            if event is not None:
                logger.warning("circuit_breaker_%s source=%s window=%s dead_letter_rate=%.3f", event,
                               self.source, iso_utc(start), breaker.last_rate)  # fmt: skip
            state.offsets[iso_utc(start)] = ranges.get(start, [])
            scores = self.reference.score(window_counts, methods=self.methods, policy=self.policy)
            if breaker.open:  # too many dead letters: the valid rest is no fair sample
                scores = [s if s.verdict is Verdict.INSUFFICIENT else replace(s, verdict=Verdict.DEGRADED)
                          for s in scores]  # fmt: skip
            for score in scores:
                score_rows.append(self._score_row(score, start, end, ranges.get(start, []), version))
                newest[score.key] = (score, end)
                event = state.observe(self.policy, score.key, iso_utc(start), score.verdict)
                if event is not None:
                    since = state.tracks[score.key].since if event == "fired" else None
                    episode = []
                    if event == "fired":  # kept as it is now, for the gauge after a restart
                        episode = state.episodes[score.key] = merge_ranges(state.episode(score.key))
                    alert_rows.append(self._alert_row(event, score, start, end, since, ranges.get(start, []),
                                                      episode))  # fmt: skip
            state.prune_offsets()
        fired_early = (
            self._fire_early(state, windows, still_open, newest_event) if early and not breaker.open else []
        )
        if not closed and not fired_early:
            return policy
        alert_rows.extend(fired_early)
        state.prune_offsets()
        state.breaker = breaker.to_dict()
        self._write(spark, batch_id, score_rows, alert_rows)
        if self.alerts is not None:
            self.alerts.write(batch_id, lambda: [self._outgoing(row) for row in alert_rows])
        if self.metrics is not None:
            self._export(newest, state, alert_rows)
            for row in fired_early:  # no closed window of theirs in ``newest``
                self.metrics.drift_alert_state(self.source, row["feature"], row["method"], active=True,
                                               since=row["first_flagged_window"])  # fmt: skip
            self.metrics.breaker_state(self.source, open_=breaker.open, rate=breaker.last_rate)
        logger.info("drift_scored source=%s batch=%d windows=%d scores=%d alerts=%d early=%d", self.source,
                    batch_id, len(closed), len(score_rows), len(alert_rows), len(fired_early))  # fmt: skip
        return state.to_dict()

    def _fire_early(
        self,
        state: PolicyState,
        windows: StateVersion,
        still_open: list[tuple[datetime, datetime]],
        newest_event: datetime | None,
    ) -> list[dict[str, Any]]:
        """Early alerts: each still-open window, oldest first, scored on its rows so far (the
        same counts and formulas as a closed window, from this batch's state version); a
        track one drifted window short of firing fires on it if it scores ``drifted``
        (:meth:`~driftline.stats.policy.AlertTrack.fire_early`). An open window whose end
        the newest event time ``newest_event`` has passed (only the watermark keeps it open)
        then counts, as it scored, for the open windows after it. Driver side, per batch,
        and only while some track could fire (one short, with every passed window
        drifted): nothing is scored otherwise. No ``drift_scores`` row is written for an
        open window; its final score comes when it closes. Returns the ``alerts`` rows of
        the tracks that fired (``early`` true)."""
        rows: list[dict[str, Any]] = []
        keys = [f"{f}/{m}" for f in self.reference.features for m in self.methods]
        ordered = sorted(still_open)
        passed_starts = {start for start, end in ordered if newest_event is not None and end <= newest_event}
        passable = [(iso_utc(start), Verdict.DRIFTED) for start in sorted(passed_starts)]
        if not any(state.one_short(self.policy, key, passable) for key in keys):
            return rows  # not even with every passed window drifted
        passed: dict[str, list[tuple[str, Verdict]]] = {key: [] for key in keys}
        passed_ranges: dict[str, list] = {}
        for start, end in ordered:
            window_counts = self._window_counts(windows, [start]).get(start)
            if not window_counts:
                continue
            ranges = window_offset_ranges(windows, [start]).get(start, [])
            label = iso_utc(start)
            scores = self.reference.score(window_counts, methods=self.methods, policy=self.policy)
            for score in scores:
                if not state.fire_early(self.policy, score.key, label, score.verdict, passed[score.key]):
                    continue
                since = state.tracks[score.key].since
                state.offsets.update(passed_ranges)  # the episode's open windows, their rows so far
                state.offsets[label] = ranges
                episode = state.episodes[score.key] = merge_ranges(state.episode(score.key))
                row = self._alert_row("fired", score, start, end, since, ranges, episode)
                rows.append({**row, "early": True})
            if start in passed_starts:
                passed_ranges[label] = ranges
                for score in scores:
                    passed[score.key].append((label, score.verdict))
        return rows

    def export_saved_state(self, spark) -> None:
        """At query start: the newest saved policy state's alerts as gauges (driver, once).

        Without it a restarted job would show no drift alert until its next window closes,
        and Prometheus would send a false "resolved" in between."""
        commit = WindowState(spark, self.warehouse.root, self.source).latest_commit()
        state = PolicyState.from_dict(commit.policy) if commit and commit.policy else PolicyState()
        for key, track in state.tracks.items():
            feature, method = key.rsplit("/", 1)
            if track.firing:  # its offsets first: a scrape never sees it active without them
                episode = state.episodes.get(key)
                if episode is None:  # fired before episodes were kept: what is left of its windows
                    episode = merge_ranges(state.episode(key))
                self.metrics.drift_alert_offsets(self.source, feature, method, offsets_label(episode))
            self.metrics.drift_alert_state(self.source, feature, method, active=track.firing,
                                           since=_moment(track.since) if track.firing else None)  # fmt: skip

    def _export(self, newest: dict[str, tuple[FeatureScore, datetime]], state: PolicyState, alert_rows):
        """Gauges for each (feature, method)'s newest closed window; a count per alert event."""
        observations = []
        for key, (score, end) in newest.items():
            track = state.tracks.get(key)
            since = track.since if track is not None and track.firing else None
            observations.append(
                DriftObservation(
                    feature=score.feature, method=score.method, score=finite_or_none(score.score),
                    effect=finite_or_none(score.effect), p_adjusted=finite_or_none(score.p_adjusted),
                    threshold=score.threshold, drifted=score.drifted,
                    alert_active=bool(track and track.firing), window_end=end,
                    first_flagged=_moment(since),
                )
            )  # fmt: skip
        events = [
            AlertEvent(row["feature"], row["method"], row["event"],
                       offsets_label(row["episode_offset_ranges"] or []) if row["event"] == "fired" else None)
            for row in alert_rows
        ]  # fmt: skip
        self.metrics.drift_scored(self.source, observations, events)

    def _score_row(self, score: FeatureScore, start, end, ranges, version) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "window_start": start, "window_end": end, "feature": score.feature,
            "kind": score.kind, "method": score.method, "score": finite_or_none(score.score),
            "effect": finite_or_none(score.effect), "p_value": finite_or_none(score.p_value),
            "p_adjusted": finite_or_none(score.p_adjusted), "threshold": score.threshold,
            "verdict": str(score.verdict), "drifted": score.drifted, "n": score.n,
            "ks_bound": finite_or_none(score.details.get("ks_bound")),
            "psi_smoothing": finite_or_none(score.details.get("smoothing")), "reference_version": version,
            "top_shifted": score.top_shifted, "offset_ranges": ranges,
        }  # fmt: skip

    def _alert_row(
        self, event, score: FeatureScore, start, end, since: str | None, ranges, episode
    ) -> dict[str, Any]:
        """An ``alerts`` row; ``ranges``: the offsets of this window, ``episode``: of every
        window from the first flagged one to this one (a fired event's, for retraining)."""
        first = _moment(since)
        alert_id = f"{self.pipeline}/{self.source}/{score.feature}/{score.method}"
        return {
            "pipeline": self.pipeline, "event": event, "alert_id": alert_id, "feature": score.feature,
            "method": score.method, "window_start": start, "window_end": end, "first_flagged_window": first,
            "score": finite_or_none(score.score), "effect": finite_or_none(score.effect),
            "threshold": score.threshold, "p_value": finite_or_none(score.p_value),
            "p_adjusted": finite_or_none(score.p_adjusted), "n": score.n,
            "reference_version": self.reference.version, "top_shifted": score.top_shifted,
            "offset_ranges": ranges, "episode_offset_ranges": episode or None, "early": False,
        }  # fmt: skip

    def _write(self, spark, batch_id: int, score_rows: list[dict], alert_rows: list[dict]) -> None:
        for table, rows, schema in (("drift_scores", score_rows, DRIFT_SCORES_SCHEMA),
                                    ("alerts", alert_rows, ALERTS_SCHEMA)):  # fmt: skip
            self.warehouse.append_batch(spark, table, self.source, batch_id, rows, schema)

    def _outgoing(self, row: dict[str, Any]) -> OutgoingRecord:
        event = {"source": self.source, **row}
        value = json.dumps(event, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
        return OutgoingRecord(
            value=value.encode(),
            key=row["alert_id"].encode(),
            headers=[("driftline.event", row["event"].encode())],
        )


def _moment(iso: str | None) -> datetime | None:
    """A policy window label (ISO UTC, ``Z`` suffix) as a datetime."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None
