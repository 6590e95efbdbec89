"""Task registry: one entry per task name accepted by `--task`, and the kind that implements it.

Adding a sequence task is one `TaskSpec` line here; a new kind of task (another head) is one module
beside `sequence.py`, `ner.py` and `qa.py` implementing `TaskKind`, and one line in `get_kind`.
"""

from bertx.data.task_spec import EvalSet, TaskKind, TaskSpec, TrainData

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "classification",
            "class",
            "single_label_classification",
            "optional",
            "accuracy",
            "one label per text (or text pair if a second text column is present)",
        ),
        TaskSpec(
            "pair-classification",
            "class",
            "single_label_classification",
            "required",
            "accuracy",
            "one label per sentence pair (MRPC, RTE, QNLI, ...)",
        ),
        TaskSpec("regression", "score", "regression", "optional", "pearson", "one real-valued score per text or pair (STS-B)"),
        TaskSpec("multilabel", "classes", "multi_label_classification", "optional", "micro_f1", "any number of labels per text"),
        TaskSpec(
            "ner", "tags", None, "none", "f1", "a BIO tag per word (CoNLL columns or JSONL tokens/tags)", auto_class="AutoModelForTokenClassification"
        ),
        TaskSpec("qa", "span", None, "none", "f1", "extractive question answering (SQuAD JSON or JSONL)", auto_class="AutoModelForQuestionAnswering"),
    ]
}


def get_task(name: str) -> TaskSpec:
    from bertx.errors import BertxError

    if name not in TASKS:
        raise BertxError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def get_kind(spec: TaskSpec) -> TaskKind:
    """The code that reads, encodes, heads and scores this task."""
    from bertx.tasks.ner import NerTask
    from bertx.tasks.qa import QaTask
    from bertx.tasks.sequence import SequenceTask

    kinds = {"tags": NerTask, "span": QaTask}
    return kinds.get(spec.label_kind, SequenceTask)(spec)


__all__ = ["TASKS", "TaskSpec", "TaskKind", "TrainData", "EvalSet", "get_task", "get_kind"]
