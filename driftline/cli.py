"""The ``driftline`` command line. Thin: parse, build config, call the library, print.

Exit codes are :class:`ExitCode`; messages for bad input go to stderr and name the
option or key that was wrong.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer

from driftline.errors import (
    BrokerError,
    ConfigError,
    DataLossError,
    DeliveryError,
    DriftlineError,
    JobError,
    QueryError,
    SchemaError,
)


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    CONFIG = 2
    DELIVERY_FAILED = 3
    BROKER_UNAVAILABLE = 4
    SCHEMA_INCOMPATIBLE = 5
    JOB_FAILED = 6
    DATA_LOSS = 7
    INTERRUPTED = 130  # the shell's convention for SIGINT


app = typer.Typer(
    name="driftline",
    help="Streaming data-quality and drift detection on Kafka + Spark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
broker_app = typer.Typer(help="Run the embedded Apache Kafka broker (KRaft, one node).", no_args_is_help=True)
schemas_app = typer.Typer(help="Work with the Avro schemas under schemas/.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and replay a source's dead letters.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(schemas_app, name="schemas")
app.add_typer(dlq_app, name="dlq")

PipelineOption = Annotated[
    Path, typer.Option("--pipeline", "-p", help="Pipeline definition (TOML).", exists=False)
]
BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        envvar="DRIFTLINE_BOOTSTRAP_SERVERS",
        help="Kafka bootstrap servers; overrides [kafka] bootstrap_servers.",
    ),
]
StateDirOption = Annotated[
    Path,
    typer.Option("--state-dir", envvar="DRIFTLINE_STATE_DIR", help="Where the broker keeps pid and log."),
]

_EXIT_FOR = {
    ConfigError: ExitCode.CONFIG,
    QueryError: ExitCode.CONFIG,
    SchemaError: ExitCode.CONFIG,
    BrokerError: ExitCode.BROKER_UNAVAILABLE,
    DeliveryError: ExitCode.DELIVERY_FAILED,
    DataLossError: ExitCode.DATA_LOSS,
    JobError: ExitCode.JOB_FAILED,
}


def _fail(exc: DriftlineError) -> typer.Exit:
    typer.echo(f"driftline: error: {exc}", err=True)
    return typer.Exit(
        next((code for kind, code in _EXIT_FOR.items() if isinstance(exc, kind)), ExitCode.FAILURE)
    )


def _load(pipeline: Path, bootstrap: str | None):
    from driftline.config import load_pipeline

    config = load_pipeline(pipeline)
    return config.with_kafka(bootstrap_servers=bootstrap) if bootstrap else config


@app.callback()
def _main(
    log_level: Annotated[str, typer.Option(help="Python log level (DEBUG, INFO, WARNING).")] = "WARNING",
) -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    # py4j logs a failed foreachBatch call with its whole traceback; the job reports it once, as a message
    logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)


@broker_app.command("start")
def broker_start(
    state_dir: StateDirOption = Path(".driftline/broker"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 9092,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer.")] = 30.0,
) -> None:
    """Start Apache Kafka (KRaft) on 127.0.0.1 and print its bootstrap address."""
    from driftline.kafka.broker import EmbeddedBroker

    try:
        state = EmbeddedBroker(state_dir, port=port).start(timeout=timeout)
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(state.bootstrap)
    typer.echo(f"pid {state.pid}, log {state.log_path}", err=True)


@broker_app.command("stop")
def broker_stop(
    state_dir: StateDirOption = Path(".driftline/broker"),
    force: Annotated[bool, typer.Option(help="SIGKILL at once instead of letting clients drain.")] = False,
) -> None:
    """Stop the broker started from this state directory (its topics stay in the state dir)."""
    from driftline.kafka.broker import EmbeddedBroker

    state = EmbeddedBroker(state_dir).stop(force=force)
    typer.echo(f"stopped broker at {state.bootstrap} (pid {state.pid})" if state else "no broker running")


@broker_app.command("status")
def broker_status(state_dir: StateDirOption = Path(".driftline/broker")) -> None:
    """Print the broker's address if it is running and answering; exit 4 otherwise."""
    from driftline.kafka.broker import EmbeddedBroker, answers_metadata

    state = EmbeddedBroker(state_dir).state()
    if state is None:
        typer.echo("not running", err=True)
        raise typer.Exit(ExitCode.BROKER_UNAVAILABLE)
    answering = answers_metadata(state.bootstrap)
    typer.echo(
        json.dumps(
            {
                "bootstrap": state.bootstrap,
                "pid": state.pid,
                "answering": answering,
                "log": state.log_path,
                "started_at": state.started_at,
            }
        )
    )
    if not answering:
        raise typer.Exit(ExitCode.BROKER_UNAVAILABLE)


@schemas_app.command("check")
def schemas_check(
    schemas_dir: Annotated[Path, typer.Option(help="Directory of <subject>/v<N>.avsc.")] = Path("schemas"),
    mode: Annotated[
        str, typer.Option(help="BACKWARD, FORWARD, FULL, their _TRANSITIVE forms, or NONE.")
    ] = "BACKWARD",
) -> None:
    """Check that each subject's versions are compatible; exit 5 naming the field if not."""
    from driftline.avro.compat import CompatibilityMode, check_subject
    from driftline.avro.registry import FileSchemaRegistry

    try:
        chosen = CompatibilityMode(mode.upper())
    except ValueError:
        valid = ", ".join(m.value for m in CompatibilityMode)
        raise _fail(ConfigError(f"--mode: {mode!r} is not a compatibility mode; valid: {valid}")) from None
    try:
        registry = FileSchemaRegistry(schemas_dir)
    except SchemaError as exc:
        raise _fail(exc) from None
    broken = 0
    for subject in registry.subjects():
        problems = check_subject(registry, subject, chosen)
        versions = ", ".join(f"v{v}" for v in registry.versions(subject))
        if problems:
            broken += 1
            for problem in problems:
                typer.echo(f"INCOMPATIBLE {problem}")
        else:
            typer.echo(f"ok {subject} ({versions}) {chosen.value}")
    if broken:
        raise typer.Exit(ExitCode.SCHEMA_INCOMPATIBLE)


@app.command()
def ingest(
    pipeline: PipelineOption,
    source: Annotated[str, typer.Option("--source", "-s", help="Source name in the pipeline.")],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="JSON Lines, CSV or Parquet file.")],
    input_format: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet.")] = None,
    from_start: Annotated[
        bool,
        typer.Option(
            "--from-start",
            help="Ingest the whole file again, even the records an earlier run committed "
            "(they are produced a second time).",
        ),
    ] = False,
    bootstrap: BootstrapOption = None,
) -> None:
    """Validate FILE against the source's schema and produce it exactly once; print a JSON summary.

    A re-run of the same file continues after the records already committed.
    """
    from driftline.ingest.readers import detect_format, input_size
    from driftline.ingest.run import ingest_file

    try:
        config = _load(pipeline, bootstrap)
        config.source(source)
        fmt = detect_format(input_path, input_format)
        if not input_path.is_file():
            raise ConfigError(f"--input: {input_path} does not exist or is not a file")
        threshold = 20_000 if fmt.value == "parquet" else 2_000_000  # rows / bytes
        with _progress(f"ingest {source}", input_size(input_path, fmt), threshold) as advance:
            summary = ingest_file(
                config, source, input_path, input_format=fmt.value, progress=advance, from_start=from_start
            )
    except DriftlineError as exc:
        raise _fail(exc) from None
    typer.echo(summary.to_json())
    if summary.error == "interrupted":
        typer.echo(f"driftline: interrupted; {_resume_hint(summary)}", err=True)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if summary.error is not None and not summary.error.startswith("Kafka: "):  # not the broker's doing
        raise _fail(
            DriftlineError(
                f"ingest stopped: {summary.error}; {summary.undelivered} record(s) of the open transaction "
                f"were not committed; {_resume_hint(summary)}"
            )
        )
    if summary.error is not None or summary.undelivered:
        raise _fail(
            DeliveryError(
                f"{summary.undelivered} record(s) were not committed to {config.kafka.bootstrap_servers}"
                + (f" ({summary.error})" if summary.error else "")
                + "".join(f"; {e}" for e in summary.delivery_errors)
                + f"; {_resume_hint(summary)}"
            )
        )


def _resume_hint(summary) -> str:
    done = summary.skipped + summary.delivered
    return (
        f"the first {done} records of the file are in Kafka; "
        "run the same command again to continue after them (nothing is produced twice)"
    )


class _progress:
    """A rich progress bar on a terminal for long inputs; nothing when piped or short."""

    def __init__(self, label: str, total: int, threshold: int) -> None:
        self.label, self.total, self.threshold, self._bar = label, total, threshold, None

    def __enter__(self):
        if not (sys.stderr.isatty() and self.total >= self.threshold):
            return None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda position: self._bar.update(task, completed=position)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


@app.command()
def generate(
    pipeline: PipelineOption,
    source: Annotated[str, typer.Option("--source", "-s", help="Source name in the pipeline.")],
    records: Annotated[int, typer.Option("--records", "-n", min=1, help="How many records.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .jsonl, .csv or .parquet.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same records.")] = 0,
    corrupt_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of corrupt records.")] = 0.0,
    corrupt_kind: Annotated[
        list[str] | None, typer.Option(help="Corruption kinds (repeatable); default: all a file can hold.")
    ] = None,
    drift: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND:FEATURE:START[:MAGNITUDE[:CATEGORY]], e.g. mean_shift:amount:5000:1.5 (repeatable)."
        ),
    ] = None,
    late_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of late records.")] = 0.0,
) -> None:
    """Write seeded demo records for SOURCE, with optional drift and corruption."""
    from driftline.demo import FILE_CORRUPTIONS, Corruption, generator_for, write_records

    try:
        config = _load(pipeline, None)
        kinds = (
            tuple(corrupt_kind)
            if corrupt_kind
            else (("missing_field",) if out.suffix.lower() in (".parquet", ".pq") else FILE_CORRUPTIONS)
        )
        try:
            corruption = Corruption(corrupt_rate, kinds) if corrupt_rate else None
            drifts = tuple(_parse_drift(text) for text in drift or [])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        generator, names = generator_for(
            config, source, seed=seed, corruption=corruption, drifts=drifts, late_rate=late_rate
        )
        written = write_records(out, generator.records(records), names)
    except (DriftlineError, KeyError) as exc:
        raise _fail(exc if isinstance(exc, DriftlineError) else ConfigError(exc.args[0])) from None
    typer.echo(json.dumps({"source": source, "records": records, "out": str(written)}))


def _parse_drift(text: str):
    from driftline.demo import Drift

    parts = text.split(":")
    if not 3 <= len(parts) <= 5:
        raise ValueError(f"--drift {text!r}: expected KIND:FEATURE:START[:MAGNITUDE[:CATEGORY]]")
    try:
        start = int(parts[2])
        magnitude = float(parts[3]) if len(parts) > 3 else 1.0
    except ValueError:
        raise ValueError(f"--drift {text!r}: START must be an integer and MAGNITUDE a number") from None
    return Drift(parts[0], parts[1], start, magnitude, parts[4] if len(parts) > 4 else None)


def _moment(text: str | None, option: str):
    """An ISO-8601 time; naive times are UTC."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not an ISO-8601 time (e.g. 2026-01-05T08:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def baseline(
    pipeline: PipelineOption,
    source: Annotated[str, typer.Option("--source", "-s", help="Source name in the pipeline.")],
    input_path: Annotated[
        Path | None, typer.Option("--input", "-i", help="Reference data: JSON Lines, CSV or Parquet.")
    ] = None,
    from_topic: Annotated[
        bool, typer.Option("--from-topic", help="Build it from the source's topic.")
    ] = False,
    start_time: Annotated[str | None, typer.Option(help="--from-topic: first event time (ISO-8601).")] = None,
    end_time: Annotated[str | None, typer.Option(help="--from-topic: event times before this.")] = None,
    start_offset: Annotated[int | None, typer.Option(min=0, help="--from-topic: first offset.")] = None,
    end_offset: Annotated[int | None, typer.Option(min=0, help="--from-topic: offsets before this.")] = None,
    input_format: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet.")] = None,
    version: Annotated[str | None, typer.Option(help="Version label; default: the UTC time.")] = None,
    bootstrap: BootstrapOption = None,
) -> None:
    """Write a versioned reference profile for a source; print a JSON summary."""
    from driftline.config.pipeline import VERSION_PATTERN
    from driftline.reference import baseline_from_file, baseline_from_topic

    try:
        if (input_path is None) == (not from_topic):
            raise ConfigError("give exactly one of --input FILE or --from-topic")
        if input_path is not None and any(
            v is not None for v in (start_time, end_time, start_offset, end_offset)
        ):
            raise ConfigError(
                "--start-time/--end-time/--start-offset/--end-offset only apply with --from-topic"
            )
        if version is not None and not re.fullmatch(VERSION_PATTERN, version):
            raise ConfigError(
                f"--version: {version!r} must start with a letter or digit and hold only letters, digits, "
                f"'.', '_' or '-' (it becomes a file name)"
            )
        config = _load(pipeline, bootstrap)
        config.source(source)
        if input_path is not None:
            summary = baseline_from_file(
                config, source, input_path, input_format=input_format, version=version
            )
        else:
            summary = baseline_from_topic(
                config, source, start_time=_moment(start_time, "--start-time"),
                end_time=_moment(end_time, "--end-time"), start_offset=start_offset,
                end_offset=end_offset, version=version,
            )  # fmt: skip
    except DriftlineError as exc:
        raise _fail(exc) from None
    typer.echo(summary.to_json())


@app.command()
def run(
    pipeline: PipelineOption,
    until_idle: Annotated[bool, typer.Option(help="Process everything available, then exit.")] = False,
    source: Annotated[
        list[str] | None,
        typer.Option(help="Only these sources (repeatable); a shared query's other sources come along."),
    ] = None,
    max_records_per_batch: Annotated[
        int | None, typer.Option(min=1, help="Cap on records per micro-batch and streaming query.")
    ] = None,
    bootstrap: BootstrapOption = None,
) -> None:
    """Run the quality stream job on local Spark; print a one-line JSON summary on exit."""
    try:
        config = _load(pipeline, bootstrap)
        for name in source or []:
            config.source(name)
        from driftline.reference import load_reference

        for name in source or config.sources:
            load_reference(config, name)  # a broken or mismatched profile stops here, before Spark starts
        from driftline.spark.job import run as run_job
        from driftline.spark.session import build_session

        spark = build_session(f"driftline-{config.name}")
        try:
            summary = run_job(
                spark,
                config,
                until_idle=until_idle,
                sources=source,
                max_records_per_batch=max_records_per_batch,
            )
        finally:
            spark.stop()
    except DriftlineError as exc:
        raise _fail(exc) from None
    typer.echo(summary.to_json())
    if not all(s.reconciles for s in summary.sources.values()):
        raise typer.Exit(ExitCode.FAILURE)


SourceOption = Annotated[str, typer.Option("--source", "-s", help="The pipeline's source.")]
ReasonOption = Annotated[
    list[str] | None,
    typer.Option("--reason", help="Only this reason code (repeatable), e.g. UNKNOWN_SCHEMA."),
]
StageOption = Annotated[
    list[str] | None,
    typer.Option("--stage", help="Only this stage (repeatable): ingest, decode, rule, late."),
]
SinceOption = Annotated[str | None, typer.Option(help="Dead-lettered at or after this ISO-8601 time.")]
UntilOption = Annotated[str | None, typer.Option(help="Dead-lettered at or before this ISO-8601 time.")]
OffsetsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--offsets", help="Dead-letter topic offsets PARTITION:FIRST-LAST or PARTITION:OFFSET (repeatable)."
    ),
]


def _dlq_choice(pipeline, bootstrap, source, reason, stage, since, until, offsets):
    """The pipeline (its ``source`` checked) and the dead letters the options choose."""
    from driftline.dlq.selection import Selection

    config = _load(pipeline, bootstrap)
    config.source(source)
    selection = Selection.parse(reasons=reason or (), stages=stage or (), since=since, until=until,
                                offsets=offsets or ())  # fmt: skip
    return config, selection


@dlq_app.command("inspect")
def dlq_inspect(
    pipeline: PipelineOption,
    source: SourceOption,
    reason: ReasonOption = None,
    stage: StageOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    offsets: OffsetsOption = None,
    listing: Annotated[
        bool, typer.Option("--list", help="One line per dead letter (at most --limit).")
    ] = False,
    show: Annotated[
        str | None, typer.Option(help="One dead letter, PARTITION:OFFSET: its headers and original bytes.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Lines --list prints.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
    bootstrap: BootstrapOption = None,
) -> None:
    """Dead letters of a source by reason and stage (with how many were replayed), a list, or one record."""
    from driftline.dlq import show as render
    from driftline.dlq.replay import read_ledger, read_letters

    try:
        config, selection = _dlq_choice(pipeline, bootstrap, source, reason, stage, since, until, offsets)
        letters = [s for s in read_letters(config, source) if selection.matches(s)]
        replayed, replays = read_ledger(config, source)
        if show is not None:
            typer.echo(render.one(letters, show, replayed, as_json=as_json))
        elif listing:
            typer.echo(render.listing(letters, replayed, limit, as_json=as_json))
        else:
            topic = config.dead_letter_topic(source)
            typer.echo(render.overview(topic, selection, letters, replayed, replays, as_json=as_json))
    except DriftlineError as exc:
        raise _fail(exc) from None


@dlq_app.command("replay")
def dlq_replay(
    pipeline: PipelineOption,
    source: SourceOption,
    reason: ReasonOption = None,
    stage: StageOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    offsets: OffsetsOption = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and count; send nothing.")] = False,
    replay_id: Annotated[
        str | None, typer.Option("--id", help="Name of this replay (default: its start time).")
    ] = None,
    transaction_records: Annotated[int, typer.Option(min=1, help="Records per Kafka transaction.")] = 500,
    bootstrap: BootstrapOption = None,
) -> None:
    """Send chosen dead letters back to the source topic after a fix, each at most once (JSON summary)."""
    from driftline.dlq.replay import replay
    from driftline.ingest.run import open_pipeline_registry

    try:
        config, selection = _dlq_choice(pipeline, bootstrap, source, reason, stage, since, until, offsets)
        summary = replay(config, source, selection, registry=open_pipeline_registry(config),
                         replay_id=replay_id, dry_run=dry_run,
                         transaction_records=transaction_records)  # fmt: skip
    except DriftlineError as exc:
        raise _fail(exc) from None
    typer.echo(summary.to_json())
    if summary.error:
        typer.echo(f"driftline: error: {summary.error}; run the same command again to go on "
                   "(nothing is sent twice)", err=True)  # fmt: skip
        raise typer.Exit(ExitCode.DELIVERY_FAILED)


@app.command()
def report(
    pipeline: PipelineOption,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file (default <state_dir>/reports/<pipeline>.html)."),
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these sources (repeatable).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Windows starting at or after this ISO-8601 time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Windows starting before this ISO-8601 time.")] = None,
) -> None:
    """Write the drift report: one self-contained HTML file (charts drawn in the page, no network)."""
    from driftline.dlq.selection import parse_time
    from driftline.report import write_report

    try:
        config = _load(pipeline, None)
        written = write_report(config, output, sources=source, since=parse_time(since, "--since"),
                               until=parse_time(until, "--until"))  # fmt: skip
    except DriftlineError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"report written to {written.path} ({written.charts} charts, sources: {', '.join(written.sources)})"
    )


@app.command()
def sql(
    pipeline: PipelineOption,
    query: Annotated[
        str | None,
        typer.Argument(help="The query; without it, statements (ending in ';') are read from stdin."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or parquet.")] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result to this file.")
    ] = None,
) -> None:
    """Query the quality tables with Spark SQL: feature_stats, drift_scores, alerts, dead_letters."""
    from driftline.sql import Format

    try:
        if fmt not in {f.value for f in Format}:
            raise ConfigError(f"--format: expected one of {', '.join(f.value for f in Format)}; got {fmt!r}")
        chosen = Format(fmt)
        if chosen is Format.PARQUET and output is None:
            raise ConfigError("--format parquet writes a file: give it with --output PATH")
        config = _load(pipeline, None)
        from driftline.spark.session import build_session
        from driftline.spark.sql import SqlSession

        spark = build_session(f"driftline-sql-{config.name}")
        try:
            session = SqlSession(spark, config.location(config.warehouse_dir))
            if query is not None:
                session.answer(query, chosen, output)
            else:
                session.repl(sys.stdin, chosen, output, interactive=sys.stdin.isatty())
        finally:
            spark.stop()
    except DriftlineError as exc:
        raise _fail(exc) from None


@app.command()
def demo(
    records: Annotated[int, typer.Option("--records", "-n", min=100, help="Records per source.")] = 20_000,
    pipeline: PipelineOption = Path("pipelines/demo.toml"),
    output_dir: Annotated[Path, typer.Option(help="Where inputs and the summary go.")] = Path("demo-output"),
    keep_broker: Annotated[bool, typer.Option(help="Leave the broker running afterwards.")] = False,
) -> None:
    """Run the whole pipeline on the embedded defaults and show what it found."""
    from driftline.demo.run import run_demo

    try:
        ok = run_demo(pipeline, records=records, output_dir=output_dir, keep_broker=keep_broker)
    except DriftlineError as exc:
        raise _fail(exc) from None
    if not ok:
        raise typer.Exit(ExitCode.FAILURE)


def main() -> None:
    """The console script: any error the commands did not turn into a message becomes one."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        typer.echo("driftline: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a user sees a message and an exit code, not a traceback
        logging.getLogger("driftline").debug("unexpected error", exc_info=True)
        typer.echo(
            f"driftline: internal error: {type(exc).__name__}: {exc} "
            "(run with --log-level DEBUG for the traceback, and please report it)",
            err=True,
        )
        sys.exit(ExitCode.FAILURE)


if __name__ == "__main__":
    main()
