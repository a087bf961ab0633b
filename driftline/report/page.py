"""The drift report as one self-contained HTML file: data, style and the chart code inline.

Nothing is fetched when the file is opened (no CDN, no fonts, no network): the page
carries the report's data as JSON and a small script that draws each chart as SVG. When
every chart is drawn the script sets ``data-charts-drawn`` on ``<body>`` to their
number (and ``data-chart-errors`` to the failures), which the test reads back from
headless Chromium.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any


def _asset(name: str) -> str:
    """A file shipped next to this module (the page's style and chart code)."""
    return resources.files("driftline.report").joinpath(name).read_text(encoding="utf-8")


def _figure(kind: str, source: int, index: int, caption: str, legend: str = "") -> str:
    return (f'<figure data-chart="{kind}" data-source="{source}" data-index="{index}">'
            f"<figcaption>{html.escape(caption)}</figcaption>{legend}</figure>")  # fmt: skip


def _legend(*items: tuple[str, str]) -> str:
    spans = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{html.escape(t)}</span>' for c, t in items
    )
    return f'<div class="legend">{spans}</div>'


def _source_section(i: int, data: dict[str, Any]) -> tuple[str, int]:
    """One source's section, and how many charts it holds."""
    name = html.escape(data["source"])
    parts = [f'<section class="source" id="source-{name}"><h2>{name}</h2>']
    charts = 0
    version = data.get("reference_version")
    parts.append(
        f'<p class="muted">reference {html.escape(version) if version else "none: drift not scored"}</p>'
    )
    breaker = data.get("breaker")
    if breaker:
        state = (f'<span class="fail">open since {html.escape(str(breaker.get("since")))}</span>'
                 if breaker.get("open") else '<span class="ok">closed</span>')  # fmt: skip
        parts.append(f"<p>circuit breaker {state}; {breaker.get('degraded_windows', 0)} windows degraded "
                     "(too many dead letters: their drift verdicts are not drift)</p>")  # fmt: skip
    if data["drift"]:
        parts.append("<h3>Drift: effect size against its threshold, per closed window</h3><div class=grid>")
        legend = _legend(("#1f77b4", "effect"), ("#b3261e", "drifted window / threshold"),
                         ("#9aa5b4", "degraded window"))  # fmt: skip
        for j, series in enumerate(data["drift"]):
            drifted = sum(p["drifted"] for p in series["points"])
            caption = (f"{series['feature']} · {series['method']} · threshold {series['threshold']:g} · "
                       f"{drifted} drifted")  # fmt: skip
            parts.append(_figure("drift", i, j, caption, legend))
            charts += 1
        parts.append("</div>")
    if data["histograms"]:
        parts.append("<h3>Reference against flagged windows</h3><div class=grid>")
        legend = _legend(("#9aa5b4", "reference"), ("#d62728", "window"))
        for j, h in enumerate(data["histograms"]):
            caption = f"{h['feature']} · window {h['t'][:16]} · {h['method']} effect {h['effect']:.3f}"
            parts.append(_figure("histogram", i, j, caption, legend))
            charts += 1
        parts.append("</div>")
    if data["alerts"]:
        parts.append("<h3>Alert timeline (first flagged window to resolution)</h3>")
        parts.append(_figure("alerts", i, 0, f"{len(data['alerts'])} alert episodes"))
        charts += 1
    if data["expectations"]:
        parts.append("<h3>Window expectations</h3>")
        parts.append(_figure("expectations", i, 0, "per window: green passed, red failed",
                             _legend(("#2ca02c", "passed"), ("#d62728", "failed"))))  # fmt: skip
        rows = "".join(
            f"<tr><td>{html.escape(x['expectation'])}</td><td>{html.escape(x['expects'] or '')}</td>"
            f"<td>{len(x['points'])}</td><td class={'fail' if failed else 'ok'}>{failed}</td></tr>"
            for x in data["expectations"]
            for failed in [sum(not p["success"] for p in x["points"])]
        )
        parts.append(
            f"<table><tr><th>expectation</th><th>expects</th><th>windows</th><th>failed</th></tr>{rows}</table>"
        )
        charts += 1
    if data.get("schema_events"):
        parts.append("<h3>Schema drift</h3>")
        what = lambda e: e["field"] or ("" if e["schema_id"] is None else f"id {e['schema_id']}")  # noqa: E731
        rows = "".join(
            f"<tr><td>{e['batch_id']}</td><td>{html.escape(e['kind'])}</td><td>{html.escape(what(e))}</td>"
            f"<td>{html.escape((e['window'] or '')[:16])}</td><td>{e['count']}</td>"
            f"<td>{html.escape(e['detail'] or '')}</td></tr>"
            for e in data["schema_events"]
        )
        parts.append("<table><tr><th>batch</th><th>kind</th><th>field / schema</th><th>window</th>"
                     f"<th>count</th><th>detail</th></tr>{rows}</table>")  # fmt: skip
    if data["dead_letters"]["points"]:
        reasons = data["dead_letters"]["reasons"]
        colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        legend = _legend(*((colors[k % len(colors)], r) for k, r in enumerate(reasons)))
        parts.append("<h3>Dead letters by reason, per batch (at its newest event time)</h3>")
        parts.append(_figure("dead_letters", i, 0, f"{len(data['dead_letters']['points'])} batches", legend))
        charts += 1
    if data["volume"]["points"]:
        newest = data["volume"].get("newest_window") or "n/a"
        parts.append(
            f"<h3>Volume and freshness</h3><p class=muted>newest window starts {html.escape(newest)}</p>"
        )
        legend = _legend(("#2ca02c", "rows (final)"), ("#a6d6a9", "rows (open)"), ("#ff7f0e", "late rows"))
        parts.append(_figure("volume", i, 0, "valid rows per window", legend))
        charts += 1
    parts.append("</section>")
    return "".join(parts), charts


def render(pipeline: str, sources: list[dict[str, Any]], *, window_seconds: int, since=None, until=None,
           generated: datetime | None = None) -> tuple[str, int]:  # fmt: skip
    """The HTML page and the number of charts it draws."""
    times = [p["t"] for s in sources for series in s["drift"] for p in series["points"]]
    times += [p["t"] for s in sources for p in s["volume"]["points"]]
    first, last = (min(times), max(times)) if times else ("1970-01-01T00:00:00+00:00",) * 2
    payload = {"pipeline": pipeline, "sources": sources, "first": first, "last": last,
               "window_ms": window_seconds * 1000}  # fmt: skip
    sections, charts = [], 0
    for i, data in enumerate(sources):
        text, count = _source_section(i, data)
        sections.append(text)
        charts += count
    moment = (generated or datetime.now(UTC)).isoformat(timespec="seconds")
    span = f"{since or first} to {until or last}"
    data_json = json.dumps(payload, default=str).replace("</", "<\\/")
    index = " · ".join(f'<a style="color:#c9d1dc" href="#source-{html.escape(s["source"])}">'
                       f'{html.escape(s["source"])}</a>' for s in sources)  # fmt: skip
    title = html.escape(pipeline)
    style, script = _asset("report.css"), _asset("report.js")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driftline report: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{style}</style></head>
<body data-charts-expected="{charts}"><header><h1>driftline drift report · pipeline {title}</h1>
<p>windows {html.escape(span)} · generated {moment} · {index}</p></header><main>{"".join(sections)}</main>
<script id="report-data" type="application/json">{data_json}</script><script>{script}</script></body></html>
"""
    return page, charts


__all__ = ["render"]
