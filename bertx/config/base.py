"""Blocks shared by every run config: strict models, data paths, the model, the training block.

A config comes from a YAML file, from CLI options or from Python; `key=value` overrides with dotted
keys (`train.lr=5e-5`) apply on top. Unknown keys are errors (`extra="forbid"`), so a typo never
silently falls back to a default. Each recipe's config (`config/<recipe>.py`) composes these blocks.
"""

from __future__ import annotations

import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DATA_DIR = "../shared/data"


def default_data_dir() -> str:
    """The shared data folder: `$BERTX_DATA_DIR`, else `../shared/data` from the working directory."""
    return os.environ.get("BERTX_DATA_DIR", DEFAULT_DATA_DIR)


def resolve_data_path(path: Optional[str], data_dir: str) -> Optional[str]:
    """The one place `{data_dir}` in a configured path is expanded. Pure: a dataset reference
    (`hf:NAME[:CONFIG]:SPLIT`) stays a reference; the recipe that reads it makes it a file
    (`data.hf_datasets.local_file`)."""
    return None if path is None else path.replace("{data_dir}", data_dir)


def check_task_name(name: str, owner: str = "") -> None:
    """A task kind must be one bertx knows (raised as a validation error naming the owner)."""
    from bertx.tasks import TASKS

    if name not in TASKS:
        raise ValueError(f"{owner}unknown {'kind' if owner else 'task'} {name!r}; choose one of {', '.join(TASKS)}")


def check_unique_names(entries: list, what: str = "task") -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ValueError(f"{what} name {entry.name!r} appears twice; {what} names must be unique")
        seen.add(entry.name)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
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
        None,
        ge=1,
        description="Tokens shared by consecutive windows of a long input; default: 128 for QA "
        "(less if the window is small), a quarter of max_length for NER.",
    )
    # extractive QA
    max_query_length: int = Field(64, ge=1, description="QA: longest question in tokens; longer ones are cut and counted.")
    max_answer_length: int = Field(30, ge=1, description="QA: longest answer in tokens considered when decoding.")
    n_best: int = Field(20, ge=1, description="QA: start and end candidates per window considered when decoding.")
    train_articles: Optional[str] = Field(None, description="QA: START:END range of SQuAD articles to train on.")
    dev_articles: Optional[str] = Field(None, description="QA: START:END range of SQuAD articles of the dev file.")

    def resolve(self, path: Optional[str]) -> Optional[str]:
        return resolve_data_path(path, self.data_dir)


class ModelConfig(StrictModel):
    name_or_path: Optional[str] = Field(None, description="Local HF model folder; default: the packaged all-MiniLM-L6-v2.")
    freeze_word_embeddings: bool = Field(
        True,
        description="Keep the word-embedding matrix fixed: half of MiniLM's weights, little to gain on "
        "small data, and skipping its optimizer update makes each step much cheaper.",
    )
    cls_only_last_layer: bool = Field(True, description="Compute the last layer for the [CLS] position only (all the head reads): ~14% less work.")
    dropout: Optional[float] = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Encoder dropout (hidden and attention); null keeps the model's own. 0 by default: in short "
        "runs on little data it slows learning more than it regularises (+1.3 points on 8,000 SST-2 sentences).",
    )


class TrainingBlock(StrictModel):
    """What every training loop needs: length, batch, optimiser, schedule, evaluation and checkpoint cadence."""

    epochs: float = Field(3.0, gt=0, description="Passes over the training data (fractions allowed).")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after N optimizer steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, description="Global batch size per optimizer step (all processes).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate (small encoders like MiniLM want ~1e-4).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps with linear warm-up.")
    max_grad_norm: Optional[float] = Field(1.0, gt=0, description="Gradient clipping norm; null disables it.")
    eval_steps: Optional[int] = Field(None, ge=1, description="Evaluate on dev every N steps (and at each epoch end).")
    save_steps: Optional[int] = Field(200, ge=1, description="Write a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(1, ge=1, description="How many of the latest checkpoints to keep (a damaged one falls back to the next).")
    logging_steps: int = Field(20, ge=1, description="Append a training-loss line to the log every N steps.")
    seed: int = Field(42, description="Seed for initialisation, data order, masking and dropout.")
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="Trackers that receive the losses, learning rate, throughput, dev metrics and the "
        "config as hyper-parameters: tensorboard (OUTPUT/tensorboard) and/or mlflow ($MLFLOW_TRACKING_URI, else OUTPUT/mlflow.db).",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Mixed precision. auto: bf16 autocast where the hardware runs it fast (a GPU with bf16, a CPU "
        "with AVX512-BF16 or AMX), fp32 elsewhere; $BERTX_PRECISION overrides auto. bf16 or fp16 (GPUs) force it.",
    )


class TrainConfig(TrainingBlock):
    """Training a task model: the shared block plus heads, early stopping and length bucketing."""

    head_lr: Optional[float] = Field(None, gt=0, description="Learning rate of the new head; default: lr.")
    layer_decay: float = Field(1.0, gt=0, le=1, description="Layer-wise lr decay: each layer below the top gets this factor.")
    metric_for_best: Optional[str] = Field(None, description="Dev metric that picks the best checkpoint; default: the task's.")
    early_stopping_patience: Optional[int] = Field(None, ge=1, description="Stop after N evaluations without improvement.")
    bucket_size: int = Field(64, ge=1, description="Batches per length bucket: sorts this many batches by length.")
    head_init: Literal["probe", "random"] = Field("probe", description="probe: fit the new head on frozen features first (LP-FT); random: HF's init.")
    probe_examples: int = Field(1000, ge=2, description="Training examples the probe head is fitted on.")


def head_warmup_field():
    return Field(
        0,
        ge=0,
        description="First N steps: only the MLM head learns (the encoder's output is detached), so a new "
        "head's random gradients do not disturb a trained encoder (an encoder saved without an MLM head, like MiniLM).",
    )


class MLMSettings(StrictModel):
    """Masked-LM on unlabelled text next to a trained encoder: sequences, masking, head warm-up."""

    max_length: int = Field(128, ge=8, le=4096, description="Tokens per MLM sequence (packed, no padding).")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked.")
    whole_word_mask: bool = Field(True, description="Mask all pieces of a word together.")
    head_warmup_steps: int = head_warmup_field()
