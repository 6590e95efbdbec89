"""The plan config: a target task, what the user has (labelled data, unlabelled text, sources, encoders),
what the shipped model must meet, and the wall-clock budget. `bertx plan` decides the rest."""

from __future__ import annotations

import re
from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from bertx.config.base import DataConfig, StrictModel, check_task_name, default_data_dir

MIN_BUDGET_S = 60
STUDENTS = ("bert-5", "bert-4", "bert-3", "bert-2", "bert-1", "bilstm", "cnn", "bag")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def duration_seconds(text: Union[str, float, int]) -> float:
    """`45m`, `1h30m`, `90s`, `2h` or a bare number of minutes, in seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = f"{text}m"
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", str(text)):  # a bare number is minutes
        text = f"{str(text).strip()}m"
    found = _DURATION.match(str(text))
    if not found or not any(found.groups()) or not str(text).strip():
        raise ValueError(f"budget {text!r}: write a duration such as 45m, 1h30m or 90s")
    hours, minutes, seconds = (float(part or 0) for part in found.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if not 0 < total < 10**7:
        raise ValueError(f"budget {text!r}: give a positive duration (at most about 100 days)")
    return total


class ShipConfig(StrictModel):
    """What the shipped model must meet; every given constraint must hold."""

    latency_ms: Optional[float] = Field(None, gt=0, description="Single-input latency, end to end with tokenisation, on this machine.")
    latency_ratio: Optional[float] = Field(
        None,
        gt=0,
        le=1,
        description="Latency as a share of the baseline's (the plain `bertx finetune` model in PyTorch), measured by the plan's profile.",
    )
    size_mb: Optional[float] = Field(None, gt=0, description="Size of the shipped folder's weights.")
    min_kept: float = Field(
        0.9,
        gt=0,
        le=1.5,
        description="Share of the teacher's dev score a student must keep; if none "
        "does, the teacher is shipped (0.9 by default: a student that lost more is not worth its speed).",
    )


class PlanConfig(StrictModel):
    task: str = Field(..., description="Task kind: classification, pair-classification, regression, multilabel, ner or qa.")
    train: str = Field(..., description="Labelled training file. `{data_dir}` expands.")
    dev: Optional[str] = Field(None, description="Dev file for the plan's choices; default: a seeded split of train (dev_fraction), recorded.")
    test: Optional[str] = Field(
        None,
        description="Labelled file held out from every decision, read once after the plan "
        "ships: the reported scores and their intervals. Without it, report_fraction of the dev "
        "file (or of the labelled examples) is held out instead.",
    )
    output: str = Field("runs/plan", description="Output folder: one run folder per stage, plan.json, report.html, ship/.")
    labelled: Optional[int] = Field(
        None,
        ge=2,
        description="Use a seeded draw of N labelled examples of train (the low-resource setting); the draw is written under OUTPUT/profile/.",
    )
    unlabelled: list[str] = Field(default_factory=list, description="In-domain text files (a line each, or TSV/CSV/JSONL text columns).")
    unlabelled_rest: Union[bool, int] = Field(
        False, description="With `labelled`: the other examples of train, labels dropped, join the unlabelled text (true: all; N: at most N)."
    )
    parallel: Optional[list[str]] = Field(
        None,
        min_length=2,
        max_length=2,
        description="Two row-aligned files: text in the "
        "encoder's language and its translation into the target's; when the target's text is "
        "in another language, its new word pieces start from the pieces they translate.",
    )
    sources: Optional[str] = Field(None, description="YAML of labelled related tasks (the `bertx rank --sources` format).")
    encoders: list[str] = Field(default_factory=lambda: ["default"], description="Candidate encoder folders ('default': the packaged MiniLM).")
    ship: ShipConfig = Field(default_factory=ShipConfig)
    budget: str = Field("45m", description="Wall-clock budget on this machine (45m, 1h30m, 90s).")
    regime: Literal["auto", "full", "fewshot", "multitask", "adapters"] = Field(
        "auto",
        description="How the teacher is trained; auto: few-shot under 32 examples per class, multi-task when "
        "sources help, full fine-tuning otherwise.",
    )
    students: list[Literal[STUDENTS]] = Field(default_factory=lambda: list(STUDENTS), description="Student kinds the plan may try.")
    augment: int = Field(4, ge=0, description="Teacher-labelled variants of every labelled text in the transfer set (sequence tasks).")
    dev_fraction: float = Field(0.2, gt=0, lt=0.9, description="Share of train held out as dev when no dev file is given.")
    report_fraction: float = Field(
        0.2,
        ge=0,
        lt=0.9,
        description="Without `test:`, the share of the dev file (or, "
        "without one, of the labelled examples) that no decision sees and the reported scores "
        "come from; 0: report on dev, flagged as optimistic.",
    )
    seed: int = Field(42, description="Seed of every draw and run.")
    data: DataConfig = Field(
        default_factory=DataConfig,
        description="Reading options (columns, tag scheme); max_length when set, otherwise chosen from the length profile.",
    )
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets (`{data_dir}` in paths).")

    @field_validator("budget", mode="before")
    @classmethod
    def _duration(cls, value):
        """A bare number is minutes (`budget: 45`)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value}m"
        if isinstance(value, str) and duration_seconds(value) < MIN_BUDGET_S:
            raise ValueError(f"budget {value!r}: a plan needs at least a minute (the baseline and the teacher alone train for longer)")
        return value

    @field_validator("encoders")
    @classmethod
    def _some_encoder(cls, value):
        if not value:
            raise ValueError("encoders: give at least one (default: [default])")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "PlanConfig":
        check_task_name(self.task)
        if self.data.train or self.data.dev:
            raise ValueError("give the files as `train:` / `dev:` of the plan, not inside `data:`")
        if self.unlabelled_rest and not self.labelled:
            raise ValueError("unlabelled_rest needs `labelled: N` (the rest is what the draw leaves)")
        if self.regime == "fewshot" and self.task not in ("classification", "pair-classification"):
            raise ValueError(f"regime fewshot applies to classification and pair-classification, not {self.task}")
        if self.regime == "multitask" and not self.sources:
            raise ValueError("regime multitask needs `sources:`")
        if self.ship.latency_ms and self.ship.latency_ratio:
            raise ValueError("ship: give latency_ms or latency_ratio, not both")
        return self

    @property
    def budget_s(self) -> float:
        return duration_seconds(self.budget)

    def resolve(self, path: Optional[str]) -> Optional[str]:
        from bertx.config.base import resolve_data_path

        return resolve_data_path(path, self.data_dir)
