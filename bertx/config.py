"""Typed run configs: what a fine-tuning, multi-task, distillation or pretraining run needs, validated before any work starts.

A config comes from a YAML file, from CLI options or from Python; `key=value` overrides with dotted
keys (`train.lr=5e-5`) apply on top. Unknown keys are errors (`extra="forbid"`), so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bertx.errors import BertxError

DEFAULT_DATA_DIR = "../shared/data"


def default_data_dir() -> str:
    """The shared data folder: `$BERTX_DATA_DIR`, else `../shared/data` from the working directory."""
    return os.environ.get("BERTX_DATA_DIR", DEFAULT_DATA_DIR)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    train: Optional[str] = Field(None, description="Training file (TSV, CSV or JSONL). `{data_dir}` expands.")
    dev: Optional[str] = Field(None, description="Dev file evaluated during training. `{data_dir}` expands.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets.")
    text_column: Optional[str] = Field(None, description="Column of the (first) text; default: sentence/text/sentence1.")
    text_pair_column: Optional[str] = Field(None, description="Column of the second text; default: sentence2 if present.")
    label_column: str = Field("label", description="Column of the label.")
    label_separator: str = Field(",", description="Separator between labels of a multi-label example in TSV/CSV.")
    max_length: int = Field(128, ge=8, le=4096, description="Longest tokenised input; longer ones are truncated and counted.")
    max_train_examples: Optional[int] = Field(None, ge=1, description="Use only the first N training examples.")
    max_dev_examples: Optional[int] = Field(None, ge=1, description="Use only the first N dev examples.")
    # token classification (NER)
    tag_scheme: Literal["bio", "iob1"] = Field("bio", description="NER tag scheme of the files; IOB1 is converted to BIO.")
    invalid_tags: Literal["repair", "error"] = Field(
        "repair", description="NER: an I-X after O or another type is read as B-X and counted (repair), or stops the run (error)."
    )
    label_all_subtokens: bool = Field(False, description="NER: label every word piece, not only a word's first.")
    tag_decoding: Literal["viterbi", "argmax"] = Field(
        "viterbi", description="NER: most probable valid BIO sequence (viterbi) or per-word argmax, dangling I- repaired."
    )
    # token classification and QA windows
    doc_stride: Optional[int] = Field(
        None, ge=1, description="Tokens shared by consecutive windows of a long input; default: 128 for QA "
        "(less if the window is small), a quarter of max_length for NER."
    )
    # extractive QA
    max_query_length: int = Field(64, ge=1, description="QA: longest question in tokens; longer ones are cut and counted.")
    max_answer_length: int = Field(30, ge=1, description="QA: longest answer in tokens considered when decoding.")
    n_best: int = Field(20, ge=1, description="QA: start and end candidates per window considered when decoding.")
    train_articles: Optional[str] = Field(None, description="QA: START:END range of SQuAD articles to train on.")
    dev_articles: Optional[str] = Field(None, description="QA: START:END range of SQuAD articles of the dev file.")

    def resolve(self, path: Optional[str]) -> Optional[str]:
        return None if path is None else path.replace("{data_dir}", self.data_dir)


class ModelConfig(_Strict):
    name_or_path: Optional[str] = Field(None, description="Local HF model folder; default: the packaged all-MiniLM-L6-v2.")
    freeze_word_embeddings: bool = Field(
        True,
        description="Keep the word-embedding matrix fixed: half of MiniLM's weights, little to gain on "
        "small data, and skipping its optimizer update makes each step much cheaper.",
    )
    cls_only_last_layer: bool = Field(
        True, description="Compute the last layer for the [CLS] position only (all the head reads): ~14% less work."
    )
    dropout: Optional[float] = Field(
        0.0, ge=0.0, lt=1.0,
        description="Encoder dropout (hidden and attention); null keeps the model's own. 0 by default: in short "
        "runs on little data it slows learning more than it regularises (+1.3 points on 8,000 SST-2 sentences).",
    )


class TrainConfig(_Strict):
    epochs: float = Field(3.0, gt=0, description="Passes over the training data (fractions allowed).")
    batch_size: int = Field(32, ge=1, description="Global batch size per optimizer step (all processes).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate (small encoders like MiniLM want ~1e-4).")
    head_lr: Optional[float] = Field(None, gt=0, description="Learning rate of the new head; default: lr.")
    layer_decay: float = Field(1.0, gt=0, le=1, description="Layer-wise lr decay: each layer below the top gets this factor.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps with linear warm-up.")
    max_grad_norm: Optional[float] = Field(1.0, gt=0, description="Gradient clipping norm; null disables it.")
    eval_steps: Optional[int] = Field(None, ge=1, description="Evaluate on dev every N steps (and at each epoch end).")
    save_steps: Optional[int] = Field(200, ge=1, description="Write a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(1, ge=1, description="How many of the latest checkpoints to keep (a damaged one falls back to the next).")
    logging_steps: int = Field(20, ge=1, description="Append a training-loss line to the log every N steps.")
    metric_for_best: Optional[str] = Field(None, description="Dev metric that picks the best checkpoint; default: the task's.")
    early_stopping_patience: Optional[int] = Field(None, ge=1, description="Stop after N evaluations without improvement.")
    seed: int = Field(42, description="Seed for initialisation, data order and dropout.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Mixed precision (bf16/fp16 on GPU).")
    bucket_size: int = Field(64, ge=1, description="Batches per length bucket: sorts this many batches by length.")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after N optimizer steps (overrides epochs).")
    head_init: Literal["probe", "random"] = Field(
        "probe", description="probe: fit the new head on frozen features first (LP-FT); random: HF's init."
    )
    probe_examples: int = Field(1000, ge=2, description="Training examples the probe head is fitted on.")


def _head_warmup_field():
    return Field(
        0, ge=0, description="First N steps: only the MLM head learns (the encoder's output is detached), so a new "
        "head's random gradients do not disturb a trained encoder (an encoder saved without an MLM head, like MiniLM).",
    )


class MLMSettings(_Strict):
    """Masked-LM on unlabelled text next to a trained encoder: sequences, masking, head warm-up."""

    max_length: int = Field(128, ge=8, le=4096, description="Tokens per MLM sequence (packed, no padding).")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked.")
    whole_word_mask: bool = Field(True, description="Mask all pieces of a word together.")
    head_warmup_steps: int = _head_warmup_field()


class AuxMLMSettings(MLMSettings):
    """How the auxiliary masked-LM loss is weighted and batched (the text comes separately)."""

    weight: float = Field(0.5, gt=0, description="Loss = task loss + weight x MLM loss.")
    batch_size: Optional[int] = Field(None, ge=1, description="MLM sequences per step; default: the task's batch size.")


class AuxMLMConfig(AuxMLMSettings):
    """An auxiliary masked-LM loss on unlabelled text during fine-tuning (UDALM-style mixed objective)."""

    text: list[str] = Field(..., min_length=1, description="Plain-text files (`{data_dir}` expands).")
    documents: Literal["blank", "line", "wikitext"] = Field("line", description="How documents are delimited in the text files.")


class FinetuneConfig(_Strict):
    task: str = Field("classification", description="classification, pair-classification, regression, multilabel, ner or qa.")
    output: str = Field("runs/finetune", description="Output folder: the HF model, run config, log and checkpoints.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    aux_mlm: Optional[AuxMLMConfig] = Field(None, description="Auxiliary masked-LM loss on unlabelled text.")

    @model_validator(mode="after")
    def _known_task(self) -> "FinetuneConfig":
        from bertx.tasks import TASKS

        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        return self


class TaskEntry(_Strict):
    """One task of a multi-task run (or of an intermediate-task matrix)."""

    name: str = Field(..., min_length=1, description="Task name: names its head, its metrics and its exported model.")
    kind: str = Field(..., description="classification, pair-classification, regression, multilabel, ner or qa.")
    train: str = Field(..., description="Training file. `{data_dir}` expands.")
    dev: Optional[str] = Field(None, description="Dev file, evaluated during training. `{data_dir}` expands.")
    weight: float = Field(1.0, gt=0, description="This task's loss is multiplied by the weight.")
    metric: Optional[str] = Field(None, description="Main dev metric (enters the mean that picks the best checkpoint); default: the kind's.")
    head: Optional[str] = Field(None, description="Head name; tasks naming the same head share it (same kind and labels). Default: the task name.")
    data: DataConfig = Field(default_factory=DataConfig, description="Reading options (max_length, columns, ...) for this task.")

    @property
    def head_name(self) -> str:
        return self.head or self.name

    def finetune_config(self, data_dir: str, model: "ModelConfig", train: "TrainConfig", output: str) -> "FinetuneConfig":
        """This task as a single-task run config: what its kind needs to read, head and score it."""
        data = self.data.model_copy(update={"train": self.train, "dev": self.dev, "data_dir": data_dir})
        return FinetuneConfig(task=self.kind, output=output, data=data, model=model.model_copy(),
                              train=train.model_copy(update={"metric_for_best": self.metric}))

    @model_validator(mode="after")
    def _known_kind(self) -> "TaskEntry":
        from bertx.tasks import TASKS

        if self.kind not in TASKS:
            raise ValueError(f"task {self.name!r}: unknown kind {self.kind!r}; choose one of {', '.join(TASKS)}")
        if self.data.train or self.data.dev:
            raise ValueError(f"task {self.name!r}: give the files as `train:`/`dev:` of the task, not inside `data:`")
        return self


class SamplingConfig(_Strict):
    strategy: Literal["proportional", "temperature", "uniform", "round-robin", "annealed"] = Field(
        "proportional",
        description="Which task the next batch comes from: in proportion to task size; size^(1/T); uniformly; in "
        "turn; or annealed from proportional (start) to nearly uniform (end, size^0.2).",
    )
    temperature: float = Field(2.0, gt=0, description="T of the temperature strategy (1 = proportional, large = uniform).")
    tasks_per_step: int = Field(
        1, ge=1, description="Batches, each from its own sampled task, whose gradients are accumulated into one optimizer step."
    )


def _unique_names(entries: list, what: str = "task") -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ValueError(f"{what} name {entry.name!r} appears twice; {what} names must be unique")
        seen.add(entry.name)


class MultitaskConfig(_Strict):
    output: str = Field("runs/multitask", description="Output folder: shared encoder, heads, run config, log, checkpoints.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets (`{data_dir}` in paths).")
    tasks: list[TaskEntry] = Field(..., min_length=1, description="The tasks; one head each unless they name a shared head.")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="Optimisation, shared by all tasks. An epoch is as many batches as all tasks hold together; "
        "batch_size is per task batch (grad_accum splits it into micro-batches, as in fine-tuning).",
    )

    @model_validator(mode="after")
    def _consistent_tasks(self) -> "MultitaskConfig":
        _unique_names(self.tasks)
        heads: dict[str, TaskEntry] = {}
        for entry in self.tasks:
            other = heads.setdefault(entry.head_name, entry)
            if other.kind != entry.kind:
                raise ValueError(f"tasks {other.name!r} ({other.kind}) and {entry.name!r} ({entry.kind}) cannot share "
                                 f"head {entry.head_name!r}: their kinds differ")
        if self.train.metric_for_best:
            raise ValueError("train.metric_for_best does not apply to multi-task runs: the best checkpoint has the best "
                             "mean of the tasks' main metrics; set a task's `metric:` instead")
        return self

    def task_config(self, entry: TaskEntry, output: str | None = None) -> "FinetuneConfig":
        """The single-task run config of one task (its output defaults to a subfolder of the run's)."""
        return entry.finetune_config(self.data_dir, self.model, self.train, output or f"{self.output}/{entry.name}")


class IntermediateConfig(_Strict):
    """Intermediate-task transfer: for every (source, target) pair, train on the source, then fine-tune on the target."""

    output: str = Field("runs/intermediate", description="Output folder: the matrix (JSON, Markdown, PNG) and per-run metrics.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets (`{data_dir}` in paths).")
    tasks: list[TaskEntry] = Field(..., min_length=2, description="Tasks used both as sources and as targets.")
    targets: Optional[list[str]] = Field(None, description="Task names used as targets; default: all tasks.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation of both stages.")
    source_train: Optional[TrainConfig] = Field(None, description="Optimisation of the source stage, if it differs.")
    keep_models: bool = Field(False, description="Keep every target model (otherwise only metrics and the source encoders).")

    @model_validator(mode="after")
    def _consistent_tasks(self) -> "IntermediateConfig":
        _unique_names(self.tasks)
        names = [entry.name for entry in self.tasks]
        for name in self.targets or []:
            if name not in names:
                raise ValueError(f"target {name!r} is not one of the tasks ({', '.join(names)})")
        for entry in self.tasks:
            if (self.targets is None or entry.name in self.targets) and not entry.dev:
                raise ValueError(f"task {entry.name!r} is a target and needs a dev file")
        return self

    def task_config(self, entry: TaskEntry, output: str, train: TrainConfig | None = None, model: str | None = None):
        """One stage's run config: the task, starting from `model` (default: the config's encoder)."""
        model_config = self.model.model_copy(update={"name_or_path": model}) if model else self.model
        return entry.finetune_config(self.data_dir, model_config, train or self.train, output)


class StudentConfig(_Strict):
    """The student: the teacher's layers, a smaller random model, or another encoder folder."""

    layers: Optional[int] = Field(None, ge=1, description="Student layers; alone: that many teacher layers, copied (default 3).")
    keep_layers: Optional[list[int]] = Field(None, description="Teacher layers (0-based) the student starts from; default: evenly spread, ending at the top.")
    hidden: Optional[int] = Field(None, ge=8, description="Narrower student: hidden size (randomly initialised).")
    heads: Optional[int] = Field(None, ge=1, description="Attention heads of a narrower student (default hidden / 64).")
    intermediate: Optional[int] = Field(None, ge=8, description="Feed-forward size of a narrower student (default 4 x hidden).")
    name_or_path: Optional[str] = Field(None, description="Another pretrained encoder folder as the student (new head).")
    allow_other_tokenizer: bool = Field(
        False, description="Accept a student whose tokenizer differs from the teacher's (sequence tasks, logit loss only)."
    )

    @property
    def init(self) -> str:
        if self.name_or_path:
            return "encoder"
        return "random" if (self.hidden or self.heads or self.intermediate) else "teacher"


class DistillLossConfig(_Strict):
    """Weights of the distillation losses (0 turns one off) and their settings."""

    temperature: float = Field(2.0, gt=0, description="Softening temperature of the soft-target loss.")
    soft: float = Field(1.0, ge=0, description="Soft targets: KL to the teacher's softened outputs (MSE for regression).")
    hard: float = Field(0.5, ge=0, description="Hard labels: the task's own loss on the gold labels.")
    hidden: float = Field(0.0, ge=0, description="MSE between mapped hidden states (learned projection if widths differ).")
    attention: float = Field(0.0, ge=0, description="KL between mapped layers' attention distributions.")
    embedding: float = Field(0.0, ge=0, description="MSE between the embedding layers' outputs.")
    value_relation: float = Field(0.0, ge=0, description="MiniLM: KL between the last layers' value-value relations.")
    layer_map: Optional[list[tuple[int, int]]] = Field(
        None, description="(student layer, teacher layer) pairs, 1-based (0 = embeddings) for the hidden and "
        "attention losses; default: each student layer to the teacher layer it was copied from, or spread evenly."
    )
    relation_heads: Optional[int] = Field(None, ge=1, description="Relation heads of the value-relation loss (default: the teacher's heads).")

    @property
    def needs_internals(self) -> bool:
        """Whether the loss reads hidden states, attentions or values (not just the outputs)."""
        return bool(self.hidden or self.attention or self.embedding or self.value_relation)


class DistillConfig(_Strict):
    teacher: str = Field(..., description="Fine-tuned teacher folder (`bertx finetune` output or any HF task model).")
    task: Optional[str] = Field(None, description="Task kind; default: the teacher's. Must match the teacher's head.")
    output: str = Field("runs/distill", description="Output folder: the student (HF folder), report, log, checkpoints.")
    data: DataConfig = Field(default_factory=DataConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    loss: DistillLossConfig = Field(default_factory=DistillLossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache_teacher: bool = Field(
        True, description="Compute the teacher's outputs once, before training (when only output losses are on)."
    )
    unlabelled: list[str] = Field(
        default_factory=list, description="Extra files of unlabelled text (one per line, or TSV/CSV/JSONL text columns); the "
        "teacher labels them and they join the training data (sequence tasks)."
    )
    baseline: bool = Field(True, description="Also train the same student without a teacher, for the report.")

    @model_validator(mode="after")
    def _sensible(self) -> "DistillConfig":
        from bertx.tasks import TASKS

        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if not (self.loss.soft or self.loss.hard or self.loss.needs_internals):
            raise ValueError("every loss weight is 0: nothing to learn from")
        if self.student.keep_layers and self.student.init != "teacher":
            raise ValueError("student.keep_layers applies to students made from the teacher's layers only")
        return self


class PretrainDataConfig(_Strict):
    train: list[str] = Field(default_factory=list, description="Plain-text training files (`{data_dir}` expands).")
    eval: list[str] = Field(default_factory=list, description="Held-out text files; default: the last documents of the training text.")
    eval_fraction: float = Field(0.02, ge=0, lt=0.5, description="Share of documents held out when no eval file is given.")
    max_eval_sequences: int = Field(1000, ge=1, description="Held-out sequences scored at each evaluation.")
    documents: Literal["blank", "line", "wikitext"] = Field(
        "blank", description="Documents are separated by blank lines, are one per line, or are WikiText articles."
    )
    max_length: int = Field(128, ge=8, le=4096, description="Tokens per sequence, [CLS] and [SEP] included.")
    short_seq_prob: float = Field(0.1, ge=0, le=1, description="NSP/SOP: chance of a shorter target length.")
    cache_dir: Optional[str] = Field(None, description="Where tokenised corpora are cached; default ~/.cache/bertx/corpus.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets.")

    def resolve(self, paths: list[str]) -> list[str]:
        return [p.replace("{data_dir}", self.data_dir) for p in paths]


class PretrainModelConfig(_Strict):
    name_or_path: Optional[str] = Field(
        None, description="Continue pretraining this local HF folder (domain-adaptive); default, when no size is given: the packaged MiniLM."
    )
    preset: Optional[str] = Field(None, description="From scratch: tiny, mini, small, medium or base.")
    layers: Optional[int] = Field(None, ge=1, description="From scratch: transformer layers (overrides the preset).")
    hidden: Optional[int] = Field(None, ge=8, description="From scratch: hidden size (overrides the preset).")
    heads: Optional[int] = Field(None, ge=1, description="From scratch: attention heads (default hidden / 64).")
    tokenizer: Optional[str] = Field(None, description="Tokenizer folder; default: the model's (needed from scratch).")
    dropout: float = Field(0.1, ge=0, lt=1, description="From scratch: hidden and attention dropout.")

    @property
    def from_scratch(self) -> bool:
        """A size was given: build a new model. Otherwise continue `name_or_path` (default: the packaged MiniLM)."""
        return bool(self.preset or self.layers or self.hidden)


class ObjectiveConfig(_Strict):
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked (80% [MASK], 10% random, 10% kept).")
    whole_word_mask: bool = Field(True, description="Mask all pieces of a word together.")
    sentence_task: Literal["none", "nsp", "sop"] = Field(
        "none", description="none: MLM alone on packed blocks; nsp: next-sentence prediction; sop: sentence-order prediction."
    )


class PretrainTrainConfig(_Strict):
    epochs: float = Field(1.0, gt=0, description="Passes over the training text (fractions allowed).")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after N optimizer steps (overrides epochs).")
    batch_size: int = Field(64, ge=1, description="Sequences per optimizer step (all processes).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate (from scratch ~5e-4; continued ~5e-5 to 1e-4).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps with linear warm-up.")
    max_grad_norm: Optional[float] = Field(1.0, gt=0, description="Gradient clipping norm; null disables it.")
    eval_steps: Optional[int] = Field(500, ge=1, description="Evaluate the held-out text every N steps (and at the end).")
    save_steps: Optional[int] = Field(500, ge=1, description="Write a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(1, ge=1, description="How many of the latest checkpoints to keep (a damaged one falls back to the next).")
    logging_steps: int = Field(20, ge=1, description="Append a training-loss line to the log every N steps.")
    seed: int = Field(42, description="Seed for initialisation, instances, masking and dropout.")
    head_warmup_steps: int = _head_warmup_field()
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Mixed precision: bf16 on GPUs and on CPUs with AVX512-BF16/AMX (~1.5x here), fp16 on GPUs."
    )


class PretrainConfig(_Strict):
    output: str = Field("runs/pretrain", description="Output folder: the HF model, run config, log and checkpoints.")
    data: PretrainDataConfig = Field(default_factory=PretrainDataConfig)
    model: PretrainModelConfig = Field(default_factory=PretrainModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    train: PretrainTrainConfig = Field(default_factory=PretrainTrainConfig)

    @model_validator(mode="after")
    def _one_starting_point(self) -> "PretrainConfig":
        if self.model.name_or_path and self.model.from_scratch:
            raise ValueError("give either model.name_or_path (continue) or a size (preset/layers/hidden), not both")
        if self.model.from_scratch and not self.model.tokenizer:
            raise ValueError("pretraining from scratch needs a tokenizer folder (model.tokenizer; see `bertx tokenizer train`)")
        return self


class TransferSource(_Strict):
    """A domain or language with labelled training data."""

    name: str = Field(..., min_length=1, description="Domain or language name; a target of the same name is its in-domain test.")
    train: str = Field(..., description="Labelled training file. `{data_dir}` expands.")
    dev: Optional[str] = Field(None, description="In-domain dev file that picks the best checkpoint (never a target's labels).")


class TransferTarget(_Strict):
    """A domain or language the trained models are evaluated on, zero-shot."""

    name: str = Field(..., min_length=1, description="Domain or language name.")
    eval: str = Field(..., description="Labelled file the models are scored on. `{data_dir}` expands.")
    unlabelled: list[str] = Field(
        default_factory=list, description="The target's unlabelled text for the adaptation methods: plain text files, or "
        "labelled TSV/CSV/JSONL files whose labels are dropped (for example the target's training file).",
    )


class DAPTSettings(MLMSettings):
    """Domain-adaptive pretraining: continue the encoder's masked-LM training on the target's unlabelled text."""

    epochs: float = Field(3.0, gt=0, description="Passes over the target's text.")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after N steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, description="Sequences per step.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")


class TransferConfig(_Strict):
    """Cross-domain / cross-lingual transfer: train on sources, score zero-shot on targets, as a matrix per method."""

    output: str = Field("runs/transfer", description="Output folder: matrices (JSON, Markdown, PNG), summary, per-run metrics.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets (`{data_dir}` in paths).")
    task: str = Field("classification", description="Task kind of every source and target.")
    sources: list[TransferSource] = Field(..., min_length=1)
    targets: list[TransferTarget] = Field(..., min_length=1)
    train_on: Literal["each", "all", "each+all"] = Field(
        "each", description="One model per source (each), one on all sources together (all: a row named `all`), or both."
    )
    methods: list[Literal["plain", "dapt", "aux-mlm", "dapt+aux-mlm"]] = Field(
        default_factory=lambda: ["plain"],
        description="plain fine-tuning; dapt: masked-LM on the target's unlabelled text first; aux-mlm: fine-tuning plus a "
        "masked-LM loss on the target's text (UDALM-style); dapt+aux-mlm: both. Adaptation methods train once per (source, target).",
    )
    unlabelled_documents: Literal["blank", "line", "wikitext"] = Field(
        "line", description="How documents are laid out in the targets' plain-text unlabelled files."
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Reading options shared by all files (max_length, columns, ...).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning on the sources.")
    dapt: DAPTSettings = Field(default_factory=DAPTSettings)
    aux_mlm: AuxMLMSettings = Field(default_factory=AuxMLMSettings)
    keep_models: bool = Field(False, description="Keep every trained model (otherwise only the scores and the DAPT encoders).")

    @model_validator(mode="after")
    def _consistent(self) -> "TransferConfig":
        from bertx.tasks import TASKS

        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        _unique_names(self.sources, "source")
        _unique_names(self.targets, "target")
        if "all" in [s.name for s in self.sources] and self.train_on != "each":
            raise ValueError("a source may not be named 'all' when train_on includes the joint row `all`")
        if self.data.train or self.data.dev:
            raise ValueError("give files as `train:`/`dev:` of a source and `eval:` of a target, not inside `data:`")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("a method is listed twice")
        if self.train_on != "each" and any("aux-mlm" in m for m in self.methods):
            raise ValueError("the joint row (train_on: all) is trained multi-task, which has no auxiliary MLM loss; "
                             "use train_on: each with aux-mlm")
        return self

    def source_config(self, source: TransferSource, output: str, model: Optional[str] = None,
                      aux_text: Optional[list[str]] = None) -> FinetuneConfig:
        """The fine-tuning run of one source: from `model` (default: the config's), optionally with an auxiliary MLM loss."""
        data = self.data.model_copy(update={"train": source.train, "dev": source.dev, "data_dir": self.data_dir})
        model_config = self.model.model_copy(update={"name_or_path": model}) if model else self.model.model_copy()
        aux = None
        if aux_text:
            aux = AuxMLMConfig(text=aux_text, documents=self.unlabelled_documents, **self.aux_mlm.model_dump())
        return FinetuneConfig(task=self.task, output=output, data=data, model=model_config, train=self.train.model_copy(), aux_mlm=aux)

    def resolve(self, path: str) -> str:
        return path.replace("{data_dir}", self.data_dir)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise BertxError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply `key.sub=value` strings to a config tree; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item:
            raise BertxError(f"override {item!r} is not of the form key=value (for example train.lr=5e-5)")
        key, raw = item.split("=", 1)
        # A value with a colon stays a string: YAML would read "0:380" as a base-60 number or "6:" as a map.
        value = raw if ":" in raw else yaml.safe_load(raw) if raw.strip() else None
        _set_dotted(tree, key.strip(), value)
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, schema: type[_Strict] = FinetuneConfig):
    """Read a YAML config (or start from defaults), apply overrides and validate.

    Args:
        path: YAML file, or None for the defaults.
        overrides: `key=value` strings with dotted keys.
        schema: the config class (FinetuneConfig, PretrainConfig).

    Returns:
        The validated config.
    """
    tree: dict = {}
    if path is not None:
        try:
            tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise BertxError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise BertxError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(tree, dict):
            raise BertxError(f"{path}: a config must be a mapping of keys to values")
    apply_overrides(tree, overrides or [])
    return validate_config(tree, source=str(path) if path else "config", schema=schema)


def validate_config(tree: dict, source: str = "config", schema: type[_Strict] = FinetuneConfig):
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise BertxError(f"{source}: {where}: {first['msg']}") from None
