"""The fine-tuning run config, with its optional auxiliary masked-LM loss."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from bertx.config.base import DataConfig, MLMSettings, ModelConfig, StrictModel, TrainConfig, check_task_name


class AuxMLMSettings(MLMSettings):
    """How the auxiliary masked-LM loss is weighted and batched (the text comes separately)."""

    weight: float = Field(0.5, gt=0, description="Loss = task loss + weight x MLM loss.")
    batch_size: Optional[int] = Field(None, ge=1, description="MLM sequences per step; default: the task's batch size.")


class AuxMLMConfig(AuxMLMSettings):
    """An auxiliary masked-LM loss on unlabelled text during fine-tuning (UDALM-style mixed objective)."""

    text: list[str] = Field(..., min_length=1, description="Plain-text files (`{data_dir}` expands).")
    documents: Literal["blank", "line", "wikitext"] = Field("line", description="How documents are delimited in the text files.")


class PeftOptions(StrictModel):
    """Parameter-efficient fine-tuning: a frozen encoder, a small trained adapter and the task head."""

    method: Literal["lora", "ia3", "bitfit"] = Field(
        "lora", description="lora (low-rank updates), ia3 (learnt scaling vectors) or bitfit (biases only)."
    )
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA scale numerator (updates are scaled by alpha / r).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on LoRA's input.")
    target_modules: Optional[list[str]] = Field(
        None,
        description="Linear layers (by name suffix) that get an adapter; default: every linear map of each layer (LoRA), key/value/output (IA3).",
    )
    feedforward_modules: Optional[list[str]] = Field(None, description="IA3: which targets scale their input (default: output.dense).")
    rslora: bool = Field(
        True,
        description="LoRA: scale updates by alpha / sqrt(r) (rank-stabilised LoRA; on five GLUE tasks "
        "69.90 against 69.23 with alpha / r, full fine-tuning 70.47); false: alpha / r.",
    )
    bias: Literal["none", "all"] = Field("none", description="LoRA: also train every bias of the encoder (saved with the adapter).")
    b_lr_ratio: float = Field(
        1.0, gt=0, description="LoRA+: LoRA's B matrices learn at this multiple of the learning rate (the LoRA+ paper uses 16)."
    )


class FinetuneConfig(StrictModel):
    task: str = Field("classification", description="classification, pair-classification, regression, multilabel, ner or qa.")
    output: str = Field("runs/finetune", description="Output folder: the HF model, run config, log and checkpoints.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    aux_mlm: Optional[AuxMLMConfig] = Field(None, description="Auxiliary masked-LM loss on unlabelled text.")
    peft: Optional[PeftOptions] = Field(None, description="Train an adapter (LoRA, IA3, BitFit) over a frozen encoder.")

    @model_validator(mode="after")
    def _known_task(self) -> "FinetuneConfig":
        check_task_name(self.task)
        if self.peft and self.aux_mlm:
            raise ValueError("peft and aux_mlm do not combine (the auxiliary MLM head would train the frozen encoder's embeddings); choose one")
        return self
