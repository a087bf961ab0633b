"""Input readers keep each record's original bytes and location, and never skip a bad one."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.errors import ConfigError
from driftline.ingest.readers import InputFormat, detect_format, read_records


def test_jsonl_keeps_raw_lines_and_reports_unparseable_ones(tmp_path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": \n[1, 2]\r\n{"a": "\xc3\xa9"}')
    records = list(read_records(path, InputFormat.JSONL))
    assert [r.location for r in records] == ["line 1", "line 3", "line 4", "line 5"]
    assert [r.raw for r in records] == [b'{"a": 1}', b'{"a": ', b"[1, 2]", b'{"a": "\xc3\xa9"}']
    assert records[0].value == {"a": 1} and records[3].value == {"a": "é"}
    assert records[1].value is None and records[1].error.startswith("not valid JSON")
    assert records[2].error == "expected a JSON object, got list"
    assert records[-1].position == path.stat().st_size


def test_csv_raw_bytes_span_a_quoted_multiline_row(tmp_path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,note\n1,"two\nlines"\n2,plain\n3,too,many\n')
    records = list(read_records(path, InputFormat.CSV))
    assert [r.location for r in records] == ["line 2", "line 4", "line 5"]
    assert records[0].raw == b'1,"two\nlines"' and records[0].value == {"id": "1", "note": "two\nlines"}
    assert records[1].value == {"id": "2", "note": "plain"}
    assert records[2].value is None and records[2].error == "3 fields where the header has 2"
    assert records[2].raw == b"3,too,many"


def test_parquet_rows_are_typed_and_raw_is_canonical_json(tmp_path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"b": [1, None], "a": ["x", "y"]}), path)
    records = list(read_records(path, InputFormat.PARQUET))
    assert [r.value for r in records] == [{"b": 1, "a": "x"}, {"b": None, "a": "y"}]
    assert [r.location for r in records] == ["row 1", "row 2"]
    assert json.loads(records[1].raw) == {"a": "y", "b": None}
    assert records[1].raw == b'{"a": "y", "b": null}'


@pytest.mark.parametrize(
    ("name", "fmt"), [("x.jsonl", "jsonl"), ("x.NDJSON", "jsonl"), ("x.csv", "csv"), ("x.pq", "parquet")]
)
def test_format_from_extension(tmp_path, name, fmt) -> None:
    assert detect_format(tmp_path / name) is InputFormat(fmt)


def test_unknown_format_lists_the_valid_ones(tmp_path) -> None:
    with pytest.raises(
        ConfigError, match=r"cannot tell the format of 'x.xlsx'.*--format \(jsonl, csv, parquet\)"
    ):
        detect_format(tmp_path / "x.xlsx")
    with pytest.raises(ConfigError, match=r"--format: 'avro' is not supported; valid: jsonl, csv, parquet"):
        detect_format(tmp_path / "x.csv", "avro")
