"""What a task is (`TaskSpec`), and what every task kind provides to the recipes (`TaskKind`).

A task kind is the one place that knows its data and its head: how to read and encode a training
split, an evaluation split, which head to put on the encoder, and how to turn the head's outputs into
metrics. The recipes (fine-tuning, multi-task, distillation, ...) only move batches through
`model(**batch).loss`, so adding a kind costs a reader, a head, a metric set and a config, not a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Protocol, Sequence

LabelKind = Literal["class", "score", "classes", "tags", "span"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label_kind: LabelKind  # one class name, one float score, a set of class names, a tag per word, an answer span
    problem_type: Optional[str]  # the `problem_type` HF sequence heads use to pick their loss
    pair: Literal["optional", "required", "none"]  # whether a second text column is needed
    main_metric: str  # picks the best checkpoint unless the config names another
    description: str
    auto_class: str = "AutoModelForSequenceClassification"  # the HF class that loads the saved folder

    @property
    def level(self) -> Level:
        return label_level(self.label_kind)


Level = Literal["sequence", "token", "span"]
SEQUENCE_LABELS = ("class", "score", "classes")  # the label kinds of one output per text (or pair)


def label_level(label_kind: str) -> Level:
    """Where a task's outputs sit: one per text or pair ("sequence": classes, scores, sets of classes), one per
    word ("token": tags), or a span of the context ("span": answers)."""
    return "sequence" if label_kind in SEQUENCE_LABELS else "token" if label_kind == "tags" else "span"


@dataclass
class TrainData:
    """An encoded training split, ready for batching."""

    features: Any  # bertx.data.features.Features with targets
    labels: list[str]  # label names in id order (empty when the head has no classes)
    info: dict = field(default_factory=dict)  # saved in bertx_run.yaml to read other files the same way
    counts: dict = field(default_factory=dict)  # truncated / windowed / repaired, for the log
    words: Any = None  # token tasks: the WordFeatures behind `features` (which word each piece belongs to)


@dataclass
class EvalSet:
    """An encoded evaluation split, with whatever its kind needs to score predictions."""

    features: Any
    gold: Any  # class ids, scores, tag sequences or answer lists
    extra: Any = None  # windows, QA offsets and examples
    counts: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.gold)


class TaskKind(Protocol):
    spec: TaskSpec

    def load_train(self, path: str, data, tokenizer) -> TrainData: ...

    def load_eval(
        self, path: str, data, tokenizer, label2id: dict, run: dict, limit: Optional[int] = None, articles: Optional[str] = None
    ) -> EvalSet: ...

    def build_model(self, path: str, labels: list[str], dropout: Optional[float]): ...

    def prepare_model(self, model, train: TrainData, config, tokenizer, resume: bool) -> dict: ...

    def evaluate(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 64, autocast_dtype=None) -> dict: ...

    def scorer(
        self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 64, autocast_dtype=None
    ) -> Callable[[Optional[Sequence[int]]], dict]:
        """Outputs computed once; a function of example indices (None: all) -> metrics, for bootstrap intervals."""
        ...
