"""Label spaces: raw labels from files -> ids the head trains on, and back.

The label space is built from the training file alone. A dev or test label never seen in training
is an error that names its file and line, never a silent drop.
"""

from __future__ import annotations

from typing import Any, Sequence

from bertx.errors import DataError
from bertx.data.task_spec import TaskSpec


def _sort_key(label: str):
    # integer-like labels sort numerically ("2" < "10"), others alphabetically
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def build_label_space(task: TaskSpec, labels: Sequence[Any]) -> list[str]:
    """The ordered class names seen in training (empty for regression)."""
    if task.label_kind == "score":
        return []
    names: set[str] = set()
    for label in labels:
        names.update(label if task.label_kind == "classes" else [label])
    return sorted(names, key=_sort_key)


def parse_label(task: TaskSpec, raw: Any, separator: str, path: str, line: int):
    """Turn a label as read from a file into the task's label kind (str, float or list of str)."""
    if task.label_kind != "classes" and isinstance(raw, (list, dict)):
        what = "a list" if isinstance(raw, list) else "an object"
        hint = "; several labels per example: --task multilabel" if isinstance(raw, list) and task.label_kind == "class" else ""
        raise DataError(path, line, f"label {raw!r} is {what}, not one {'number' if task.label_kind == 'score' else 'class'}{hint}")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if task.label_kind == "classes":
            return []  # a multi-label example may have no label at all
        raise DataError(path, line, "empty label")
    if task.label_kind == "score":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise DataError(path, line, f"regression target {raw!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise DataError(path, line, f"regression target {raw!r} is not finite")
        return value
    if task.label_kind == "classes":
        items = raw if isinstance(raw, list) else str(raw).split(separator)
        return sorted({str(item).strip() for item in items if str(item).strip()})
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip()


def encode_label(task: TaskSpec, label, label2id: dict[str, int], path: str, line: int):
    """Label -> training target: class id, float score, or a multi-hot float vector."""
    if task.label_kind == "score":
        return float(label)
    names = label if task.label_kind == "classes" else [label]
    for name in names:
        if name not in label2id:
            known = ", ".join(list(label2id)[:20])
            raise DataError(path, line, f"label {name!r} was never seen in training (known: {known})")
    if task.label_kind == "class":
        return label2id[label]
    target = [0.0] * len(label2id)
    for name in names:
        target[label2id[name]] = 1.0
    return target
