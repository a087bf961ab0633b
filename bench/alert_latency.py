"""Event-to-alert latency: first drifted record produced -> drift alert at the webhook.

The path measured is the production one, on one machine: a live stream (event time =
now, 150 records/s) into the embedded broker, the quality job in streaming mode
(ten-second windows, four-second watermark, one-second trigger, persistence 2 of 3),
its exporter scraped every second by Debian's Prometheus with the shipped rules,
and Debian's Alertmanager with the shipped routing tree (group_wait 1 s), whose
``webhook`` receiver points at a local HTTP server. Each run streams clean records
until the job has scored a window, then switches to a 1.5 sigma mean shift in
``amount`` and records when the first drifted record was produced; the latency is
the time until the ``DriftlineFeatureDrift`` alert for ``amount`` arrives.

Drift does not wait for a window to start, so the runs start it at phases spread
evenly over the window (run ``i`` of ``n`` at ``(i + 0.5) / n`` of it): the latency
depends on the phase by up to a window, and left to itself the start would follow the
job's own scoring rhythm and measure one phase only.

Every phase is measured twice, side by side in one run: with alerts on closed windows
only (the default) and with ``[drift] early_alerts`` (a track one window short may fire
on the still-open window's rows so far, and an open window whose end the stream has
passed counts as it scores; docs/drift.md).

Runs share one SparkSession, broker, Prometheus and Alertmanager; each has its own
topics, checkpoint and tables. Before drifting, a run waits until the previous run's
alert has resolved (the new run's first clean window clears it), so each run's alert
is a new notification.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path

from bench import percentile
from driftline.config import load_pipeline
from driftline.demo import Drift
from driftline.demo.promstack import (
    MISSING_HINT,
    WebhookReceiver,
    find_binaries,
    shipped_stack,
)
from driftline.metrics import PipelineMetrics, serve
from driftline.testing.live import LiveProducer, StreamingJob, build_reference, live_config, wait_until

REPO = Path(__file__).resolve().parent.parent
DRIFT = (Drift("mean_shift", "amount", 0, 1.5),)


MODES = {"closed windows": False, "early alerts": True}  # label -> [drift] early_alerts


def _config(scratch: Path, bootstrap: str, run: int | str, *, early: bool = False):
    config = load_pipeline(REPO / "pipelines" / "demo.toml")
    folder = scratch / f"run{run}"
    config = config.with_kafka(bootstrap_servers=bootstrap, topic_prefix=f"lat{uuid.uuid4().hex[:8]}.")
    config = config.model_copy(
        update={
            "state_dir": str(folder / "state"),
            "warehouse_dir": str(folder / "warehouse"),
            "reference": config.reference.model_copy(update={"path": str(folder / "references")}),
            "metrics": config.metrics.model_copy(update={"enabled": False}),  # the bench serves its own
        }
    )
    config = live_config(config)
    config = config.model_copy(update={"drift": config.drift.model_copy(update={"early_alerts": early})})
    build_reference(config, "payments", folder)
    return config


def measure(spark, bootstrap: str, scratch: Path, runs: int) -> dict[str, list[float]]:
    """Latency in seconds of ``runs`` drift injections per mode of :data:`MODES` (see the
    module docstring); the modes take turns at each phase.

    Each run also prints where its latency went: the drift's start ``phase`` in its
    window, how many windows it took to fire (the first, partly drifted window may or may
    not be flagged; 2 of 3 then needs one more), and the time from the firing window's
    end to the webhook (watermark, trigger, batch, scrape, rule evaluation, group_wait;
    negative for an early alert, which fires before its window ends).
    The first part is set by the windows and the persistence, the second by the job."""
    binaries = find_binaries()
    if binaries is None:
        raise SystemExit(f"alert latency needs Prometheus and Alertmanager: {MISSING_HINT}")
    metrics = PipelineMetrics("demo")
    exporter = serve(metrics.registry, port=0)
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    with WebhookReceiver() as webhook:
        stack = shipped_stack(scratch / "promstack", scrape_targets=[f"127.0.0.1:{exporter.port}"],
                              webhook=webhook, binaries=binaries)  # fmt: skip
        with stack as prom:
            prom.wait_for_scrape()
            for run in range(runs):
                for mode, early in MODES.items():
                    config = _config(scratch, bootstrap, f"{run}{'e' if early else ''}", early=early)
                    phase = (run + 0.5) / runs * config.windows.size.seconds
                    drifted_at, received_at = _one_run(
                        spark, config, metrics, webhook, prom, seed=run, phase=phase
                    )
                    latency = received_at - drifted_at
                    latencies[mode].append(latency)
                    print(f"  run {run + 1}/{runs}, {mode}: drift alert for amount after {latency:5.1f} s "
                          f"({_breakdown(config, drifted_at, received_at)})")  # fmt: skip
    exporter.close()
    return latencies


def _one_run(
    spark, config, metrics: PipelineMetrics, webhook, prom, *, seed: int, phase: float
) -> tuple[float, float]:
    """When the first drifted record was produced (``phase`` seconds into a window) and
    when its alert reached the webhook."""
    started, seen = time.time(), len(webhook.notifications)

    def new_amount_alert(notification) -> bool:
        return notification.receiver == "webhook" and any(
            a.get("status") == "firing" and a["labels"].get("alertname") == "DriftlineFeatureDrift"
            and a["labels"].get("feature") == "amount"
            for a in notification.payload.get("alerts", [])
        ) and webhook.notifications.index(notification) >= seen  # fmt: skip

    with (
        LiveProducer(config, "payments", rate=150, drifts=DRIFT, seed=seed) as producer,
        StreamingJob(spark, config, ["payments"], metrics) as job,
    ):
        job.wait_for_windows(0, after=started - 10, timeout=240)  # this run's first scored window
        wait_until(lambda: not _firing(prom), 60, "the previous run's drift alert to resolve")
        size = config.windows.size.seconds
        now = time.time()
        start = now - now % size + phase
        at = start if start > now + 0.2 else start + size  # the next moment at that phase
        wait_until(lambda: time.time() >= at, size + 1, f"{phase:.1f} s into a window", poll=0.01)
        producer.start_drift()
        alert = webhook.wait_for(new_amount_alert, timeout=300)
    return producer.first_drifted_at, alert.received_at


def _breakdown(config, drifted_at: float, received_at: float) -> str:
    """Phase of the drift start in its window, windows to fire, firing window end -> webhook."""
    import pyarrow.dataset as ds

    size = config.windows.size.seconds
    alerts = Path(config.warehouse_dir) / "alerts"
    if not alerts.exists():
        return "no alerts table"
    rows = ds.dataset(alerts, format="parquet", partitioning="hive").to_table().to_pylist()
    fired = [  # this drift's: a window that ended after it began
        row for row in rows if row["event"] == "fired" and row["feature"] == "amount"
        and row["window_end"].timestamp() > drifted_at
    ]  # fmt: skip
    if not fired:
        return "no fired row in the alerts table"
    end = min(row["window_end"] for row in fired).timestamp()
    start = drifted_at - drifted_at % size
    windows = round((end - start) / size)
    return (f"drift began {drifted_at - start:4.1f} s into its window; fired on window {windows} from it, "
            f"{end - drifted_at:4.1f} s of windows + {received_at - end:4.1f} s after its end")  # fmt: skip


def _firing(prom) -> bool:
    return any(
        a["labels"].get("alertname") == "DriftlineFeatureDrift" and a["labels"].get("feature") == "amount"
        for a in prom.prometheus_alerts()
    )


def summarize(latencies: list[float]) -> dict[str, float]:
    """Median and p95 (nearest rank) of the runs, in seconds."""
    ordered = sorted(latencies)
    p95 = percentile(ordered, 0.95)
    return {"runs": len(ordered), "median_s": round(statistics.median(ordered), 1), "p95_s": round(p95, 1),
            "min_s": round(ordered[0], 1), "max_s": round(ordered[-1], 1)}  # fmt: skip


def report(latencies: dict[str, list[float]]) -> str:
    """One line per mode, and the early mode's median and p95 against the default's."""
    summaries = {mode: summarize(values) for mode, values in latencies.items() if values}
    lines = [f"{mode:<16} median {s['median_s']:5.1f} s, p95 {s['p95_s']:5.1f} s over {s['runs']} runs "
             f"(min {s['min_s']:.1f}, max {s['max_s']:.1f})" for mode, s in summaries.items()]  # fmt: skip
    if len(summaries) == 2:
        base, early = summaries["closed windows"], summaries["early alerts"]
        lines.append(f"early / closed windows: median {early['median_s'] / base['median_s']:.2f}x, "
                     f"p95 {early['p95_s'] / base['p95_s']:.2f}x")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """``python -m bench.alert_latency [--runs N]``: the alert stage alone."""
    import argparse

    from bench import broker_and_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="drift injections per mode")
    args = parser.parse_args()
    with broker_and_session("driftline-alert-latency") as (spark, bootstrap, scratch):
        latencies = measure(spark, bootstrap, scratch, args.runs)
    print("event-to-alert latency (10 s windows, 4 s watermark, 2-of-3 persistence, 1 s scrape):")
    print("\n".join(f"  {line}" for line in report(latencies).splitlines()))


if __name__ == "__main__":
    main()
