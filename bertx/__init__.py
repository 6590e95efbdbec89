"""bertx: BERT knowledge transfer.

Python API (mirrors the CLI):

    from bertx import FinetuneConfig, finetune, evaluate, Predictor
    metrics = finetune(FinetuneConfig(task="classification", output="runs/sst2",
                                      data={"train": "train.tsv", "dev": "dev.tsv"}))
    Predictor.load("runs/sst2").predict(["a gripping, funny film"])
    EntityPredictor.load("runs/conll2003").predict(["Angela Merkel visited Paris."])
    AnswerPredictor.load("runs/squad").predict(["Who wrote it?"], ["It was written by Ann Lee in 1990."])

    from bertx import multitask, export_task
    multitask(load_config("configs/multitask/glue.yaml", schema=MultitaskConfig))
    export_task("runs/multitask-glue", "rte", "runs/rte-mt")

    from bertx import transfer
    transfer(load_config("configs/transfer/amazon.yaml", schema=TransferConfig))  # matrices per method
"""

import os as _os

_os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local folders; never reach for a hub

from bertx.config import FinetuneConfig, IntermediateConfig, MultitaskConfig, TransferConfig, load_config  # noqa: E402
from bertx.errors import BertxError, DataError  # noqa: E402


def finetune(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Fine-tune from a `FinetuneConfig` (or a dict of its fields); see `bertx.recipes.finetune`."""
    from bertx.config import validate_config
    from bertx.recipes.finetune import finetune as _finetune

    if isinstance(config, dict):
        config = validate_config(config)
    return _finetune(config, resume=resume, overwrite=overwrite, show_progress=show_progress)


def multitask(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Multi-task training from a `MultitaskConfig` (or a dict of its fields); see `bertx.recipes.multitask`."""
    from bertx.config import validate_config
    from bertx.recipes.multitask import multitask as _multitask

    if isinstance(config, dict):
        config = validate_config(config, schema=MultitaskConfig)
    return _multitask(config, resume=resume, overwrite=overwrite, show_progress=show_progress)


def export_task(mt_dir, task: str, output, overwrite: bool = False):
    """One task of a multi-task folder as a standalone HF model folder; see `bertx.recipes.multitask`."""
    from bertx.recipes.multitask import export_task as _export

    return _export(mt_dir, task, output, overwrite=overwrite)


def transfer(config, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Cross-domain / cross-lingual transfer matrices from a `TransferConfig` (or a dict of its fields); see `bertx.recipes.transfer`."""
    from bertx.config import TransferConfig, validate_config
    from bertx.recipes.transfer import transfer as _transfer

    if isinstance(config, dict):
        config = validate_config(config, schema=TransferConfig)
    return _transfer(config, overwrite=overwrite, show_progress=show_progress)


def distill(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Distil a teacher into a student from a `DistillConfig` (or a dict of its fields); see `bertx.recipes.distill`."""
    from bertx.config import DistillConfig, validate_config
    from bertx.recipes.distill import distill as _distill

    if isinstance(config, dict):
        config = validate_config(config, schema=DistillConfig)
    return _distill(config, resume=resume, overwrite=overwrite, show_progress=show_progress)


def evaluate(model_dir, data, **kwargs) -> dict:
    """Metrics of a trained model folder on a labelled file; see `bertx.evaluation.evaluate`."""
    from bertx.evaluation.evaluate import evaluate as _evaluate

    return _evaluate(model_dir, data, **kwargs)


_LAZY = {  # import torch/transformers only when prediction is used
    "Predictor": "bertx.inference.predictor",
    "EntityPredictor": "bertx.inference.entities",
    "AnswerPredictor": "bertx.inference.answers",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["FinetuneConfig", "MultitaskConfig", "IntermediateConfig", "TransferConfig", "load_config", "finetune", "multitask",
           "export_task", "distill", "transfer", "evaluate", "Predictor", "EntityPredictor", "AnswerPredictor",
           "BertxError", "DataError"]
__version__ = "0.1.0"
