"""Seeded draws of a labelled file's records, written in the file's own format (TSV/CSV/JSONL rows under
the header, or CoNLL sentences), so that every recipe reads a draw as it reads the original.

    file -> records (rows, or blank-line blocks for tagged text) -> shuffled with the seed
         -> the first N (the draw) | the rest (held out as dev, or kept as unlabelled text)
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from bertx.errors import BertxError


def read_records(path: str | Path, tagged: bool) -> tuple[str, list[str]]:
    """(header, records) of a file: a tagged file's sentences (blank-line blocks, `-DOCSTART-` dropped),
    a CSV's rows (quoted newlines kept), a TSV's lines under the header, a JSONL's lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BertxError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise BertxError(f"{path}: not UTF-8 text (byte {err.start})") from None
    suffix = path.suffix.lower()
    if tagged and suffix not in (".jsonl", ".json"):
        blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
        return "", [b + "\n" for b in blocks if b.strip() and not b.lstrip().startswith("-DOCSTART-")]
    if suffix in (".jsonl", ".json"):
        return "", [line + "\n" for line in text.splitlines() if line.strip()]
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            raise BertxError(f"{path}: empty file")
        return _csv_line(rows[0]), [_csv_line(row) for row in rows[1:] if any(cell.strip() for cell in row)]
    lines = text.splitlines()
    if not lines:
        raise BertxError(f"{path}: empty file")
    return lines[0] + "\n", [line + "\n" for line in lines[1:] if line.strip()]


def _csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def split_records(records: list[str], first: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded shuffle cut after `first` records: (drawn, rest), each in the file's order."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:first])
    return [r for i, r in enumerate(records) if i in chosen], [r for i, r in enumerate(records) if i not in chosen]


def write_records(path: Path, header: str, records: list[str], tagged: bool) -> Path:
    from bertx import runfolder

    separator = "\n" if tagged else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    return runfolder.write_text(path, header + separator.join(records))
