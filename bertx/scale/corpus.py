"""A corpus as shards: input files (paths and globs) -> fixed runs of rows that any worker can read alone.

Shards are cut by the driver from the files' own structure, never from the order work finishes in, so a
rerun cuts the same shards and a killed job redoes only the missing ones:

- text (`.txt`, one text per line), JSONL and TSV: runs of `shard_rows` physical lines, found by one
  pass over the bytes (newline positions); a worker seeks to its shard's byte offset;
- CSV (a quoted field may span lines): runs of `shard_rows` records; a worker re-parses up to its
  first record, so prefer JSONL or Parquet for corpora of millions of rows;
- Parquet: whole row groups, gathered up to `shard_rows` rows.

Each row comes back with its row number (1-based: the line it starts on for text formats, the row for
Parquet) and either its content or the problem that makes it unreadable: one bad row never stops a shard.
"""

from __future__ import annotations

import csv
import glob
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from bertx.data.readers import decode_text, surrogate_problem
from bertx.errors import BertxError, DataError

FORMATS = {".txt": "text", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".csv": "csv", ".parquet": "parquet"}
CHUNK = 1 << 24  # bytes read at a time while finding line offsets


@dataclass(frozen=True)
class InputFile:
    path: str
    format: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Shard:
    name: str  # part-FFFFF-SSSSS: the file's and the shard's index
    path: str
    format: str
    first: int  # row number of its first line, record or Parquet row (1-based)
    count: int  # lines (text formats), records (CSV) or rows (Parquet) it covers
    offset: int  # byte offset of its first line; CSV: records before it; Parquet: its first row group

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    number: int
    content: Union[str, dict, None]  # a text line, a record's fields, or None when unreadable
    problem: Optional[str] = None


def expand_inputs(patterns: list[str]) -> list[InputFile]:
    """Every file the patterns name, in a stable order (each glob sorted), each once."""
    if not patterns:
        raise BertxError("--input: give at least one file or glob")
    seen, files = set(), []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                raise BertxError(f"--input {pattern}: no file matches")
        else:
            if not Path(pattern).is_file():
                raise BertxError(f"{pattern}: {'is a folder, not a data file' if Path(pattern).is_dir() else 'file not found'}")
            matches = [pattern]
        for match in matches:
            key = Path(match).resolve()
            if key in seen:
                continue
            seen.add(key)
            fmt = FORMATS.get(Path(match).suffix.lower())
            if fmt is None:
                raise BertxError(f"{match}: unknown input format {Path(match).suffix or '(no suffix)'}; use {', '.join(sorted(FORMATS))}")
            stat = Path(match).stat()
            files.append(InputFile(match, fmt, stat.st_size, stat.st_mtime_ns))
    return files


def plan_shards(files: list[InputFile], shard_rows: int) -> list[Shard]:
    shards = []
    for index, item in enumerate(files):
        if item.format == "parquet":
            spans = _parquet_spans(item.path, shard_rows)
        elif item.format == "csv":
            spans = _csv_spans(item.path, shard_rows)
        else:
            spans = _line_spans(item.path, shard_rows, skip=1 if item.format == "tsv" else 0)
        if not spans:
            raise DataError(item.path, None, "file is empty")
        shards += [Shard(f"part-{index:05d}-{k:05d}", item.path, item.format, *span) for k, span in enumerate(spans)]
    return shards


def _line_spans(path: str, shard_rows: int, skip: int) -> list[tuple[int, int, int]]:
    """(first line, lines, byte offset) of each run of `shard_rows` lines after the first `skip` lines."""
    starts = [0]  # byte offset of every line that begins a shard (or follows the skipped header)
    lines = 0
    position = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            numbers = lines + np.arange(1, len(ends) + 1)  # the line each newline closes
            closing = (numbers >= skip) & ((numbers - skip) % shard_rows == 0)  # a shard's last line (or the header)
            starts += (position + ends[closing] + 1).tolist()
            lines += len(ends)
            position += len(chunk)
            last_byte = chunk[-1:]
    if position == 0:
        return []
    total = lines + (0 if last_byte == b"\n" else 1)
    if skip:
        starts = starts[1:]  # the header's start is not a shard's
    spans = []
    for k, offset in enumerate(starts):
        first = skip + k * shard_rows + 1
        count = min(shard_rows, total - first + 1)
        if count > 0:
            spans.append((first, count, offset))
    return spans


def _csv_spans(path: str, shard_rows: int) -> list[tuple[int, int, int]]:
    spans = []
    records = 0
    for number, _ in _csv_records(path, skip=0):
        if records % shard_rows == 0:
            spans.append([number, 0, records])
        spans[-1][1] += 1
        records += 1
    return [tuple(s) for s in spans]


def _csv_records(path: str, skip: int) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, fields) of every record after the header, the first `skip` passed over."""
    text = decode_text(Path(path).read_bytes(), path)
    reader = csv.reader(io.StringIO(text, newline=""))
    start, seen = 1, -1  # the header is record -1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                if seen >= skip:
                    yield start, values
                seen += 1
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(path, start, f"cannot parse row: {err}") from None


def _parquet_spans(path: str, shard_rows: int) -> list[tuple[int, int, int]]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as err:  # pyarrow raises its own types for a file that is not Parquet
        raise DataError(path, None, f"not a readable Parquet file ({str(err).splitlines()[0][:200]})") from None
    spans, row = [], 1
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        if spans and spans[-1][1] + rows <= shard_rows:
            spans[-1][1] += rows
        elif rows:
            spans.append([row, rows, group])
        row += rows
    return [tuple(s) for s in spans]


def header(item_path: str, fmt: str) -> list[str]:
    """The column names a file offers (JSONL: the keys of its first readable object); [] for plain text."""
    if fmt == "text":
        return []
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(item_path).schema_arrow.names)
    if fmt == "csv":
        text = decode_text(Path(item_path).read_bytes()[: 1 << 20], item_path).split("\n")[0]
        return [name.strip() for name in next(csv.reader([text]))]
    with open(item_path, "rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
            if not line:
                continue
            if fmt == "tsv":
                return [name.strip() for name in line.split("\t")]
            try:
                found = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(found, dict):
                return list(found)
    raise DataError(item_path, None, "no readable row")


def read_shard(shard: Shard, columns: list[str]) -> list[Row]:
    """The shard's rows: a text line (text format) or a dict of fields (other formats). `columns` is the
    file's header (TSV, CSV), used to name the fields. A `DataError` when the file no longer holds the
    rows the shard was planned with (it was cut or rewritten while the job ran)."""
    if shard.format == "parquet":
        rows = list(_parquet_rows(shard))
    elif shard.format == "csv":
        rows = []
        for number, values in _csv_records(shard.path, skip=shard.offset):
            if len(rows) >= shard.count:
                break
            if len(values) != len(columns):
                rows.append(Row(number, None, f"row has {len(values)} columns, the header has {len(columns)}"))
            else:
                rows.append(Row(number, dict(zip(columns, values))))
    else:
        return list(_line_rows(shard, columns))
    if len(rows) < shard.count:
        raise DataError(
            shard.path,
            None,
            f"holds {len(rows)} of the {shard.count} rows this shard was planned with from row {shard.first}: it changed while the job ran",
        )
    return rows


def _line_rows(shard: Shard, columns: list[str]) -> Iterator[Row]:
    with open(shard.path, "rb") as handle:
        handle.seek(shard.offset)
        for number in range(shard.first, shard.first + shard.count):
            raw = handle.readline()
            if not raw:  # the end of the file, before the lines the shard was planned with
                raise DataError(
                    shard.path, number, f"the file ends before the {shard.count} lines this shard was planned with: it changed while the job ran"
                )
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            if b"\x00" in raw:
                yield Row(number, None, "NUL byte: binary data, not text")
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield Row(number, None, f"not valid UTF-8 (byte {raw[err.start]:#04x})")
                continue
            if shard.format == "text":
                yield Row(number, line) if line.strip() else Row(number, None, "empty text")
            elif not line.strip():
                continue  # blank lines between records are allowed, as the file readers allow them
            elif shard.format == "tsv":
                values = line.split("\t")
                if len(values) != len(columns):
                    yield Row(number, None, f"row has {len(values)} columns, the header has {len(columns)}")
                else:
                    yield Row(number, dict(zip(columns, values)))
            else:
                yield _json_row(number, line)


def _json_row(number: int, line: str) -> Row:
    try:
        found: Any = json.loads(line)
    except json.JSONDecodeError as err:
        return Row(number, None, f"not valid JSON: {err.msg}")
    if not isinstance(found, dict):
        return Row(number, None, "each JSONL line must be an object")
    problem = surrogate_problem(line, found)
    return Row(number, None, problem) if problem else Row(number, found)


def _parquet_rows(shard: Shard) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(shard.path)
    number, group = shard.first, shard.offset
    while number < shard.first + shard.count and group < parquet.metadata.num_row_groups:
        for record in parquet.read_row_group(group).to_pylist():
            yield Row(number, record)
            number += 1
        group += 1
