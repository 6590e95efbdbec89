"""One split end to end: file -> examples -> label targets -> token features."""

from __future__ import annotations

from typing import Optional

from bertx.data.examples import Columns, Example, read_examples
from bertx.data.features import Features, tokenize
from bertx.errors import DataError
from bertx.data.labels import encode_label
from bertx.data.task_spec import TaskSpec


def encode_split(
    path: str,
    task: TaskSpec,
    tokenizer,
    max_length: int,
    label2id: Optional[dict[str, int]],
    columns: Optional[Columns] = None,
    text_column: Optional[str] = None,
    text_pair_column: Optional[str] = None,
    label_column: Optional[str] = "label",
    label_separator: str = ",",
    limit: Optional[int] = None,
    require_label: bool = True,
) -> tuple[list[Example], Features, Columns]:
    """Read and encode a split.

    With `label2id=None` the labels are parsed but not encoded (the caller builds the label space
    from them first, then calls `attach_targets`).
    """
    examples, columns = read_examples(path, task, text_column, text_pair_column, label_column, label_separator, require_label, limit, columns)
    features = tokenize(tokenizer, examples, max_length)
    if label2id is not None and columns.label is not None:
        attach_targets(features, examples, task, label2id, path)
    return examples, features, columns


def attach_targets(features: Features, examples: list[Example], task: TaskSpec, label2id: dict[str, int], path: str) -> None:
    if any(ex.label is None for ex in examples):
        raise DataError(path, None, "some examples have no label")
    features.labels = [encode_label(task, ex.label, label2id, path, ex.line) for ex in examples]
