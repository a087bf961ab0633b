"""Printing and saving the result of a ``driftline sql`` query, and splitting a script
into statements. Pure pandas: the query itself runs in Spark (:mod:`driftline.spark.views`).

Formats: ``table`` (aligned text, for a terminal), ``csv``, ``json`` (one JSON object
per line) and ``parquet`` (a file; needs ``--output``). Binary columns (a dead
letter's original bytes, a feature's KLL sketch) are written as base64 text in
``csv`` and ``json``, and shortened in ``table``; ``parquet`` keeps the bytes.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from pathlib import Path

import pandas as pd

TABLE_ROWS = 200  # rows a terminal table shows; the rest are counted, not printed
SHOWN_BYTES = 24  # base64 characters of a binary value in a terminal table


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


def _is_binary(column: pd.Series) -> bool:
    first = column.dropna().head(1)
    return column.dtype == object and not first.empty and isinstance(first.iloc[0], bytes | bytearray)


def _as_text(frame: pd.DataFrame, width: int | None) -> pd.DataFrame:
    """``frame`` with binary values as base64 text (cut to ``width`` characters)."""
    out = frame.copy()
    for name in out.columns:
        if _is_binary(out[name]):

            def encode(value, width=width):
                if value is None:
                    return None
                text = base64.b64encode(bytes(value)).decode()
                return text if width is None or len(text) <= width else text[:width] + "..."

            out[name] = out[name].map(encode)
    return out


def render(frame: pd.DataFrame, fmt: Format) -> str:
    """The result as text in ``fmt`` (not ``parquet``)."""
    if fmt is Format.TABLE:
        if frame.empty:
            return f"(0 rows; columns: {', '.join(map(str, frame.columns))})"
        shown = _as_text(frame.head(TABLE_ROWS), SHOWN_BYTES)
        text = shown.to_string(index=False)
        more = len(frame) - len(shown)
        tail = (
            f"({len(frame)} rows, {more} not shown; use --format csv or --output)"
            if more
            else (f"({len(frame)} row{'s' if len(frame) != 1 else ''})")
        )
        return f"{text}\n{tail}"
    if fmt is Format.CSV:
        return _as_text(frame, None).to_csv(index=False)
    if fmt is Format.JSON:
        if frame.empty:
            return ""
        return _as_text(frame, None).to_json(orient="records", lines=True, date_format="iso", date_unit="us")
    raise ValueError(f"{fmt} is written to a file (--output), not printed")


def save(frame: pd.DataFrame, fmt: Format, path: Path) -> None:
    """Write the result to ``path`` in ``fmt``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt is Format.PARQUET:
        frame.to_parquet(path, index=False)
    else:
        path.write_text(render(frame, fmt) + ("" if fmt is not Format.TABLE else "\n"))


def statements(text: str) -> tuple[list[str], str]:
    """The complete ``;``-terminated statements in ``text`` and the unfinished rest.
    A ``;`` inside single or double quotes, or in a ``--`` comment, ends nothing."""
    done, current, quote, comment = [], [], None, False
    for i, char in enumerate(text):
        if comment:
            comment = char != "\n"
            current.append(char)
            continue
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "-" and text[i + 1 : i + 2] == "-":
            comment = True
        elif char == ";":
            statement = "".join(current).strip()
            if statement:
                done.append(statement)
            current = []
            continue
        current.append(char)
    return done, "".join(current)


__all__ = ["Format", "render", "save", "statements"]
