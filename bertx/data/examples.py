"""Rows -> examples: pick the text, text-pair and label columns by name and check every value.

Columns are found by conventional names (`sentence`/`text`/`sentence1`, `sentence2`/`text_pair`,
`label`) unless the config names them. An empty text or a missing column stops with the file and
line; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertx.data.readers import read_rows
from bertx.errors import DataError
from bertx.data.labels import parse_label
from bertx.data.task_spec import TaskSpec

TEXT_COLUMNS = ("sentence", "text", "sentence1", "question", "premise")
PAIR_COLUMNS = ("sentence2", "text_pair", "text2", "hypothesis")


@dataclass
class Example:
    text: str
    text_pair: Optional[str]
    label: Any  # str, float, list[str], or None when the file has no labels
    line: int


@dataclass(frozen=True)
class Columns:
    text: str
    text_pair: Optional[str]
    label: Optional[str]


def find_columns(
    path: str | Path,
    header: list[str],
    task: TaskSpec,
    text_column: Optional[str] = None,
    text_pair_column: Optional[str] = None,
    label_column: Optional[str] = "label",
    require_label: bool = True,
) -> Columns:
    """Choose the columns to read, or explain which one is missing."""

    def pick(explicit: Optional[str], candidates: tuple[str, ...], what: str, required: bool) -> Optional[str]:
        if explicit:
            if explicit not in header:
                raise DataError(path, 1, f"no {what} column {explicit!r}; columns are: {', '.join(header)}")
            return explicit
        found = next((name for name in candidates if name in header), None)
        if found is None and required:
            raise DataError(path, 1, f"no {what} column (looked for {', '.join(candidates)}); columns are: {', '.join(header)}")
        return found

    text = pick(text_column, TEXT_COLUMNS, "text", True)
    pair = pick(text_pair_column, PAIR_COLUMNS, "second-text", task.pair == "required")
    label = None
    if label_column and label_column in header:
        label = label_column
    elif require_label:
        raise DataError(path, 1, f"no label column {label_column!r}; columns are: {', '.join(header)}")
    return Columns(text, pair, label)


def read_examples(
    path: str | Path,
    task: TaskSpec,
    text_column: Optional[str] = None,
    text_pair_column: Optional[str] = None,
    label_column: Optional[str] = "label",
    label_separator: str = ",",
    require_label: bool = True,
    limit: Optional[int] = None,
    columns: Optional[Columns] = None,
) -> tuple[list[Example], Columns]:
    """Read a file into examples.

    Args:
        path: the data file.
        task: decides how labels are parsed and whether a second text is required.
        text_column, text_pair_column, label_column: explicit column names, or None to detect.
        label_separator: splits multi-label strings in TSV/CSV.
        require_label: False for prediction inputs.
        limit: read only the first N examples.
        columns: reuse columns chosen for another split (dev must match train).

    Returns:
        The examples and the columns they were read from.
    """
    header, rows = read_rows(path)
    if columns is None:
        columns = find_columns(path, header, task, text_column, text_pair_column, label_column, require_label)
    else:
        for name in (columns.text, columns.text_pair, columns.label):
            if name and name not in header:
                raise DataError(path, 1, f"no {name!r} column (the training file has one); columns are: {', '.join(header)}")
    examples = []
    for row in rows[:limit] if limit else rows:
        text = column_text(path, row.line, row.fields, columns.text)
        pair = column_text(path, row.line, row.fields, columns.text_pair) if columns.text_pair else None
        label = None
        if columns.label is not None:
            if columns.label not in row.fields:
                raise DataError(path, row.line, f"missing {columns.label!r}")
            label = parse_label(task, row.fields[columns.label], label_separator, str(path), row.line)
        examples.append(Example(text, pair, label, row.line))
    return examples, columns


def column_text(path, line: int, fields: dict, column: str) -> str:
    """The non-empty string in `column` of a row, or a `DataError` naming the file, line and problem."""
    if column not in fields:
        raise DataError(path, line, f"missing {column!r}")
    value = fields[column]
    if not isinstance(value, str):
        raise DataError(path, line, f"{column!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(path, line, f"empty text in column {column!r}")
    return value
