"""Task registry: one entry per task name accepted by `--task`.

Adding a sequence task is one `TaskSpec` line here; token-level tasks (NER, QA) will add their own
modules beside this one.
"""

from bertx.tasks.spec import TaskSpec

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("classification", "class", "single_label_classification", "optional", "accuracy",
                 "one label per text (or text pair if a second text column is present)"),
        TaskSpec("pair-classification", "class", "single_label_classification", "required", "accuracy",
                 "one label per sentence pair (MRPC, RTE, QNLI, ...)"),
        TaskSpec("regression", "score", "regression", "optional", "pearson",
                 "one real-valued score per text or pair (STS-B)"),
        TaskSpec("multilabel", "classes", "multi_label_classification", "optional", "micro_f1",
                 "any number of labels per text"),
    ]
}


def get_task(name: str) -> TaskSpec:
    from bertx.errors import BertxError

    if name not in TASKS:
        raise BertxError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "TaskSpec", "get_task"]
