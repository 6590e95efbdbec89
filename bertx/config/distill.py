"""The distillation run config: teacher, student, losses."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from bertx.config.base import DataConfig, StrictModel, TrainConfig, check_task_name


class StudentConfig(StrictModel):
    """The student: the teacher's layers, a smaller random model, another encoder folder, or a network that
    is not a transformer (BiLSTM, CNN, bag of embeddings)."""

    kind: Literal["transformer", "bilstm", "cnn", "bag"] = Field(
        "transformer", description="transformer (BERT layers), or bilstm, cnn, bag: non-transformer sequence students on the teacher's WordPiece ids."
    )
    embedding_dim: Optional[int] = Field(None, ge=8, description="bilstm/cnn/bag: embedding width (default: 128 for cnn, the teacher's otherwise).")
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5], description="cnn: convolution widths.")
    init_embeddings: bool = Field(
        True,
        description="bilstm/cnn/bag: start the embeddings from the teacher's word "
        "embeddings (projected onto the top principal directions when narrower).",
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="bilstm/cnn/bag: dropout on embeddings and the head.")
    layers: Optional[int] = Field(None, ge=1, description="Student layers; alone: that many teacher layers, copied (default 3).")
    keep_layers: Optional[list[int]] = Field(
        None, description="Teacher layers (0-based) the student starts from; default: evenly spread, ending at the top."
    )
    hidden: Optional[int] = Field(None, ge=8, description="Narrower student: hidden size (randomly initialised).")
    heads: Optional[int] = Field(None, ge=1, description="Attention heads of a narrower student (default hidden / 64).")
    intermediate: Optional[int] = Field(None, ge=8, description="Feed-forward size of a narrower student (default 4 x hidden).")
    name_or_path: Optional[str] = Field(None, description="Another pretrained encoder folder as the student (new head).")
    tokenizer: Optional[str] = Field(
        None,
        description="bilstm/cnn/bag, sequence tasks: the student's own tokenizer: `train` (a WordPiece learnt from the "
        "training and unlabelled texts, vocab_size pieces) or a tokenizer folder; the teacher reads the same texts with its own.",
    )
    vocab_size: int = Field(8000, ge=16, le=200_000, description="student.tokenizer train: the size of the WordPiece vocabulary learnt.")
    allow_other_tokenizer: bool = Field(
        False, description="Accept a student whose tokenizer differs from the teacher's (sequence tasks, logit loss only)."
    )

    @model_validator(mode="before")
    @classmethod
    def _kind_by_name(cls, values):
        """`--student bilstm|cnn|bag` names a kind of student (unless a folder of that name exists)."""
        import os

        if isinstance(values, dict) and values.get("name_or_path") in ("bilstm", "cnn", "bag") and not os.path.isdir(values["name_or_path"]):
            values = {**values, "kind": values["name_or_path"], "name_or_path": None}
        return values

    @property
    def init(self) -> str:
        if self.kind != "transformer":
            return self.kind
        if self.name_or_path:
            return "encoder"
        return "random" if (self.hidden or self.heads or self.intermediate) else "teacher"


class DistillLossConfig(StrictModel):
    """Weights of the distillation losses (0 turns one off) and their settings."""

    temperature: float = Field(2.0, gt=0, description="Softening temperature of the soft-target loss.")
    soft: float = Field(1.0, ge=0, description="Soft targets: KL to the teacher's softened outputs (MSE for regression).")
    hard: float = Field(0.5, ge=0, description="Hard labels: the task's own loss on the gold labels.")
    temperature_end: Optional[float] = Field(
        None, gt=0, description="Anneal the temperature linearly from `temperature` to this by the last step (default: constant)."
    )
    hard_end: Optional[float] = Field(
        None, ge=0, description="Move the hard-label weight linearly from `hard` to this by the last step (default: constant)."
    )
    hidden: float = Field(0.0, ge=0, description="MSE between mapped hidden states (learned projection if widths differ).")
    cosine: float = Field(0.0, ge=0, description="1 - cosine between mapped hidden states (their direction, not their size).")
    patient: float = Field(0.0, ge=0, description="Patient KD: distance between mapped layers' normalised [CLS] states.")
    attention: float = Field(0.0, ge=0, description="KL between mapped layers' attention distributions.")
    embedding: float = Field(0.0, ge=0, description="MSE between the embedding layers' outputs.")
    value_relation: float = Field(0.0, ge=0, description="MiniLM: KL between the last layers' value-value relations.")
    layer_map: Optional[list[tuple[int, int]]] = Field(
        None,
        description="(student layer, teacher layer) pairs, 1-based (0 = embeddings) for the hidden and "
        "attention losses; default: each student layer to the teacher layer it was copied from, or spread evenly.",
    )
    relation_heads: Optional[int] = Field(None, ge=1, description="Relation heads of the value-relation loss (default: the teacher's heads).")

    def hard_only(self) -> "DistillLossConfig":
        """The same config with every term but the gold labels off: training without a teacher."""
        weights = ("soft", "hidden", "cosine", "patient", "attention", "embedding", "value_relation")
        return self.model_copy(update={**dict.fromkeys(weights, 0.0), "hard": 1.0, "hard_end": None})

    @property
    def uses_hard(self) -> bool:
        """The gold labels enter the loss at some step."""
        return bool(self.hard or self.hard_end)

    @property
    def needs_internals(self) -> bool:
        """Whether the loss reads hidden states, attentions or values (not just the outputs)."""
        return bool(self.reads_hidden_states or self.attention or self.value_relation)

    @property
    def reads_hidden_states(self) -> bool:
        return bool(self.hidden or self.embedding or self.cosine or self.patient)


class LabellingConfig(StrictModel):
    """Where the teacher labels the transfer set (training text, augmented variants, unlabelled text)."""

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local (this process) or ray: the teacher's outputs computed by a pool of Ray actors, the same "
        "length-sorted batches as locally, so the cache is the same.",
    )
    address: Optional[str] = Field(None, description="Ray: the cluster to join (auto, ray://HOST:PORT); default: a private one.")
    workers: Optional[int] = Field(None, ge=1, description="Ray: actors, one teacher load each (default: one per core).")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="The teacher's arithmetic while labelling: auto tries bf16 where the CPU runs it fast and keeps "
        "it when it agrees with fp32 on a sample (min_agreement), else fp32.",
    )
    teacher_export: Optional[str] = Field(
        None,
        description="An ONNX export of the teacher (`bertx export --quantize int8`): it labels the transfer set when it "
        "agrees with the PyTorch teacher on a sample (min_agreement); tried first, it is the fastest.",
    )
    min_agreement: float = Field(
        0.99,
        gt=0,
        le=1,
        description="Share of sample examples on which a faster teacher must decide as the fp32 teacher does (labels; tags per token).",
    )
    store: bool = Field(
        True,
        description="Keep the teacher's outputs on disk by content (teacher weights, arithmetic, token "
        "ids): another student or run on the same transfer set reuses them instead of labelling again.",
    )


class DistillConfig(StrictModel):
    teacher: str = Field(
        ...,
        description="Fine-tuned teacher folder (any `bertx finetune`, `fewshot` or PEFT run, or any HF task model), or a "
        "`bertx multitask` run: its student is one multi-task model with the same heads.",
    )
    teachers: list[str] = Field(
        default_factory=list,
        description="More teachers of the same task, labels and tokenizer (other seeds, regimes, encoders): with "
        "`teacher` they label the transfer set as one ensemble, their outputs averaged as probabilities.",
    )
    teacher_weights: Union[Literal["equal", "dev"], list[float]] = Field(
        "equal",
        description="How the ensemble weighs its teachers: equal, dev (by each teacher's main dev metric in its "
        "metrics.json), or one weight per teacher, `teacher` first.",
    )
    task: Optional[str] = Field(None, description="Task kind; default: the teacher's. Must match the teacher's head.")
    output: str = Field("runs/distill", description="Output folder: the student (HF folder), report, log, checkpoints.")
    data: DataConfig = Field(default_factory=DataConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    loss: DistillLossConfig = Field(default_factory=DistillLossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache_teacher: bool = Field(True, description="Compute the teacher's outputs once, before training (when only output losses are on).")
    unlabelled: list[str] = Field(
        default_factory=list,
        description="Extra files of unlabelled text (one per line, or TSV/CSV/JSONL text columns); the "
        "teacher labels them and they join the training data (sequence tasks).",
    )
    augment: int = Field(
        0,
        ge=0,
        description="Sequence tasks: N teacher-labelled variants of every training text (Tang et "
        "al.: masking, same-class word replacement, n-gram sampling), deterministic from the seed.",
    )
    augment_rule: Literal["shape", "neighbours"] = Field(
        "shape",
        description="How augmentation replaces a word: a training word of the same shape, or one of its nearest "
        "training words in the teacher's embedding space (neighbours).",
    )
    share_texts: bool = Field(
        True,
        description="A multi-task teacher: each sequence head also learns its teacher head's outputs on the other "
        "tasks' training texts of the same shape (single texts or pairs).",
    )
    baseline: bool = Field(True, description="Also train the same student without a teacher, for the report.")
    labelling: LabellingConfig = Field(default_factory=LabellingConfig)

    @model_validator(mode="after")
    def _sensible(self) -> "DistillConfig":
        if self.task is not None:
            check_task_name(self.task)
        if not (self.loss.soft or self.loss.uses_hard or self.loss.needs_internals):
            raise ValueError("every loss weight is 0: nothing to learn from")
        if self.student.keep_layers and self.student.init != "teacher":
            raise ValueError("student.keep_layers applies to students made from the teacher's layers only")
        if self.teachers:
            if self.loss.needs_internals or not self.cache_teacher:
                raise ValueError("several teachers teach through their outputs only: soft and hard losses, cache_teacher: true")
            if self.labelling.engine == "ray":
                raise ValueError("several teachers label locally (labelling.engine: local)")
        if isinstance(self.teacher_weights, list):
            if len(self.teacher_weights) != 1 + len(self.teachers):
                raise ValueError(f"teacher_weights: {len(self.teacher_weights)} weights for {1 + len(self.teachers)} teachers")
            if min(self.teacher_weights) < 0 or sum(self.teacher_weights) <= 0:
                raise ValueError("teacher_weights: weights are at least 0 and not all 0")
        return self
