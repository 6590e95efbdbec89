"""The few-shot run config: K examples per class, a contrastive stage on pairs of them, then a head."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from bertx.config.base import DataConfig, ModelConfig, StrictModel, TrainingBlock


# Measured on SST-2 (3 seeds, docs/results.md): the end-to-end stage cost 0.7 points at 8 examples per
# class and gained 0.8-1.3 at 16, 32 and 64.
END_TO_END_FROM = 16


def end_to_end_epochs(configured: float | None, smallest_class: int) -> float:
    """The end-to-end stage's epochs: as configured, or by default 2 from END_TO_END_FROM examples per class."""
    if configured is not None:
        return configured
    return 2.0 if smallest_class >= END_TO_END_FROM else 0.0


class FewshotTrain(TrainingBlock):
    """SetFit's published defaults: one pass over the pairs, batch 16, lr 2e-5."""

    epochs: float = Field(1.0, gt=0, description="Passes over the contrastive pairs.")
    batch_size: int = Field(16, ge=1, description="Pairs per optimizer step.")
    lr: float = Field(2e-5, gt=0, description="Encoder learning rate of the contrastive stage.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warm-up.")
    save_steps: Optional[int] = Field(100, ge=1, description="Write a resumable checkpoint every N steps.")


class FewshotConfig(StrictModel):
    task: Literal["classification", "pair-classification"] = Field("classification", description="classification or pair-classification.")
    output: str = Field("runs/fewshot", description="Output folder: the encoder, its head, run config, log.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: FewshotTrain = Field(default_factory=FewshotTrain)
    shots: Optional[int] = Field(None, ge=2, description="Examples per class drawn from the training file with the seed; default: the file as it is.")
    rounds: int = Field(
        10,
        ge=1,
        description="Contrastive rounds: each round pairs every example with one of its class and one of another (2 x rounds x examples pairs).",
    )
    loss: Literal["cosine", "contrastive"] = Field(
        "cosine",
        description="cosine: squared error between the pair's cosine "
        "and 1/0 (SetFit's); contrastive: pull same-class pairs together, push "
        "others below a margin.",
    )
    margin: float = Field(0.5, ge=0, le=2, description="contrastive: cosine distance other-class pairs are pushed beyond.")
    normalize: bool = Field(True, description="Scale sentence vectors to unit length before the head (as sentence-transformers encoders are used).")
    head_c: float = Field(1.0, gt=0, description="Inverse L2 strength of the logistic-regression head.")
    end_to_end_epochs: Optional[float] = Field(
        None,
        ge=0,
        description="After the head is fitted: passes of cross-entropy "
        "training of encoder and head together over the K x C examples (SetFit's "
        "end-to-end stage); 0: none; default: 2 when every class has at least "
        f"{END_TO_END_FROM} examples, else none.",
    )
    end_to_end_lr: float = Field(1e-5, gt=0, description="Encoder learning rate of the end-to-end stage.")
    end_to_end_head_lr: float = Field(1e-2, gt=0, description="Head learning rate of the end-to-end stage.")
