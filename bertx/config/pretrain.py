"""The pretraining run config: text, a model to start from (or a size), objective, training."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pathlib import Path

from pydantic import Field, model_validator

from bertx.config.base import StrictModel, TrainingBlock, default_data_dir, head_warmup_field, resolve_data_path


class TextFile(StrictModel):
    """One training text file with its own layout, sampling weight and language (bilingual pretraining)."""

    path: str = Field(..., description="The file (`{data_dir}` expands).")
    documents: Optional[Literal["blank", "line", "wikitext"]] = Field(None, description="Its document layout; default: data.documents.")
    weight: float = Field(1.0, gt=0, description="Its instances per epoch are multiplied by this (2: each twice; 0.5: a seeded half).")
    language: Optional[str] = Field(None, description="Held-out MLM accuracy is also reported per language; default: the file name.")


class PretrainDataConfig(StrictModel):
    train: list[Union[str, TextFile]] = Field(
        default_factory=list,
        description="Training text files (`{data_dir}` expands): paths, or {path, documents, weight, language} entries.",
    )
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
        return [resolve_data_path(p, self.data_dir) for p in paths]

    def train_files(self) -> list[TextFile]:
        """Every training file as a full entry: path resolved, layout, weight and language filled in."""
        files = []
        for item in self.train:
            entry = TextFile(path=item) if isinstance(item, str) else item
            path = resolve_data_path(entry.path, self.data_dir)
            files.append(
                TextFile(path=path, documents=entry.documents or self.documents, weight=entry.weight, language=entry.language or Path(path).stem)
            )
        return files

    def train_paths(self) -> list[str]:
        return [entry.path for entry in self.train_files()]


class PretrainModelConfig(StrictModel):
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


class ObjectiveConfig(StrictModel):
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked (80% [MASK], 10% random, 10% kept).")
    whole_word_mask: bool = Field(True, description="Mask all pieces of a word together.")
    sentence_task: Literal["none", "nsp", "sop"] = Field(
        "none", description="none: MLM alone on packed blocks; nsp: next-sentence prediction; sop: sentence-order prediction."
    )


class PretrainTrainConfig(TrainingBlock):
    """The shared training block with pretraining's defaults, plus the MLM head warm-up."""

    epochs: float = Field(1.0, gt=0, description="Passes over the training text (fractions allowed).")
    batch_size: int = Field(64, ge=1, description="Sequences per optimizer step (all processes).")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate (from scratch ~5e-4; continued ~5e-5 to 1e-4).")
    eval_steps: Optional[int] = Field(500, ge=1, description="Evaluate the held-out text every N steps (and at the end).")
    save_steps: Optional[int] = Field(500, ge=1, description="Write a resumable checkpoint every N steps.")
    head_warmup_steps: int = head_warmup_field()


class PretrainConfig(StrictModel):
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
