"""Streaming drift end to end: a reference built with ``driftline baseline``, a stream with
drift injected into three features from a known window, the job scoring closed windows.

The injected features must fire (first alert within ``persistence_n`` windows of the
injection), the untouched ones must stay quiet, the Spark-side counts must score
exactly as the notebook API scores the same rows, and the alerts topic must carry
exactly the alerts table's events.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from datetime import timedelta

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import Drift, SignalGenerator, write_records
from driftline.kafka.reading import read_topic
from driftline.metrics import PipelineMetrics
from driftline.reference import baseline_from_file, find_profile
from driftline.spark.job import run
from driftline.stats import AlertPolicy, ReferenceProfile
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta, spark_delta_read

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N = 6000  # one record per second: 20 five-minute windows of ~300 rows
WINDOW = 300
INJECTED_AT = 3000  # record index = window 10 (08:50)
DRIFTED = {"amount", "country", "risk_score"}
QUIET = {"installments", "merchant_category", "is_online"}


def _stream():
    drifts = (
        Drift("mean_shift", "amount", INJECTED_AT, 1.0),
        Drift("new_category", "country", INJECTED_AT, 0.2, "BR"),
        Drift("null_rate", "risk_score", INJECTED_AT, 0.35),
    )
    return SignalGenerator("payments", seed=23, interval=timedelta(seconds=1), drifts=drifts).records(N)


@pytest.fixture(scope="module")
def drift_run(spark, kafka_bootstrap, tmp_path_factory):
    """One job run shared by the module's tests (they only read its outputs)."""
    tmp_path = tmp_path_factory.mktemp("drift")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=prefix))
    training = SignalGenerator("payments", seed=99, interval=timedelta(seconds=1)).records(8000)
    names = [*training[0].value]
    baseline = baseline_from_file(
        config, "payments", write_records(tmp_path / "train.parquet", training, names)
    )
    records = [r.value for r in _stream()]
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}),
                   [str(i).encode() for i in range(N)])  # fmt: skip
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=2500, metrics=metrics)
    summary = summary.sources["payments"]
    warehouse = config.path(config.warehouse_dir)
    scores = read_delta(warehouse / "drift_scores")
    alerts = read_delta(warehouse / "alerts")
    return config, baseline, records, summary, scores, alerts, metrics


def test_injected_drift_fires_and_untouched_features_stay_quiet(drift_run):
    config, baseline, _, summary, scores, alerts, _ = drift_run
    assert baseline.used == 8000 and not baseline.rejected
    assert summary.read == N and summary.reconciles and summary.batches >= 3
    assert summary.reference_version == baseline.version

    injected_window = pd.Timestamp("2026-01-05T08:00:00Z") + pd.Timedelta(seconds=INJECTED_AT)
    fired = alerts[alerts["event"] == "fired"]
    assert set(fired["feature"]) == DRIFTED, fired[["feature", "method", "window_start"]]
    assert not set(scores[scores["drifted"]]["feature"]) & QUIET
    policy = config.drift
    for feature in DRIFTED:
        first = fired[fired["feature"] == feature]
        # fired once per (feature, method), at most persistence_n windows after the injection
        assert first["alert_id"].is_unique
        assert (first["first_flagged_window"] >= injected_window).all()
        lag = (first["window_start"].min() - injected_window) / pd.Timedelta(seconds=WINDOW)
        assert 0 <= lag < policy.persistence_n, (feature, lag)
    assert summary.drifted.keys() == DRIFTED
    # the nulls' move is seen by the null rate itself, and only on the feature whose nulls moved
    assert set(fired[fired["method"] == "null_rate"]["feature"]) == {"risk_score"}
    assert summary.alerts_fired == len(fired)

    # every closed window scored once for every feature and applicable method; nothing before it drifts
    per_window = scores.groupby("window_start").size()
    # 3 numeric x (psi, ks, null_rate) + 3 categorical x (psi, chi2, null_rate)
    assert (per_window == 18).all()
    assert summary.scored_windows == len(per_window) >= 15
    assert not scores[(scores["window_start"] < injected_window) & scores["drifted"]].shape[0]
    # the evidence names the bin that moved: the new category, the null slot
    new_category = scores[
        (scores["feature"] == "country")
        & (scores["window_start"] >= injected_window)
        & (scores["method"] != "null_rate")
    ]  # its evidence: the null and non-null shares
    assert all(row[0]["bin"] == "__OOV__" for row in new_category["top_shifted"])
    nulls = scores[(scores["feature"] == "risk_score") & (scores["method"] == "psi")]
    assert all(
        row[0]["bin"] == "__NULL__" for row in nulls[nulls["window_start"] >= injected_window]["top_shifted"]
    )


def test_spark_window_counts_score_like_the_notebook_api(drift_run):
    """Spark-side grid bins and category counts must give the scores the pure path gives."""
    config, baseline, records, _, scores, _, _ = drift_run
    profile = ReferenceProfile.load(find_profile(config, "payments"))
    frame = pd.DataFrame(records)
    frame["window_start"] = frame["event_time"].dt.floor("5min")  # UTC instants, as in the tables
    policy = AlertPolicy.from_settings(config.drift)
    checked = 0
    for window_start, rows in frame.groupby("window_start"):
        mine = scores[scores["window_start"] == window_start]
        if mine.empty:
            continue  # still open at the end of the stream
        theirs = profile.compare(rows, methods=config.drift.methods, policy=policy)
        merged = mine.merge(theirs, on=["feature", "method"], suffixes=("", "_api"))
        assert len(merged) == 18
        assert (merged["n"] == merged["n_api"]).all()
        assert (merged["score"] - merged["score_api"]).abs().max() < 1e-9
        assert (merged["drifted"] == merged["drifted_api"]).all()
        checked += 1
    assert checked >= 15


def test_alerts_topic_carries_exactly_the_alerts_table(drift_run, kafka_bootstrap):
    config, _, _, _, _, alerts, _ = drift_run
    topic = config.kafka.topic_prefix + config.drift.alerts_topic
    events = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topic)]
    assert len(events) == len(alerts) > 0
    seen = {(e["alert_id"], e["event"], e["window_start"][:19]) for e in events}
    table = {(r.alert_id, r.event, r.window_start.isoformat()[:19]) for r in alerts.itertuples()}
    assert seen == table
    fired = next(e for e in events if e["event"] == "fired")
    assert fired["score"] >= fired["threshold"] and fired["n"] >= config.drift.min_rows
    assert fired["source"] == "payments" and fired["top_shifted"] and fired["offset_ranges"]


def test_drift_metrics_show_the_newest_window_and_the_firing_alerts(drift_run):
    """What Prometheus would scrape agrees with the tables: the newest closed window's score,
    threshold and flag per (feature, method), the policy's firing alerts and since when."""
    _, _, _, _, scores, alerts, metrics = drift_run
    registry = metrics.registry
    newest = scores[scores["window_start"] == scores["window_start"].max()]
    assert len(newest) == 18
    firing = set()
    for key, events in alerts.sort_values("window_start").groupby(["feature", "method"]):
        if events.iloc[-1]["event"] == "fired":
            firing.add(key)
    assert {feature for feature, _ in firing} == DRIFTED  # the drift lasts to the end of the stream
    for row in newest.itertuples():
        labels = {"pipeline": "demo", "source": "payments", "feature": row.feature, "method": row.method}
        value = lambda name, labels=labels: registry.get_sample_value(name, labels)  # noqa: E731
        assert value("driftline_drift_score") == pytest.approx(row.score, rel=1e-12)
        assert value("driftline_drift_effect") == pytest.approx(row.effect, rel=1e-12)
        assert value("driftline_drift_threshold") == row.threshold
        assert value("driftline_drift_detected") == int(row.drifted)
        active = (row.feature, row.method) in firing
        assert value("driftline_drift_alert_active") == int(active), labels
        fired = alerts[(alerts["feature"] == row.feature) & (alerts["method"] == row.method)]
        assert value("driftline_drift_alerts_total") is None  # that series has an event label
        for event in ("fired", "resolved"):
            count = registry.get_sample_value("driftline_drift_alerts_total", {**labels, "event": event})
            assert (count or 0) == (fired["event"] == event).sum()
        if active:
            since = fired[fired["event"] == "fired"]["first_flagged_window"].max()
            assert value("driftline_drift_first_flagged_timestamp_seconds") == since.timestamp()
    window_end = registry.get_sample_value(
        "driftline_drift_window_end_timestamp_seconds", {"pipeline": "demo", "source": "payments"}
    )
    assert window_end == newest["window_end"].iloc[0].timestamp()


def test_a_restarted_job_shows_the_saved_alerts_before_its_next_window(drift_run, spark):
    """The policy state on disk, not an empty registry, decides what is firing after a restart."""
    config, _, _, _, _, alerts, metrics = drift_run
    from driftline.spark.job import drift_scorer
    from driftline.spark.tables import Warehouse

    restarted = PipelineMetrics(config.name)
    scorer = drift_scorer(config, "payments", Warehouse(config.location(config.warehouse_dir)))
    scorer.metrics = restarted
    scorer.export_saved_state(spark)
    for family in metrics.registry.collect():
        if family.name != "driftline_drift_alert_active":
            continue
        for s in family.samples:  # the same firing set as the run that wrote the state
            assert restarted.registry.get_sample_value(s.name, s.labels) == s.value, s.labels
    firing = [s for f in restarted.registry.collect() if f.name == "driftline_drift_alert_active"
              for s in f.samples if s.value == 1]  # fmt: skip
    assert {s.labels["feature"] for s in firing} == DRIFTED


def test_sql_views_answer_like_the_parquet_tables_read_apart(drift_run, spark):
    """``driftline sql``'s views hold the tables' rows: a query's answer equals the same
    question asked of the Parquet files with pandas; a table not written yet (no dead
    letters in this run) is named in the error, with the views there are."""
    from driftline.errors import QueryError
    from driftline.spark.sql import SqlSession

    config, _, _, _, scores, alerts, _ = drift_run
    session = SqlSession(spark, config.location(config.warehouse_dir))
    # the payments suite has a window expectation (transaction_id unique): quality_results too;
    # the injected BR is outside the training vocabulary: schema_events
    assert session.views == ["feature_stats", "drift_scores", "alerts", "quality_results", "schema_events"]
    unseen = session.query("select window_start, field, values from schema_events "
                           "where kind = 'unseen_categories' order by window_start")  # fmt: skip
    injected_window = pd.Timestamp("2026-01-05T08:00:00Z") + pd.Timedelta(seconds=INJECTED_AT)
    scored = sorted(scores["window_start"].unique())
    assert [pd.Timestamp(t, tz="UTC") for t in unseen["window_start"]] == [
        t for t in scored if t >= injected_window
    ]
    assert set(unseen["field"]) == {"country"} and all(list(v) == ["BR"] for v in unseen["values"])
    mine = session.query(
        "select source, feature, method, count(*) as windows, sum(cast(drifted as int)) as drifted "
        "from drift_scores group by source, feature, method order by feature, method"
    )
    theirs = (
        scores.assign(drifted=scores["drifted"].astype(int))
        .groupby(["feature", "method"], as_index=False)
        .agg(windows=("window_start", "size"), drifted=("drifted", "sum"))
    )
    assert (mine["source"] == "payments").all()
    assert mine[["feature", "method", "windows", "drifted"]].to_dict("records") == theirs.to_dict("records")
    fired = session.query("select feature, method from alerts where event = 'fired' order by feature, method")
    expected = alerts[alerts["event"] == "fired"].sort_values(["feature", "method"])[["feature", "method"]]
    assert fired.values.tolist() == expected.values.tolist()
    stats = read_delta(config.path(config.warehouse_dir) / "feature_stats")
    joined = session.query(
        "select count(*) as n from feature_stats f join drift_scores d "
        "on f.source = d.source and f.window_start = d.window_start and f.feature = d.feature"
    )
    assert int(joined["n"][0]) == len(scores)  # every score row has its window's feature_stats row
    assert int(session.query("select count(*) as n from feature_stats")["n"][0]) == len(stats)
    with pytest.raises(QueryError) as caught:
        session.query("select * from dead_letters")
    message = str(caught.value)
    assert "TABLE_OR_VIEW_NOT_FOUND" in message and "not written yet: dead_letters" in message
    assert "views: feature_stats, drift_scores, alerts, quality_results" in message and "\n" not in message


def test_driftline_sql_prints_csv_and_reads_a_script_from_stdin(drift_run):
    """The command as a user types it: one query to CSV, then a piped script of two
    statements, then a bad query (a message and exit 2, no traceback)."""
    import io
    import subprocess
    import sys

    from tests.conftest import REPO

    config, _, _, _, scores, _, _ = drift_run
    pipeline = config.base_dir / "p.toml"
    assert pipeline.exists()
    command = [sys.executable, "-m", "driftline.cli", "sql", "-p", str(pipeline)]
    script = (
        "select method, count(*) as n from drift_scores group by method order by method;\n"
        "select count(*) as rows_;\n-- the third names a column alerts lacks; a ';' in a comment ends nothing\n"
        "select nope from alerts;\n"
    )
    first = subprocess.run([*command, "--format", "csv", "select count(*) as n from drift_scores"],
                           capture_output=True, text=True, timeout=300, cwd=REPO)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert pd.read_csv(io.StringIO(first.stdout))["n"].tolist() == [len(scores)]
    piped = subprocess.run(command + ["--format", "json"], input=script, capture_output=True, text=True,
                           timeout=300, cwd=REPO)  # fmt: skip
    assert piped.returncode == 2, piped.stderr
    lines = [json.loads(line) for line in piped.stdout.splitlines()]
    by_method = scores.groupby("method").size().sort_index()
    assert lines[: len(by_method)] == [{"method": m, "n": int(n)} for m, n in by_method.items()]
    assert lines[len(by_method)] == {"rows_": 1}  # Spark answers a count over no table: one row
    assert "driftline: error: query failed:" in piped.stderr and "nope" in piped.stderr
    assert "Traceback" not in piped.stderr


def test_the_readmes_duckdb_and_pandas_queries_answer_like_driftline_sql(drift_run, spark):
    """The README's DuckDB and pandas snippets, run as written (on this run's warehouse),
    give the rows its ``driftline sql`` example gives."""
    import re

    from driftline.spark.sql import SqlSession
    from tests.conftest import REPO

    config, *_ = drift_run
    warehouse = str(config.path(config.warehouse_dir))
    readme = (REPO / "README.md").read_text()
    blocks = [
        b.replace(".driftline/warehouse", warehouse) for b in re.findall(r"```python\n(.*?)```", readme, re.S)
    ]
    duck = next(b for b in blocks if b.startswith("import duckdb"))
    panda = next(b for b in blocks if "worst = scores" in b)
    query = re.search(r'driftline sql -p pipelines/demo.toml \\\n  "(.*?)"', readme, re.S).group(1)

    spark_rows = SqlSession(spark, warehouse).query(query)
    scope: dict = {}
    exec(duck.replace("duckdb.sql(", "__result = duckdb.sql(", 1), scope)
    duck_rows = scope["__result"]
    exec(panda, scope)
    pandas_rows = scope["worst"].reset_index().sort_values("score", ascending=False, kind="stable")
    assert not spark_rows.empty
    key = ["source", "feature", "method"]
    assert sorted(map(tuple, spark_rows[key].values.tolist())) == sorted(
        map(tuple, duck_rows[key].values.tolist())
    )
    assert sorted(map(tuple, pandas_rows[key].values.tolist())) == sorted(
        map(tuple, spark_rows[key].values.tolist())
    )
    assert spark_rows["worst"].tolist() == pytest.approx(duck_rows["worst"].tolist())
    assert sorted(spark_rows["worst"]) == pytest.approx(sorted(pandas_rows["score"]))


def test_spark_reads_the_tables_with_deltas_own_reader(drift_run, spark):
    """Delta's own Spark reader (a session with Delta's extension and catalog, as a user's
    would be) reads the tables delta-rs committed: the same worst scores as ``driftline
    sql``, ``feature_stats`` written by MERGE, and as many rows as the deltalake package
    reads."""
    from driftline.spark.sql import SqlSession

    config, *_ = drift_run
    warehouse = config.path(config.warehouse_dir)
    query = ("select source, feature, method, max(score) as worst from {drift_scores} where drifted "
             "group by source, feature, method order by source, feature, method")  # fmt: skip
    seen = spark_delta_read(warehouse, ["feature_stats", "drift_scores", "alerts"], query)
    ours = SqlSession(spark, str(warehouse)).query(query.format(drift_scores="drift_scores"))
    assert len(seen["rows"]) == len(ours) > 0
    assert [r[:3] for r in seen["rows"]] == ours[["source", "feature", "method"]].values.tolist()
    assert [r[3] for r in seen["rows"]] == pytest.approx(ours["worst"].tolist())
    assert "MERGE" in seen["operations"]["feature_stats"]
    for name in ("feature_stats", "drift_scores", "alerts"):
        assert seen["counts"][name] == len(read_delta(warehouse / name)) > 0, name


def _chromium(*args: str) -> subprocess.CompletedProcess:
    """Debian's chromium, headless, with every host unresolvable: the page may fetch nothing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is installed by `make test` (Makefile: browser)"
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--host-resolver-rules=MAP * ~NOTFOUND", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_html_report_draws_every_chart_in_chromium_from_the_tables(drift_run):
    """``driftline report``'s page, opened in headless Chromium with no network: every chart
    drew (the page counts them), the drift series are the drift_scores rows, the flagged
    windows' histograms are shares, and a screenshot is kept as a test artefact."""
    from driftline.report import write_report
    from tests.conftest import REPO

    config, _, _, _, scores, alerts, _ = drift_run
    report = write_report(config, config.base_dir / "report.html", sources=["payments"])
    page = report.path.read_text()
    # nothing to fetch: no linked file, no script or image source, no web font, no absolute link
    assert not re.search(r'<link|\ssrc="|@import|url\(|href="(https?:)?//', page)
    data = json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page,
                                re.S).group(1).replace("<\\/", "</"))  # fmt: skip
    (payments,) = data["sources"]
    series = {(s["feature"], s["method"]): s for s in payments["drift"]}
    assert len(series) == scores.groupby(["feature", "method"]).ngroups
    amount = scores[(scores["feature"] == "amount") & (scores["method"] == "ks")].sort_values("window_start")
    assert [p["effect"] for p in series[("amount", "ks")]["points"]] == pytest.approx(
        amount["effect"].tolist()
    )
    assert [p["drifted"] for p in series[("amount", "ks")]["points"]] == amount["drifted"].tolist()
    assert payments["histograms"], "drifted windows have histograms"
    for h in payments["histograms"]:
        assert len(h["labels"]) == len(h["reference"]) == len(h["current"])
        assert sum(h["reference"]) == pytest.approx(1) and sum(h["current"]) == pytest.approx(1, abs=1e-6)
    fired = alerts[alerts["event"] == "fired"]
    assert {(e["feature"], e["method"]) for e in payments["alerts"]} == set(
        zip(fired["feature"], fired["method"], strict=True)
    )
    # schema drift: the windows where BR (outside the training vocabulary) appeared, in the page too
    events = read_delta(config.path(config.warehouse_dir) / "schema_events")
    shown = [(e["kind"], e["field"], e["window"]) for e in payments["schema_events"]]
    assert sorted(shown) == sorted(
        (k, f, pd.Timestamp(t).isoformat()) for k, f, t in zip(events["kind"], events["field"],
                                                                events["window_start"], strict=True)
    )  # fmt: skip
    assert "<h3>Schema drift</h3>" in page and "outside the reference vocabulary: BR" in page

    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", report.path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    drawn = re.search(r'data-charts-drawn="(\d+)"', dom.stdout)
    assert drawn and int(drawn.group(1)) == report.charts > len(series)
    assert 'data-chart-errors="0"' in dom.stdout
    assert dom.stdout.count("<svg") == report.charts
    assert dom.stdout.count('class="series"') >= report.charts
    artefacts = REPO / "build" / "test-artifacts"
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = _chromium(
        "--window-size=1300,3200", f"--screenshot={artefacts / 'report.png'}", report.path.as_uri()
    )
    assert shot.returncode == 0 and (artefacts / "report.png").stat().st_size > 50_000
    print(f"report screenshot: {artefacts / 'report.png'}")
