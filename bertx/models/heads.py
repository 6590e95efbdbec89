"""Task heads on an encoder: sequence classification / regression / multi-label, token
classification (NER) and extractive QA.

Every head is Hugging Face's own `*For<Task>` class, so a saved folder loads unchanged in the
matching `AutoModelFor<Task>` and `pipeline(...)`: the config carries `num_labels`, `id2label`,
`label2id` and, for sequence heads, `problem_type` (which picks the loss when training and the output
function, softmax / sigmoid / identity, when predicting).
"""

from __future__ import annotations

from bertx.models.encoder import check_encoder_folder, without_load_report
from bertx.data.task_spec import TaskSpec


def load_with_new_head(path: str, auto_class: str, labels: list[str] | None, dropout: float | None = None, **config_updates):
    """Load the encoder at `path` under a freshly initialised head.

    Args:
        path: local HF model folder (checked to be a BERT-family encoder).
        auto_class: name of the transformers Auto class, e.g. "AutoModelForTokenClassification".
        labels: class names in id order (None for heads without classes, such as QA).
        dropout: optional override of hidden and attention dropout.
        config_updates: other config fields (`problem_type`, ...).
    """
    import transformers
    from transformers import AutoConfig

    check_encoder_folder(path)
    if labels is not None:
        id2label = {i: name for i, name in enumerate(labels)}
        config_updates.update(num_labels=len(labels), id2label=id2label, label2id={n: i for i, n in id2label.items()})
    config = AutoConfig.from_pretrained(path, **config_updates)
    if dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, key):
                setattr(config, key, dropout)
    with without_load_report():  # expected for a new head
        model, info = getattr(transformers, auto_class).from_pretrained(path, config=config, output_loading_info=True)
    # Encoder weights the folder lacked (a pooler, say) start random: a frozen-encoder run must train them.
    model.bertx_new_weights = sorted(info.get("missing_keys") or [])
    return model


def build_classifier(path: str, task: TaskSpec, labels: list[str], dropout: float | None = None):
    """Encoder + sequence head for `task` (one output for regression, one per class otherwise)."""
    return load_with_new_head(path, "AutoModelForSequenceClassification", labels or ["score"], dropout, problem_type=task.problem_type)


def word_embeddings(model):
    """The input word-embedding matrix, whatever the encoder family calls it."""
    return model.get_input_embeddings().weight
