"""``driftline sql``'s pure half: splitting a script into statements, and the result's text
and files in each format (read back with pandas and the json module, not compared as text)."""

from __future__ import annotations

import base64
import io
import json

import pandas as pd
import pytest

from driftline.sql import TABLE_ROWS, Format, render, save, statements


def test_statements_end_at_semicolons_outside_quotes_and_comments() -> None:
    text = "select ';' as a; -- a comment; still one\nselect \"x;y\" from t;\nselect 3"
    done, rest = statements(text)
    assert done == ["select ';' as a", '-- a comment; still one\nselect "x;y" from t']
    assert rest.strip() == "select 3"


def test_statements_keep_an_unfinished_one_for_the_next_line() -> None:
    done, rest = statements("select count(*)\n")
    assert done == [] and rest == "select count(*)\n"
    done, rest = statements(rest + "from alerts;\n")
    assert done == ["select count(*)\nfrom alerts"] and rest == "\n"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "source": ["payments", "sensors"],
        "n": [3, 14],
        "share": [0.25, None],
        "at": pd.to_datetime(["2026-01-05T08:00:00Z", "2026-01-05T08:05:00.123456Z"], format="ISO8601"),
        "value": [b"\x00\xffbad-frame", None],
    })  # fmt: skip


def test_csv_reads_back_with_binary_as_base64(frame) -> None:
    back = pd.read_csv(io.StringIO(render(frame, Format.CSV)))
    assert back["source"].tolist() == ["payments", "sensors"] and back["n"].tolist() == [3, 14]
    assert base64.b64decode(back["value"][0]) == b"\x00\xffbad-frame" and pd.isna(back["value"][1])


def test_json_is_one_object_per_line_with_iso_times(frame) -> None:
    lines = [json.loads(line) for line in render(frame, Format.JSON).splitlines()]
    assert [r["n"] for r in lines] == [3, 14] and lines[1]["share"] is None
    assert pd.Timestamp(lines[1]["at"]) == pd.Timestamp("2026-01-05T08:05:00.123456Z")
    assert base64.b64decode(lines[0]["value"]) == b"\x00\xffbad-frame"


def test_a_terminal_table_counts_its_rows_and_cuts_long_results() -> None:
    small = render(pd.DataFrame({"a": [1]}), Format.TABLE)
    assert small.splitlines()[-1] == "(1 row)"
    big = pd.DataFrame({"a": range(TABLE_ROWS + 7)})
    text = render(big, Format.TABLE)
    assert text.splitlines()[-1] == f"({TABLE_ROWS + 7} rows, 7 not shown; use --format csv or --output)"
    assert len(text.splitlines()) == TABLE_ROWS + 2  # header, rows, count
    assert render(big.head(0), Format.TABLE) == "(0 rows; columns: a)"


def test_parquet_is_a_file_that_keeps_the_bytes(frame, tmp_path) -> None:
    path = tmp_path / "out" / "result.parquet"
    save(frame, Format.PARQUET, path)
    back = pd.read_parquet(path)
    assert back["value"][0] == b"\x00\xffbad-frame" and back["n"].tolist() == [3, 14]
    with pytest.raises(ValueError, match="written to a file"):
        render(frame, Format.PARQUET)
