"""The student a distillation starts from, by kind: the teacher's kept layers, a smaller random BERT, another
encoder, or a BiLSTM / CNN / bag of embeddings; and what each kind cannot take, refused before any work.
Shared by single-task (`distill.py`) and multi-task (`distill_multitask.py`) distillation."""

from __future__ import annotations

from bertx.config import DistillConfig
from bertx.errors import BertxError
from bertx.models.bert_students import default_kept_layers, student_from_config, student_from_encoder, student_from_teacher_layers
from bertx.models.small_students import KINDS as SMALL_KINDS
from bertx.models.small_students import build_small_student


def build_student(config: DistillConfig, teacher, dropout: float | None, per_token: bool = False, tokenizers: tuple | None = None):
    """The student model and the teacher layers it was copied from (None when not copied); `tokenizers`: (the
    student's own, the teacher's) for a small student with its own vocabulary."""
    student_cfg = config.student
    teacher_layers = teacher.config.num_hidden_layers
    if student_cfg.kind in SMALL_KINDS:
        return build_small_student(
            student_cfg.kind,
            teacher,
            student_cfg.embedding_dim,
            student_cfg.hidden,
            student_cfg.layers,
            student_cfg.kernel_sizes,
            student_cfg.dropout,
            student_cfg.init_embeddings,
            teacher.config.pad_token_id or 0,
            per_token=per_token,
            tokenizers=tokenizers,
        ), None
    if student_cfg.init == "encoder":
        return student_from_encoder(student_cfg.name_or_path, teacher, dropout), None
    if student_cfg.init == "random":
        return student_from_config(
            teacher, student_cfg.layers or teacher_layers, student_cfg.hidden, student_cfg.heads, student_cfg.intermediate
        ), None
    kept = student_cfg.keep_layers or default_kept_layers(teacher_layers, student_cfg.layers or min(3, teacher_layers))
    if student_cfg.layers and len(kept) != student_cfg.layers:
        raise BertxError(f"student.layers is {student_cfg.layers} but student.keep_layers lists {len(kept)} layers")
    return student_from_teacher_layers(teacher, kept), kept


SMALL_STUDENT_LR = 2e-3


def check_small_student(config: DistillConfig, task) -> None:
    """The combinations a BiLSTM, CNN or bag student cannot take, refused before any work."""
    kind = config.student.kind
    if kind not in SMALL_KINDS:
        return
    if task.label_kind == "tags" and kind == "bag":
        raise BertxError("student.kind bag: a bag of embeddings sees no context, so it cannot tag tokens; use student.kind bilstm (or cnn) for NER")
    if task.level == "span":
        raise BertxError(
            f"student.kind {kind}: trains sequence tasks (classification, pairs, regression, multi-label) "
            f"and, as a tagger, NER; the teacher is a {task.name} model"
        )
    if config.loss.needs_internals:
        raise BertxError(
            f"student.kind {kind}: has no transformer layers to match; use the output losses only "
            "(loss.soft, loss.hard), not loss.hidden, attention, embedding or value_relation"
        )
    if config.student.keep_layers or config.student.name_or_path or config.student.heads or config.student.intermediate:
        raise BertxError(f"student.kind {kind}: student.keep_layers, name_or_path, heads and intermediate apply to transformer students only")
