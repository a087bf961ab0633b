"""Pipeline definitions: the demo loads; every mistake names its key and the valid options."""

import copy
import tomllib

import pytest

from driftline.config import load_pipeline, parse_duration, pipeline_from_dict
from driftline.errors import ConfigError
from tests.conftest import DEMO_PIPELINE

DEMO = tomllib.loads(DEMO_PIPELINE.read_text())


def load(mutate) -> str:
    data = copy.deepcopy(DEMO)
    mutate(data)
    with pytest.raises(ConfigError) as caught:
        pipeline_from_dict(data, base_dir=DEMO_PIPELINE.parent, origin="demo.toml")
    return str(caught.value)


def test_demo_pipeline_loads_with_topics_windows_and_thresholds() -> None:
    config = load_pipeline(DEMO_PIPELINE)
    assert config.name == "demo"
    assert sorted(config.sources) == ["clickstream", "payments", "sensors"]
    assert config.topic("payments") == "signals.payments"
    assert config.dead_letter_topic("sensors") == "dlq.sensors"
    assert config.sources["payments"].features["amount"].kind == "numeric"
    assert config.windows.size.seconds == 300 and config.windows.watermark.spark == "600 seconds"
    assert (config.drift.persistence_k, config.drift.persistence_n) == (2, 3)
    assert config.path(config.schemas_dir) == DEMO_PIPELINE.parent.parent / "schemas"


def test_topic_prefix_applies_to_every_topic() -> None:
    data = copy.deepcopy(DEMO)
    data["kafka"]["topic_prefix"] = "staging."
    config = pipeline_from_dict(data, base_dir=DEMO_PIPELINE.parent)
    assert config.topic("clickstream") == "staging.signals.clickstream"
    assert config.dead_letter_topic("clickstream") == "staging.dlq.clickstream"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["sources"]["payments"]["features"]["amount"].update(kind="numerc"),
         "sources.payments.features.amount.kind: Input should be 'numeric' or 'categorical'; got 'numerc'"),
        (lambda d: d.update(widnows={}),
         "widnows: unknown key; valid keys here: drift, kafka, metrics, pipeline, reference, report, schemas_dir, sources, state_dir, tables, warehouse_dir, windows"),
        (lambda d: d["windows"].update(sizee="1 minute"),
         "windows.sizee: unknown key; valid keys here: max_future, size, slide, trigger, watermark"),
        (lambda d: d["sources"]["sensors"].update(colour="red"),
         "sources.sensors.colour: unknown key; valid keys here: dead_letter_topic, entity_id, event_time, expectations, features, partitions, query, schema_version, subject, topic"),
        (lambda d: d["windows"].update(size="soon"),
         "windows.size: Value error, 'soon' is not a duration; write a number and a unit"),
        (lambda d: d["windows"].update(size="0 seconds"),
         "windows.size: Value error, must be more than zero: this setting is a span of time; got '0 seconds'"),
        (lambda d: d["windows"].update(watermark="-5 minutes"),
         "windows.watermark: Value error, '-5 minutes' is negative; a duration is zero or more: write a number"),
        (lambda d: d.update(tables={"dead_letters_retention": 0}),
         "tables.dead_letters_retention: Value error, must be more than zero"),
        (lambda d: d["kafka"]["producer"].update({"compresion.type": "zstd"}),
         '[kafka.producer]: librdkafka refuses these settings: No such configuration property: "compresion.type"'),
        (lambda d: d["kafka"].update(client={"socket.timeout.ms": "soon"}),
         '[kafka.client]: librdkafka refuses these settings: Invalid value for configuration property '
         '"socket.timeout.ms"'),
        (lambda d: d["kafka"].update(consumer={"auto.offset.rest": "earliest"}),
         '[kafka.consumer]: librdkafka refuses these settings: No such configuration property: "auto.offset.rest"'),
        (lambda d: d["windows"].update(slide="1500 ms"),
         "windows.slide: Value error, must be a whole number of seconds"),
        (lambda d: d["windows"].update(size=10**400), "is not a duration; write a number and a unit"),
        (lambda d: d["windows"].update(size=float("inf")),
         "windows.size: Value error, inf is not a duration"),
        (lambda d: d["sources"].update({"../../etc": d["sources"]["payments"]}),
         "sources: Value error, source name(s) '../../etc': a source name starts with a letter and holds only "
         "letters, digits, '_' and '-'"),
        (lambda d: d["reference"].update(version="../other/r1"),
         "reference.version: String should match pattern"),
        (lambda d: d["drift"].update(persistence_k=5),
         "persistence_k (5) must be <= persistence_n (3)"),
        (lambda d: d["drift"].update(methods=["psi", "wasserstein"]),
         "drift.methods.1: Input should be 'psi', 'ks', 'chi2', 'js' or 'null_rate'; got 'wasserstein'"),
        (lambda d: d["sources"]["payments"].pop("event_time"),
         "sources.payments.event_time: required key is missing"),
        (lambda d: d["metrics"].update(port=70000),
         "metrics.port: Input should be less than or equal to 65535; got 70000"),
        (lambda d: d["pipeline"].update(name="demo pipeline!"),
         "pipeline.name: String should match pattern"),
        (lambda d: d["metrics"].update(feature_series="some"),
         "metrics.feature_series: Input should be 'all' or 'alerting'; got 'some'"),
        (lambda d: d.update(report={"url": "https://dq.example.com/{pipline}.html"}),
         "report.url: Value error, unknown placeholder(s) {pipline} in 'https://dq.example.com/{pipline}.html'; "
         "valid placeholders: {pipeline}, {source}"),
        (lambda d: d.update(report={"url": "dq.example.com/{pipeline}.html"}),
         "report.url: Value error, expected an http://, https:// or file:// URL"),
    ],
)  # fmt: skip
def test_structural_errors_name_the_key_and_the_options(mutate, expected) -> None:
    assert expected in load(mutate)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["sources"]["payments"].update(subject="paymnts"),
         "sources.payments.subject: no schema subject 'paymnts' under"),
        (lambda d: d["sources"]["payments"].update(subject="paymnts"), "valid subjects: clickstream, payments, sensors"),
        (lambda d: d["sources"]["payments"].update(schema_version=7),
         "sources.payments.schema_version: subject 'payments' has no version 7; valid versions: 1, 2"),
        (lambda d: d["sources"]["sensors"].update(event_time="rpm"),
         "sources.sensors.event_time: field 'rpm' is int; expected a long with logicalType timestamp-millis"),
        (lambda d: d["sources"]["clickstream"]["features"].update(nope={"kind": "numeric"}),
         "sources.clickstream.features.nope: 'nope' is not a field of clickstream v1; fields: session_id, user_id"),
        (lambda d: d["sources"]["sensors"]["features"]["status"].update(kind="numeric"),
         "sources.sensors.features.status.kind: 'numeric' needs an Avro type in ['double', 'float', 'int', 'long'], but 'status' is string"),
        (lambda d: d["sources"]["sensors"].update(topic="signals.payments"),
         "topic 'signals.payments' is also used by source 'payments'"),
        (lambda d: d.update(schemas_dir="nowhere"), "schemas_dir: schema directory"),
    ],
)  # fmt: skip
def test_schema_cross_checks_name_the_key_and_the_options(mutate, expected) -> None:
    assert expected in load(mutate)


def test_v1_reader_does_not_have_the_v2_field() -> None:
    def pin_v1_with_channel(d):
        d["sources"]["payments"]["schema_version"] = 1
        d["sources"]["payments"]["features"]["channel"] = {"kind": "categorical"}

    assert "'channel' is not a field of payments v1" in load(pin_v1_with_channel)


def test_secrets_never_show_in_reprs_but_reach_librdkafka() -> None:
    data = copy.deepcopy(DEMO)
    data["kafka"]["client"] = {"sasl.password": "hunter2", "security.protocol": "SASL_SSL"}
    config = pipeline_from_dict(data, base_dir=DEMO_PIPELINE.parent)
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump())
    assert config.kafka.librdkafka("producer")["sasl.password"] == "hunter2"
    assert config.kafka.librdkafka("producer")["compression.type"] == "zstd"
    assert "compression.type" not in config.kafka.librdkafka("admin")


def test_missing_file_and_bad_toml_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[pipeline\nname = 1")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_pipeline(broken)


@pytest.mark.parametrize(
    ("text", "seconds"), [("500 ms", 0.5), ("30s", 30), ("2 minutes", 120), ("1 hour", 3600), (45, 45)]
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text).seconds == seconds


def test_zero_is_a_duration_where_it_means_something() -> None:
    """No lateness allowed, batches back to back, no lingering: zero is a setting, not an error."""
    data = copy.deepcopy(DEMO)
    data["windows"].update(watermark="0 seconds", trigger=0)
    data["metrics"].update(linger_on_failure="0 s", feature_series_linger="0 ms")
    config = pipeline_from_dict(data, base_dir=DEMO_PIPELINE.parent)
    assert config.windows.watermark.seconds == config.windows.trigger.seconds == 0
    assert config.metrics.linger_on_failure.seconds == config.metrics.feature_series_linger.seconds == 0
    assert config.windows.watermark.spark == "0 seconds"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hdfs://namenode:8020/dq/warehouse/", "hdfs://namenode:8020/dq/warehouse"),
        ("s3a://bucket/dq", "s3a://bucket/dq"),
        ("file:///srv/dq", "file:///srv/dq"),
        ("/srv/dq", "/srv/dq"),
        ("../.driftline/warehouse", str((DEMO_PIPELINE.parent / "../.driftline/warehouse").resolve())),
    ],
)
def test_job_folders_keep_uris_and_resolve_plain_paths_against_the_pipeline(value, expected) -> None:
    config = load_pipeline(DEMO_PIPELINE)
    assert config.location(value) == expected


def test_dead_letters_retention_defaults_to_30_days_and_refuses_nonsense() -> None:
    assert load_pipeline(DEMO_PIPELINE).tables.dead_letters_retention.seconds == 30 * 86400
    message = load(lambda d: d.setdefault("tables", {}).update(dead_letters_retention="forever"))
    assert "dead_letters_retention" in message


def test_the_other_tables_keep_90_days_unless_told_and_refuse_nonsense() -> None:
    assert load_pipeline(DEMO_PIPELINE).tables.retention.seconds == 90 * 86400
    message = load(lambda d: d.setdefault("tables", {}).update(retention="0 days"))
    assert "tables.retention" in message and "more than zero" in message


def test_the_report_url_template_names_the_pipeline_and_source() -> None:
    from driftline.config.pipeline import ReportConfig

    report = ReportConfig(url="https://dq.example.com/reports/{pipeline}.html#source-{source}")
    assert report.link("demo", "payments") == "https://dq.example.com/reports/demo.html#source-payments"
    assert ReportConfig().link("demo", "payments") is None
