"""Readers: TSV, CSV (with a header) and JSONL files -> rows, each with its line number.

Every problem is reported with the file and line it came from (`DataError`): broken UTF-8, a row
with the wrong number of columns, an empty file, a JSONL line that is not an object.
TSV is read with quoting disabled: GLUE files contain bare `"` characters that are text, not quotes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertx.errors import DataError


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line number in the file, for error messages
    fields: dict[str, Any]


def read_text(path: Path) -> str:
    """The whole file decoded as UTF-8 (a BOM is dropped); errors name the offending line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a folder, not a data file") from None
    except PermissionError:
        raise DataError(path, None, "cannot be read (permission denied)") from None
    return decode_text(raw, path)


def decode_text(raw: bytes, path: str | Path) -> str:
    """Bytes from a file or standard input, decoded as the file readers decode them: UTF-8, a BOM dropped,
    a NUL byte or invalid UTF-8 reported with the line it is on; `path` is what errors call the source."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(path, raw[:nul].count(b"\n") + 1, "NUL byte: this is a binary file, not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 (byte {raw[err.start]:#04x} at offset {err.start})") from None
    if not text.strip():
        raise DataError(path, None, "file is empty")
    return text


def split_lines(text: str) -> list[str]:
    """Lines end at \\n (a \\r before it is dropped) and nowhere else.

    `str.splitlines()` also breaks at \\x0b, \\x0c, \\x1c-\\x1e, U+0085, U+2028 and U+2029, which occur inside
    real-world text; splitting there would shift every later line out of step with the file."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: Path) -> list[str]:
    """The file's lines, decoded as UTF-8 (a BOM is dropped); errors name the offending line."""
    return split_lines(read_text(path))


def read_text_lines(path: str | Path) -> list[str]:
    """A text file of one text per line; a blank line is an error naming its line."""
    texts = []
    for number, line in enumerate(read_lines(Path(path)), start=1):
        if not line.strip():
            raise DataError(path, number, "empty text")
        texts.append(line)
    return texts


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
    text = read_text(path)
    fmt = file_format(path)
    if fmt == "jsonl":
        return _read_jsonl(path, split_lines(text))
    if fmt == "csv":
        return _check_rows(path, _csv_records(path, text))
    return _check_rows(path, [(i + 1, line.split("\t")) for i, line in enumerate(split_lines(text)) if line.strip()])


def _csv_records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """CSV records with the line each starts on; a quoted field may hold newlines (RFC 4180)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records = []
    start = 1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                records.append((start, values))
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(path, start, f"cannot parse row: {err}") from None
    return records


def _check_rows(path: Path, records: list[tuple[int, list[str]]]) -> tuple[list[str], list[Row]]:
    """The first record is the header; every other must have as many fields (blank lines are skipped)."""
    header_line, header = records[0]
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise DataError(path, header_line, f"header has repeated column names: {header}")
    rows = []
    for line, values in records[1:]:
        if len(values) != len(header):
            raise DataError(path, line, f"row has {len(values)} columns, the header has {len(header)} ({', '.join(header)})")
        rows.append(Row(line, dict(zip(header, values))))
    if not rows:
        raise DataError(path, None, "file has a header but no rows")
    return header, rows


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def surrogate_problem(text: str, decoded: Any) -> str | None:
    """JSON may escape a lone surrogate (`\\ud800`): valid JSON, but text no tokenizer can encode. The
    problem with `decoded` (what `text` parsed to), or None; only text that escapes a surrogate is checked."""
    if not _SURROGATE_ESCAPE.search(text):
        return None
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        return f"holds an unpaired surrogate ({err.object[err.start]!r}): text no tokenizer can encode"
    return None


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
        problem = surrogate_problem(line, obj)
        if problem:
            raise DataError(path, index + 1, problem)
        if not columns:
            columns = list(obj)
        rows.append(Row(index + 1, obj))
    return columns, rows
