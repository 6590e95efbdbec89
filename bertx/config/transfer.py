"""The cross-domain / cross-lingual transfer config: sources, targets, methods."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from bertx.config.base import (
    DataConfig,
    MLMSettings,
    ModelConfig,
    StrictModel,
    TrainConfig,
    check_task_name,
    check_unique_names,
    default_data_dir,
    resolve_data_path,
)
from bertx.config.finetune import AuxMLMConfig, AuxMLMSettings, FinetuneConfig


class TransferSource(StrictModel):
    """A domain or language with labelled training data."""

    name: str = Field(..., min_length=1, description="Domain or language name; a target of the same name is its in-domain test.")
    train: str = Field(..., description="Labelled training file. `{data_dir}` expands.")
    dev: Optional[str] = Field(None, description="In-domain dev file that picks the best checkpoint (never a target's labels).")


class TransferTarget(StrictModel):
    """A domain or language the trained models are evaluated on, zero-shot."""

    name: str = Field(..., min_length=1, description="Domain or language name.")
    eval: str = Field(..., description="Labelled file the models are scored on. `{data_dir}` expands.")
    unlabelled: list[str] = Field(
        default_factory=list,
        description="The target's unlabelled text for the adaptation methods: plain text files, or "
        "labelled TSV/CSV/JSONL files whose labels are dropped (for example the target's training file).",
    )
    rank_on: Optional[str] = Field(
        None,
        description="A few labelled examples of the target (for example its training file), read only with "
        "`predict:`: each source's model is scored on them from frozen features, and that predicted ranking is set "
        "beside the measured row.",
    )


class DAPTSettings(MLMSettings):
    """Domain-adaptive pretraining: continue the encoder's masked-LM training on the target's unlabelled text."""

    epochs: float = Field(3.0, gt=0, description="Passes over the target's text.")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after N steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, description="Sequences per step.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")


class TransferConfig(StrictModel):
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
    predict: list[Literal["logme", "hscore", "knn", "probe"]] = Field(
        default_factory=list,
        description="Estimators that rank the sources for each target with `rank_on:` (plain "
        "method, one model per source), set beside the measured matrix in predicted.json / .md.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "TransferConfig":
        check_task_name(self.task)
        check_unique_names(self.sources, "source")
        check_unique_names(self.targets, "target")
        if "all" in [s.name for s in self.sources] and self.train_on != "each":
            raise ValueError("a source may not be named 'all' when train_on includes the joint row `all`")
        if self.data.train or self.data.dev:
            raise ValueError("give files as `train:`/`dev:` of a source and `eval:` of a target, not inside `data:`")
        if self.predict and not any(t.rank_on for t in self.targets):
            raise ValueError("predict: needs `rank_on:` (a labelled file) on at least one target")
        if self.predict and ("plain" not in self.methods or self.train_on == "all"):
            raise ValueError("predict: ranks the plain method's per-source models; add `plain` to methods and train_on: each")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("a method is listed twice")
        if self.train_on != "each" and any("aux-mlm" in m for m in self.methods):
            raise ValueError("the joint row (train_on: all) is trained multi-task, which has no auxiliary MLM loss; use train_on: each with aux-mlm")
        return self

    def source_config(self, source: TransferSource, output: str, model: Optional[str] = None, aux_text: Optional[list[str]] = None) -> FinetuneConfig:
        """The fine-tuning run of one source: from `model` (default: the config's), optionally with an auxiliary MLM loss."""
        data = self.data.model_copy(update={"train": source.train, "dev": source.dev, "data_dir": self.data_dir})
        model_config = self.model.model_copy(update={"name_or_path": model}) if model else self.model.model_copy()
        aux = None
        if aux_text:
            aux = AuxMLMConfig(text=aux_text, documents=self.unlabelled_documents, **self.aux_mlm.model_dump())
        return FinetuneConfig(task=self.task, output=output, data=data, model=model_config, train=self.train.model_copy(), aux_mlm=aux)

    def resolve(self, path: str) -> str:
        return resolve_data_path(path, self.data_dir)
