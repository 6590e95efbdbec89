"""Typed run configs: what each recipe's run needs, validated before any work starts.

base.py       strict models, `{data_dir}` paths, the model block, the shared training block
finetune.py   fine-tuning (+ auxiliary masked LM)
multitask.py  multi-task and intermediate-task matrices
distill.py    distillation
pretrain.py   pretraining
transfer.py   cross-domain / cross-lingual matrices
plan.py       `bertx plan`: a target task, what the user has, what must ship, the budget
loading.py    YAML + dotted overrides -> a validated config, errors in one line
"""

from bertx.config.base import (
    DEFAULT_DATA_DIR,
    DataConfig,
    MLMSettings,
    ModelConfig,
    StrictModel,
    TrainConfig,
    TrainingBlock,
    default_data_dir,
    resolve_data_path,
)
from bertx.config.distill import DistillConfig, DistillLossConfig, StudentConfig
from bertx.config.fewshot import FewshotConfig
from bertx.config.finetune import AuxMLMConfig, AuxMLMSettings, FinetuneConfig, PeftOptions
from bertx.config.loading import apply_overrides, load_config, validate_config
from bertx.config.multitask import IntermediateConfig, MultitaskConfig, SamplingConfig, SelectConfig, SourcesConfig, TaskEntry
from bertx.config.plan import PlanConfig, ShipConfig
from bertx.config.pretrain import ObjectiveConfig, PretrainConfig, PretrainDataConfig, PretrainModelConfig, PretrainTrainConfig
from bertx.config.transfer import DAPTSettings, TransferConfig, TransferSource, TransferTarget

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataConfig",
    "MLMSettings",
    "ModelConfig",
    "StrictModel",
    "TrainConfig",
    "TrainingBlock",
    "default_data_dir",
    "resolve_data_path",
    "DistillConfig",
    "DistillLossConfig",
    "StudentConfig",
    "AuxMLMConfig",
    "AuxMLMSettings",
    "FinetuneConfig",
    "FewshotConfig",
    "PeftOptions",
    "apply_overrides",
    "load_config",
    "validate_config",
    "IntermediateConfig",
    "PlanConfig",
    "ShipConfig",
    "MultitaskConfig",
    "SamplingConfig",
    "SelectConfig",
    "SourcesConfig",
    "TaskEntry",
    "ObjectiveConfig",
    "PretrainConfig",
    "PretrainDataConfig",
    "PretrainModelConfig",
    "PretrainTrainConfig",
    "DAPTSettings",
    "TransferConfig",
    "TransferSource",
    "TransferTarget",
]
