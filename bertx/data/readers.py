"""Readers: TSV, CSV (with a header) and JSONL files -> rows, each with its line number.

Every problem is reported with the file and line it came from (`DataError`): broken UTF-8, a row
with the wrong number of columns, an empty file, a JSONL line that is not an object.
TSV is read with quoting disabled: GLUE files contain bare `"` characters that are text, not quotes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertx.errors import DataError


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line number in the file, for error messages
    fields: dict[str, Any]


def read_lines(path: Path) -> list[str]:
    """The file's lines, decoded as UTF-8 (a BOM is dropped); errors name the offending line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a folder, not a data file") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 (byte {raw[err.start]:#04x} at offset {err.start})") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(path, None, "file is empty")
    return lines


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "tsv"


def read_rows(path: str | Path) -> tuple[list[str], list[Row]]:
    """Read a data file.

    Args:
        path: `.tsv`/`.txt` (tab-separated, header, no quoting), `.csv` (header, standard quoting)
            or `.jsonl` (one JSON object per line).

    Returns:
        The column names (for JSONL: the keys of the first object) and the rows.
    """
    path = Path(path)
    lines = read_lines(path)
    fmt = file_format(path)
    if fmt == "jsonl":
        return _read_jsonl(path, lines)
    return _read_delimited(path, lines, fmt)


def _read_delimited(path: Path, lines: list[str], fmt: str) -> tuple[list[str], list[Row]]:
    if fmt == "tsv":
        parse = lambda line: line.split("\t")  # noqa: E731  quoting disabled on purpose
    else:
        parse = lambda line: next(csv.reader(io.StringIO(line)))  # noqa: E731
    header_at = next(i for i, line in enumerate(lines) if line.strip())
    header = [name.strip() for name in parse(lines[header_at])]
    if len(set(header)) != len(header):
        raise DataError(path, header_at + 1, f"header has repeated column names: {header}")
    rows = []
    for index in range(header_at + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue  # blank lines (often a trailing one) carry no example
        try:
            values = parse(line)
        except (csv.Error, StopIteration) as err:
            raise DataError(path, index + 1, f"cannot parse row: {err}") from None
        if len(values) != len(header):
            raise DataError(
                path, index + 1, f"row has {len(values)} columns, the header has {len(header)} ({', '.join(header)})"
            )
        rows.append(Row(index + 1, dict(zip(header, values))))
    if not rows:
        raise DataError(path, None, "file has a header but no rows")
    return header, rows


def _read_jsonl(path: Path, lines: list[str]) -> tuple[list[str], list[Row]]:
    rows = []
    columns: list[str] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, index + 1, f"not valid JSON: {err.msg}") from None
        if not isinstance(obj, dict):
            raise DataError(path, index + 1, "each JSONL line must be an object")
        if not columns:
            columns = list(obj)
        rows.append(Row(index + 1, obj))
    return columns, rows
