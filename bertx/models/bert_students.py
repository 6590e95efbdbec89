"""Students for distillation: smaller models of the teacher's task, made three ways.

    from the teacher's layers   the same width, a subset of the layers, every weight copied from the
                                teacher (embeddings, kept layers, pooler, head): DistilBERT-style. The
                                default subset is spread evenly and ends at the top layer (6 -> 3 keeps
                                layers 1, 3, 5), the layer the head was trained on.
    from a config               fewer and/or narrower layers, randomly initialised
    from another encoder        any local folder (a smaller pretrained BERT), with a new task head

The student is the teacher's own HF class (`*For<Task>`) with the teacher's labels, so it saves,
loads, evaluates and predicts like any fine-tuned model.
"""

from __future__ import annotations

import copy

from torch import nn

from bertx.errors import BertxError


def default_kept_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spread teacher layer indices (0-based) ending at the top: 6 -> 3 gives [1, 3, 5], 6 -> 2 gives [2, 5]."""
    if not 1 <= student_layers <= teacher_layers:
        raise BertxError(f"student layers {student_layers} must be between 1 and the teacher's {teacher_layers}")
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def _layers(model: nn.Module) -> nn.ModuleList:
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise BertxError(f"{type(model).__name__}: cannot find its transformer layers (BERT-shaped encoders only)")
    return layers


def student_from_teacher_layers(teacher: nn.Module, kept: list[int]) -> nn.Module:
    """A copy of the teacher with only the `kept` layers (0-based teacher indices, in order)."""
    layers = _layers(teacher)
    bad = [i for i in kept if not 0 <= i < len(layers)]
    if bad or not kept:
        raise BertxError(f"student.keep_layers {kept}: the teacher has layers 0..{len(layers) - 1}")
    if sorted(kept) != kept or len(set(kept)) != len(kept):
        raise BertxError(f"student.keep_layers {kept}: give distinct layers in increasing order")
    # One deepcopy of the whole teacher keeps shared references shared (every module's `config` is the
    # student's one config object); the kept layers are then picked from the copy.
    student = copy.deepcopy(teacher)
    for weight in student.parameters():  # a teacher loaded from a PEFT run has its base frozen; a student trains it all
        weight.requires_grad_(True)
    copied = _layers(student)
    student.base_model.encoder.layer = nn.ModuleList([copied[i] for i in kept])
    student.config.num_hidden_layers = len(kept)
    for index, layer in enumerate(_layers(student)):  # attention modules know their own index
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    return student


def student_from_config(
    teacher: nn.Module, layers: int, hidden: int | None = None, heads: int | None = None, intermediate: int | None = None
) -> nn.Module:
    """A randomly initialised student of the teacher's class, labels and vocabulary, with the given sizes."""
    import transformers

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    if hidden:
        heads = heads or max(1, hidden // 64)
        if hidden % heads:
            raise BertxError(f"student hidden size {hidden} is not divisible by {heads} attention heads")
        config.hidden_size, config.num_attention_heads = hidden, heads
        config.intermediate_size = intermediate or 4 * hidden
    elif heads or intermediate:
        config.num_attention_heads = heads or config.num_attention_heads
        config.intermediate_size = intermediate or config.intermediate_size
    return getattr(transformers, type(teacher).__name__)(config)


def student_from_encoder(path: str, teacher: nn.Module, dropout: float | None) -> nn.Module:
    """Another pretrained encoder folder under a new head of the teacher's kind and labels."""
    from bertx.models.heads import load_with_new_head

    config = teacher.config
    labels = (
        [config.id2label[i] for i in range(config.num_labels)]
        if type(teacher).__name__.endswith(("SequenceClassification", "TokenClassification"))
        else None
    )
    auto = "AutoModelFor" + type(teacher).__name__.split("For", 1)[1]
    extra = {"problem_type": config.problem_type} if getattr(config, "problem_type", None) else {}
    return load_with_new_head(path, auto, labels, dropout, **extra)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
