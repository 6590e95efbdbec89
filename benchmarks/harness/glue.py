"""The GLUE tasks the multi-task and adapter benchmarks share: (name, task kind, data folder, metric, max length)."""

TASKS = [
    ("rte", "pair-classification", "glue/rte", "accuracy", 256),
    ("mrpc", "pair-classification", "glue/mrpc", "f1", 128),
    ("stsb", "regression", "glue/stsb", "pearson", 128),
    ("cola", "classification", "glue/cola", "mcc", 64),
    ("sst2", "classification", "sst2", "accuracy", 66),
]
