"""``make demo``: the whole pipeline on the embedded defaults, with a readable ending.

At this stage: start the embedded broker, generate the three demo sources (one per
input format) with corrupt records and injected drift, ingest them, and show per
source what was read, produced and dead-lettered, checking that counts reconcile.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftline.config import load_pipeline
from driftline.ingest.run import ingest_file
from driftline.kafka.broker import EmbeddedBroker, free_port, port_is_free
from driftline.testing import Corruption, Drift, generator_for, write_records

logger = logging.getLogger(__name__)

#: One format per source, so the demo exercises every reader.
DEMO_INPUTS = {"payments": "jsonl", "sensors": "csv", "clickstream": "parquet"}
CORRUPT_RATE = 0.02


def demo_drifts(records: int) -> dict[str, tuple[Drift, ...]]:
    """The drift the demo injects, from 60% of the stream on (found in a later stage)."""
    start = int(records * 0.6)
    return {
        "payments": (
            Drift("mean_shift", "amount", start, 1.0),
            Drift("new_category", "country", start, 0.15, "BR"),
        ),
        "sensors": (
            Drift("variance_change", "vibration_mm_s", start, 2.0),
            Drift("null_rate", "pressure_kpa", start, 0.3),
        ),
        "clickstream": (Drift("mean_shift", "dwell_ms", start, 0.8),),
    }


def run_demo(pipeline: Path, *, records: int, output_dir: Path, keep_broker: bool = False) -> bool:
    """Run the demo; return whether every source's counts reconciled."""
    console = Console()
    config = load_pipeline(pipeline)
    state_dir = config.path(config.state_dir) / "demo-broker"
    broker = EmbeddedBroker(state_dir, port=9092 if port_is_free("127.0.0.1", 9092) else free_port())
    broker.stop()  # a broker left over from an interrupted demo
    state = broker.start()
    console.print(f"[bold]embedded broker[/] tansu at {state.bootstrap} (pid {state.pid})")
    config = config.model_copy(
        update={"kafka": config.kafka.model_copy(update={"bootstrap_servers": state.bootstrap})}
    )
    summaries = []
    try:
        drifts = demo_drifts(records)
        for seed, (source, fmt) in enumerate(DEMO_INPUTS.items()):
            kinds = ("missing_field",) if fmt == "parquet" else None
            corruption = Corruption(CORRUPT_RATE, kinds) if kinds else Corruption(CORRUPT_RATE)
            generator, names = generator_for(
                config, source, seed=seed, corruption=corruption, drifts=drifts[source]
            )
            path = write_records(output_dir / "input" / f"{source}.{fmt}", generator.records(records), names)
            summary = ingest_file(config, source, path)
            summaries.append(summary)
            console.print(f"ingested {path} -> {config.topic(source)}: {summary.to_json()}")
    finally:
        if not keep_broker:
            broker.stop()
    _show(console, summaries, config)
    output_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "pipeline": config.name,
        "sources": {s.source: s.as_dict() | {"reconciles": s.reconciles} for s in summaries},
    }
    (output_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"summary written to {output_dir / 'summary.json'}")
    return all(s.reconciles and not s.undelivered for s in summaries)


def _show(console: Console, summaries, config) -> None:
    table = Table(title=f"pipeline {config.name}: ingest")
    for column in ("source", "read", "valid", "dead-lettered", "by reason", "reconciles"):
        table.add_column(column)
    for s in summaries:
        reasons = "\n".join(f"{k}={v}" for k, v in sorted(s.by_reason.items()))
        mark = "[green]yes[/]" if s.reconciles and not s.undelivered else "[red]NO[/]"
        table.add_row(s.source, str(s.read), str(s.valid), str(s.dead_lettered), reasons, mark)
    console.print(table)
