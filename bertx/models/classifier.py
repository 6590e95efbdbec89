"""Sequence heads: an encoder with a classification / regression / multi-label head on top.

The head is Hugging Face's own `*ForSequenceClassification`, so the saved folder loads unchanged in
`AutoModelForSequenceClassification` and `pipeline("text-classification")`: the config carries
`num_labels`, `id2label`, `label2id` and `problem_type`, which pick the loss at training time and the
output function (softmax / sigmoid / identity) at prediction time.
"""

from __future__ import annotations

import logging

from bertx.models.encoder import check_encoder_folder
from bertx.tasks.spec import TaskSpec


def build_classifier(path: str, task: TaskSpec, labels: list[str], dropout: float | None = None):
    """Load the encoder at `path` with a freshly initialised head for `task`.

    Args:
        path: local HF model folder (checked to be a BERT-family encoder).
        task: decides `problem_type` and the number of outputs.
        labels: class names in id order (empty for regression: one output).
        dropout: optional override of hidden and attention dropout.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    check_encoder_folder(path)
    num_labels = 1 if task.label_kind == "score" else len(labels)
    id2label = {i: name for i, name in enumerate(labels)} if labels else {0: "score"}
    config = AutoConfig.from_pretrained(
        path,
        num_labels=num_labels,
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
        problem_type=task.problem_type,
    )
    if dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, key):
                setattr(config, key, dropout)
    # The "classifier weights newly initialised" report is expected here; keep the console clean.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config)
    finally:
        hf_logging.set_verbosity(previous)
    logging.getLogger(__name__).debug("loaded %s with %d outputs", path, num_labels)
    return model


def word_embeddings(model):
    """The input word-embedding matrix, whatever the encoder family calls it."""
    return model.get_input_embeddings().weight
