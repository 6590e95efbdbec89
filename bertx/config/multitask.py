"""Multi-task and intermediate-task configs: a list of tasks over one encoder."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from bertx.config.base import (
    DataConfig,
    ModelConfig,
    StrictModel,
    TrainConfig,
    check_task_name,
    check_unique_names,
    default_data_dir,
    resolve_data_path,
)
from bertx.config.finetune import FinetuneConfig, PeftOptions


class TaskEntry(StrictModel):
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

    def finetune_config(
        self, data_dir: str, model: "ModelConfig", train: "TrainConfig", output: str, peft: Optional[PeftOptions] = None
    ) -> "FinetuneConfig":
        """This task as a single-task run config: what its kind needs to read, head and score it."""
        data = self.data.model_copy(update={"train": self.train, "dev": self.dev, "data_dir": data_dir})
        return FinetuneConfig(
            task=self.kind,
            output=output,
            data=data,
            model=model.model_copy(),
            peft=peft,
            train=train.model_copy(update={"metric_for_best": self.metric}),
        )

    @model_validator(mode="after")
    def _known_kind(self) -> "TaskEntry":
        check_task_name(self.kind, owner=f"task {self.name!r}: ")
        if self.data.train or self.data.dev:
            raise ValueError(f"task {self.name!r}: give the files as `train:`/`dev:` of the task, not inside `data:`")
        return self

    def files(self, data_dir: str) -> list[tuple[str, str]]:
        """(role, resolved path) of the task's files."""
        return [(role, resolve_data_path(path, data_dir)) for role, path in (("train", self.train), ("dev", self.dev)) if path]


class SamplingConfig(StrictModel):
    strategy: Literal["proportional", "temperature", "uniform", "round-robin", "annealed"] = Field(
        "proportional",
        description="Which task the next batch comes from: in proportion to task size; size^(1/T); uniformly; in "
        "turn; or annealed from proportional (start) to nearly uniform (end, size^0.2).",
    )
    temperature: float = Field(2.0, gt=0, description="T of the temperature strategy (1 = proportional, large = uniform).")
    tasks_per_step: int = Field(
        1, ge=1, description="Batches, each from its own sampled task, whose gradients are accumulated into one optimizer step."
    )


class SelectConfig(StrictModel):
    """`select:` of a multi-task config: rank the other tasks as sources for one target from frozen
    features, keep the helpful ones, train multi-task on the target and them, then fine-tune on the target."""

    target: str = Field(..., description="The task the run serves; every other task is a candidate source.")
    top_k: int = Field(2, ge=1, description="Keep at most this many sources (those the estimate ranks above the plain encoder).")
    estimator: Literal["logme", "hscore", "knn", "probe"] = Field("logme", description="What ranks the sources.")
    max_examples: int = Field(2000, ge=10, description="Target training examples whose features are scored.")
    finetune_epochs: float = Field(2.0, ge=0, description="Epochs of the final fine-tuning on the target alone (0: none).")
    sources_cache: Optional[str] = Field(
        None,
        description="Folder of source runs shared by several selected runs (a finished run SOURCE/metrics.json is reused); default: OUTPUT/sources.",
    )


class MultitaskConfig(StrictModel):
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
    select: Optional[SelectConfig] = Field(None, description="Source selection for one target task (see SelectConfig).")
    peft: Optional[PeftOptions] = Field(
        None,
        description="One adapter (LoRA, IA3, BitFit) and head per task over one frozen "
        "encoder held once in memory; each task exports as a PEFT run folder.",
    )

    @model_validator(mode="after")
    def _consistent_tasks(self) -> "MultitaskConfig":
        check_unique_names(self.tasks)
        heads: dict[str, TaskEntry] = {}
        for entry in self.tasks:
            other = heads.setdefault(entry.head_name, entry)
            if other.kind != entry.kind:
                raise ValueError(
                    f"tasks {other.name!r} ({other.kind}) and {entry.name!r} ({entry.kind}) cannot share head {entry.head_name!r}: their kinds differ"
                )
        if self.select:
            target = next((entry for entry in self.tasks if entry.name == self.select.target), None)
            if target is None:
                raise ValueError(f"select.target {self.select.target!r} is not one of the tasks ({', '.join(t.name for t in self.tasks)})")
            if not target.dev:
                raise ValueError(f"select.target {target.name!r} needs a dev file")
            if len(self.tasks) < 2:
                raise ValueError("select: needs at least one task besides the target")
        if self.select and self.peft:
            raise ValueError(
                "select: and peft: do not combine: with a frozen encoder and one adapter per task, no source "
                "can change what the target learns; drop one of them"
            )
        if self.train.metric_for_best:
            raise ValueError(
                "train.metric_for_best does not apply to multi-task runs: the best checkpoint has the best "
                "mean of the tasks' main metrics; set a task's `metric:` instead"
            )
        return self

    def task_config(self, entry: TaskEntry, output: str | None = None) -> "FinetuneConfig":
        """The single-task run config of one task (its output defaults to a subfolder of the run's)."""
        return entry.finetune_config(self.data_dir, self.model, self.train, output or f"{self.output}/{entry.name}", self.peft)


class IntermediateConfig(StrictModel):
    """Intermediate-task transfer: for every (source, target) pair, train on the source, then fine-tune on the target."""

    output: str = Field("runs/intermediate", description="Output folder: the matrix (JSON, Markdown, PNG) and per-run metrics.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets (`{data_dir}` in paths).")
    tasks: list[TaskEntry] = Field(..., min_length=2, description="Tasks used both as sources and as targets.")
    targets: Optional[list[str]] = Field(None, description="Task names used as targets; default: all tasks.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation of both stages.")
    source_train: Optional[TrainConfig] = Field(None, description="Optimisation of the source stage, if it differs.")
    keep_models: bool = Field(False, description="Keep every target model (otherwise only metrics and the source encoders).")
    predict: list[Literal["logme", "hscore", "knn", "probe"]] = Field(
        default_factory=lambda: ["logme", "hscore", "knn", "probe"],
        description="Estimators whose source ranking per target is set beside the measured gains ([] = none).",
    )

    @model_validator(mode="after")
    def _consistent_tasks(self) -> "IntermediateConfig":
        check_unique_names(self.tasks)
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


class SourcesConfig(StrictModel):
    """Candidate source tasks for `bertx rank --sources`: each is fine-tuned once from `model` (cached in
    `output`), and its encoder is scored on the target's training data."""

    output: str = Field("runs/sources", description="Cache of the source runs: a source trained once is reused.")
    data_dir: str = Field(default_factory=default_data_dir, description="Root of the shared datasets (`{data_dir}` in paths).")
    tasks: list[TaskEntry] = Field(..., min_length=1, description="The source tasks (dev files optional).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation of each source's fine-tuning.")

    @model_validator(mode="after")
    def _unique(self) -> "SourcesConfig":
        check_unique_names(self.tasks)
        return self

    def task_config(self, entry: TaskEntry, output: str) -> "FinetuneConfig":
        return entry.finetune_config(self.data_dir, self.model, self.train, output)
