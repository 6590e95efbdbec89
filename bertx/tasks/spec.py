"""What a sequence-level task is: its inputs, its label kind, its HF problem type and its main metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LabelKind = Literal["class", "score", "classes"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label_kind: LabelKind  # one class name, one float score, or a set of class names
    problem_type: str  # the `problem_type` HF heads use to pick their loss
    pair: Literal["optional", "required"]  # whether a second text column is needed
    main_metric: str  # picks the best checkpoint unless the config names another
    description: str
