"""The pipeline definition's typed model. One TOML file, one :class:`PipelineConfig`.

Sections (all documented in ``pipelines/README.md``):

``[pipeline]``   name and description
``[kafka]``      bootstrap servers, optional Schema Registry URL, topic prefix,
                 librdkafka settings passed through to every client
``[sources.<name>]`` one per Kafka source: schema subject and version, topics,
                 event-time and entity-id fields, features with their kind
``[windows]``    event-time window size, slide, watermark, trigger interval
``[reference]``  where the reference profile lives
``[drift]``      drift methods and the alert policy's thresholds
``[tables]``     retention of the quality tables
``[metrics]``    the Prometheus exporter on the job's driver
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from driftline.config.durations import Duration, parse_duration, require_positive, require_whole_seconds

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
# reference profile versions become file names: no separators, no leading dot ("..")
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
SECRET_KEYS = ("password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "user.info")

# a span of time: more than zero (a window's size, an interval, a retention)
DurationField = Annotated[Duration, BeforeValidator(parse_duration), AfterValidator(require_positive)]
# zero allowed, and meaningful: no lateness allowed, batches back to back, no lingering
ZeroOrMoreDuration = Annotated[Duration, BeforeValidator(parse_duration)]
# what the job counts in whole seconds (window bounds, the watermark, event-time checks, retention)
SecondsField = Annotated[DurationField, AfterValidator(require_whole_seconds)]
ZeroOrMoreSeconds = Annotated[ZeroOrMoreDuration, AfterValidator(require_whole_seconds)]
FeatureKind = Literal["numeric", "categorical"]
DriftMethod = Literal["psi", "ks", "chi2", "js", "null_rate"]
LibrdkafkaValue = str | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineSection(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Pipeline name, used in topics and tables.")
    description: str = ""


def _librdkafka(settings: dict[str, Any]) -> dict[str, Any]:
    """Secret-looking settings become SecretStr so they never print in reprs or logs."""
    return {
        key: SecretStr(str(value)) if any(s in key for s in SECRET_KEYS) else value
        for key, value in settings.items()
    }


class KafkaConfig(_Model):
    bootstrap_servers: str = "127.0.0.1:9092"
    schema_registry_url: str | None = None
    topic_prefix: str = ""
    replication_factor: int = Field(default=1, ge=1)
    client: dict[str, LibrdkafkaValue | SecretStr] = Field(default_factory=dict)
    producer: dict[str, LibrdkafkaValue | SecretStr] = Field(default_factory=dict)
    consumer: dict[str, LibrdkafkaValue | SecretStr] = Field(default_factory=dict)
    schema_registry: dict[str, LibrdkafkaValue | SecretStr] = Field(default_factory=dict)
    starting_offsets: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new query starts reading (a restarted one resumes)."
    )
    max_offsets_per_trigger: int = Field(
        default=200_000, ge=1, description="At most this many records per micro-batch, across partitions."
    )
    reject_trailing_bytes: bool = Field(
        default=True,
        description="A frame with bytes after its Avro record is DECODE_FAILED (two records glued, or a "
        "writer schema that reads a prefix); false skips the check, which costs a re-encode per record.",
    )
    fail_on_data_loss: bool = Field(
        default=True,
        description="Stop the job when records it has not read are gone (retention, delete_records, "
        "a recreated topic); false counts them as lost and goes on.",
    )

    @field_validator("client", "producer", "consumer", "schema_registry")
    @classmethod
    def _hide_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _librdkafka(value)

    @model_validator(mode="after")
    def _librdkafka_accepts(self) -> KafkaConfig:
        """Each client's settings, checked by librdkafka itself when the pipeline loads,
        so a typo stops with the table and the key, not a traceback from the first client."""
        from driftline.kafka.clients import librdkafka_problem

        for role in ("producer", "consumer"):
            settings = self.librdkafka(role)
            problem = librdkafka_problem(role, settings) if settings else None  # nothing set: no client built
            if problem is None:
                continue
            named = re.search(r'property:? "([^"]+)"', problem)
            key = named[1] if named else None
            tables = [t for t, v in (("kafka.client", self.client), (f"kafka.{role}", getattr(self, role)))
                      if key in v] or ["kafka.client", f"kafka.{role}"]  # fmt: skip
            raise ValueError(
                f"[{'] or ['.join(tables)}]: librdkafka refuses these settings: {problem}; valid properties: "
                f"https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md"
            )
        return self

    def librdkafka(self, role: Literal["producer", "consumer", "admin"]) -> dict[str, Any]:
        """The pass-through settings for one client role, secrets revealed."""
        layers = [self.client] + ([getattr(self, role)] if role != "admin" else [])
        return _reveal(*layers)

    def java_consumer(self) -> dict[str, str]:
        """``[kafka.client]`` + ``[kafka.consumer]`` in the Java client's names, for Spark's
        Kafka connector (secrets revealed: never log the result)."""
        from driftline.kafka.java_client import java_consumer_settings

        return java_consumer_settings(self.librdkafka("consumer"), table="[kafka.client]/[kafka.consumer]")

    def schema_registry_client(self) -> dict[str, Any]:
        """``SchemaRegistryClient`` settings (e.g. ``basic.auth.user.info``), secrets revealed."""
        return _reveal(self.schema_registry)


def _reveal(*layers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return merged


class FeatureConfig(_Model):
    kind: FeatureKind
    description: str = ""


class SourceConfig(_Model):
    subject: str
    schema_version: int | Literal["latest"] = "latest"
    topic: str | None = None
    dead_letter_topic: str | None = None
    partitions: int = Field(default=4, ge=1, le=1024)
    query: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="The streaming query that reads the source; default: its own, named after it. "
        "Sources with the same reader schema (subject and schema_version) may name one query: their "
        "topics are read and decoded once per micro-batch, under one checkpoint.",
    )
    event_time: str
    entity_id: str | None = None
    features: dict[str, FeatureConfig] = Field(min_length=1)
    expectations: str | None = Field(
        default=None,
        description="Great Expectations 1.x suite (JSON) with the source's row rules; "
        "relative to the pipeline file. Rows violating a row-level expectation are dead-lettered.",
    )

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(name for name, feature in self.features.items() if feature.kind == "numeric")

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(name for name, feature in self.features.items() if feature.kind == "categorical")


class WindowConfig(_Model):
    size: SecondsField = parse_duration("5 minutes")
    slide: SecondsField | None = None
    watermark: ZeroOrMoreSeconds = parse_duration("10 minutes")
    trigger: ZeroOrMoreDuration = parse_duration("10 seconds")
    max_future: SecondsField = Field(
        default=parse_duration("1 hour"),
        description="How far ahead of its Kafka timestamp a record's event time may be; further ahead "
        "(a 9999-12-31 sentinel, a clock years off) it is dead-lettered as EVENT_TIME_OUT_OF_RANGE and "
        "never moves the watermark.",
    )

    @model_validator(mode="after")
    def _slide_fits(self) -> WindowConfig:
        if self.slide is not None and self.slide > self.size:
            raise ValueError(f"slide ({self.slide}) must not be longer than size ({self.size})")
        return self


class ReferenceConfig(_Model):
    """Where reference profiles live (``<path>/<source>/<version>.json``) and how they are fitted."""

    path: str = "references"
    version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="Pin a version; default: the newest."
    )
    grid: int = Field(default=10_000, ge=10, le=100_000, description="Fine quantile bins (KS, quantiles).")
    bins: int = Field(default=10, ge=2, le=1000, description="Coarse bins for PSI and JS.")
    max_categories: int = Field(default=1000, ge=1, description="Vocabulary size kept per categorical.")

    @model_validator(mode="after")
    def _bins_nest(self) -> ReferenceConfig:
        if self.grid % self.bins:
            raise ValueError(f"grid ({self.grid}) must be a multiple of bins ({self.bins}) so PSI bins "
                             f"are unions of grid bins")  # fmt: skip
        return self


class DriftConfig(_Model):
    methods: list[DriftMethod] = Field(
        default_factory=lambda: ["psi", "ks", "chi2", "null_rate"], min_length=1
    )
    psi_threshold: float = Field(default=0.2, gt=0)
    null_rate_floor: float = Field(
        default=0.2, gt=0, description="Cohen's h of the share of nulls that counts as drift (0.2: small)."
    )
    p_value: float = Field(default=0.01, gt=0, lt=1)
    fdr: Literal["bh", "none"] = "bh"
    min_rows: int = Field(default=200, ge=1)
    effect_floor: float = Field(default=0.1, ge=0)
    persistence_k: int = Field(default=2, ge=1)
    persistence_n: int = Field(default=3, ge=1)
    resolve_after: int = Field(default=3, ge=1)
    resolve_ratio: float = Field(default=0.8, gt=0, le=1)
    early_alerts: bool = Field(
        default=False,
        description="Let an alert one drifted window short of persistence_k fire on a window still open, "
        "once its rows so far (at least min_rows) score drifted; open windows whose end the stream has "
        "passed count as they score. Sooner by up to a window plus the watermark; judged again at close.",
    )  # fmt: skip
    breaker_open_rate: float = Field(
        default=0.2, gt=0, le=1,
        description="A window whose records were dead-lettered at this rate or more opens the source's "
        "circuit breaker: its drift verdicts are 'degraded', not 'drifted'.",
    )  # fmt: skip
    breaker_close_rate: float = Field(
        default=0.1, gt=0, le=1, description="Below this rate a window is calm."
    )
    breaker_close_after: int = Field(default=2, ge=1, description="Calm windows in a row that close it.")
    alerts_topic: str = "alerts.drift"

    @model_validator(mode="after")
    def _k_of_n(self) -> DriftConfig:
        if self.persistence_k > self.persistence_n:
            raise ValueError(
                f"persistence_k ({self.persistence_k}) must be <= persistence_n ({self.persistence_n})"
            )
        if self.breaker_close_rate > self.breaker_open_rate:
            raise ValueError(f"breaker_close_rate ({self.breaker_close_rate}) must be <= breaker_open_rate "
                             f"({self.breaker_open_rate}), or the breaker could never stay open")  # fmt: skip
        return self


class TablesConfig(_Model):
    """Retention of the quality tables under ``warehouse_dir``."""

    dead_letters_retention: SecondsField = Field(
        default=parse_duration("30 days"),
        description="How long the dead_letters table keeps a batch's rows (the dead-letter topic keeps "
        "them for its own Kafka retention.ms).",
    )
    retention: SecondsField = Field(
        default=parse_duration("90 days"),
        description="How long feature_stats, drift_scores, alerts, quality_results and schema_events keep "
        "a batch's or a window's rows, counted from the job's last write to them.",
    )


class MetricsConfig(_Model):
    """The job driver's Prometheus exporter (``GET http://<address>:<port>/metrics``)."""

    enabled: bool = True
    address: str = Field(default="127.0.0.1", description="Bind address; 0.0.0.0 to be scraped remotely.")
    port: int = Field(default=9464, ge=0, le=65535, description="0 picks a free port.")
    lag_interval: DurationField = Field(
        default=parse_duration("15 seconds"), description="How often consumer lag is measured."
    )
    linger_on_failure: ZeroOrMoreDuration = Field(
        default=parse_duration("30 seconds"),
        description="After a query fails, keep serving this long so Prometheus scrapes the failure.",
    )
    feature_series: Literal["all", "alerting"] = Field(
        default="all",
        description="Per-feature drift series: 'all' features, or only 'alerting' ones (a drifted newest "
        "window or an active alert, then feature_series_linger longer), which bounds the series count.",
    )
    feature_series_linger: ZeroOrMoreDuration = Field(
        default=parse_duration("1 hour"),
        description="With feature_series = 'alerting': how long (event time) a feature's drift series stay "
        "after its last drifted window or active alert.",
    )


class ReportConfig(_Model):
    """The HTML drift report (``driftline report``) and where alerts link to it."""

    url: str | None = Field(
        default=None,
        description="Where the published report is, for the alerts' descriptions: a URL template with "
        "{pipeline} and {source}, e.g. https://dq.example.com/reports/{pipeline}.html#source-{source}.",
    )

    @field_validator("url")
    @classmethod
    def _placeholders(cls, url: str | None) -> str | None:
        if url is None:
            return None
        names = set(re.findall(r"{([^{}]*)}", url))
        unknown = sorted(names - {"pipeline", "source"})
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} in "
                             f"{url!r}; valid placeholders: {{pipeline}}, {{source}}")  # fmt: skip
        if not re.match(r"^(https?|file)://", url):
            raise ValueError(f"expected an http://, https:// or file:// URL, got {url!r}")
        return url

    def link(self, pipeline: str, source: str) -> str | None:
        if self.url is None:
            return None
        return self.url.replace("{pipeline}", pipeline).replace("{source}", source)


class PipelineConfig(_Model):
    """A whole pipeline definition. Relative paths resolve against ``base_dir``."""

    pipeline: PipelineSection
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    schemas_dir: str = "schemas"
    state_dir: str = ".driftline"
    warehouse_dir: str = "warehouse"
    sources: dict[str, SourceConfig] = Field(min_length=1)
    windows: WindowConfig = Field(default_factory=WindowConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        """Source names become topic names, table partitions and folders: no separators."""
        bad = [name for name in sources if not re.fullmatch(NAME_PATTERN, name)]
        if bad:
            raise ValueError(
                f"source name(s) {', '.join(repr(b) for b in bad)}: a source name starts with a letter and "
                f"holds only letters, digits, '_' and '-' (it becomes topic, table and folder names)"
            )
        return sources

    @model_validator(mode="after")
    def _queries_share_a_reader(self) -> PipelineConfig:
        """Sources named into one query are decoded once, so they share a reader schema;
        a query named after a source is that source's own query."""
        for query, members in self.queries.items():
            if query in self.sources and query not in members:
                raise ValueError(
                    f"sources.{members[0]}.query: {query!r} is also the name of source {query!r}, which "
                    f"is not in that query (its query is {self.query_of(query)!r}); name the shared query "
                    f"otherwise, or put source {query!r} in it too"
                )
            readers = {(self.sources[m].subject, self.sources[m].schema_version) for m in members}
            if len(readers) > 1:
                listed = ", ".join(f"{m} ({self.sources[m].subject} version {self.sources[m].schema_version})"
                                   for m in members)  # fmt: skip
                raise ValueError(
                    f"sources.<name>.query: the sources of query {query!r} must share one reader schema "
                    f"(subject and schema_version; one decode serves them all), but they are: {listed}. "
                    "Give the others a query of their own"
                )
        return self

    @property
    def queries(self) -> dict[str, list[str]]:
        """Streaming query name -> its sources, in the order the pipeline lists them."""
        out: dict[str, list[str]] = {}
        for name, spec in self.sources.items():
            out.setdefault(spec.query or name, []).append(name)
        return out

    def query_of(self, source: str) -> str:
        """The name of the streaming query that reads ``source``."""
        return self.source(source).query or source

    @property
    def name(self) -> str:
        return self.pipeline.name

    def path(self, relative: str) -> Path:
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()

    def location(self, value: str) -> str:
        """A folder the job reads and writes through Hadoop's FileSystem: a URI
        (``hdfs://nn/dq``, ``s3a://bucket/dq``, ``file:///srv/dq``) as it is, a plain path
        resolved like :meth:`path` (relative to the pipeline file)."""
        if URI_SCHEME.match(value):
            return value.rstrip("/")
        return str(self.path(value))

    def source(self, name: str) -> SourceConfig:
        if name not in self.sources:
            from driftline.errors import ConfigError

            raise ConfigError(
                f"pipeline {self.name!r} has no source {name!r}; "
                f"valid sources: {', '.join(sorted(self.sources))}"
            )
        return self.sources[name]

    def with_kafka(self, **changes: Any) -> PipelineConfig:
        """A copy with ``[kafka]`` settings replaced, e.g. ``with_kafka(bootstrap_servers=...)``."""
        return self.model_copy(update={"kafka": self.kafka.model_copy(update=changes)})

    def topic(self, source: str) -> str:
        return self.kafka.topic_prefix + (self.source(source).topic or f"signals.{source}")

    def dead_letter_topic(self, source: str) -> str:
        return self.kafka.topic_prefix + (self.source(source).dead_letter_topic or f"dlq.{source}")
