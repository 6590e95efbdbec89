"""bertx: BERT knowledge transfer.

Python API (mirrors the CLI):

    import bertx
    bertx.plan("configs/plan/kitchen.yaml")   # target task -> shipped small model, within a budget

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

    from bertx import rank
    rank("books/train.tsv", candidates=["runs/dapt-books", "runs/sst2"])     # which encoder suits the target
"""

from bertx.config import (  # noqa: E402
    DistillConfig,
    FewshotConfig,
    FinetuneConfig,
    IntermediateConfig,
    MultitaskConfig,
    PretrainConfig,
    TransferConfig,
    load_config,
)
from bertx.errors import BertxError, DataError  # noqa: E402


def _validated(config, schema):
    """A config object as given, or a dict of its fields validated against `schema`."""
    from bertx.config import validate_config

    return validate_config(config, schema=schema) if isinstance(config, dict) else config


def finetune(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Fine-tune from a `FinetuneConfig` (or a dict of its fields); see `bertx.recipes.finetune`."""
    from bertx.recipes.finetune import finetune as _finetune

    return _finetune(_validated(config, FinetuneConfig), resume=resume, overwrite=overwrite, show_progress=show_progress)


def pretrain(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Pretrain (or continue pretraining) from a `PretrainConfig` (or a dict of its fields); see `bertx.recipes.pretrain`."""
    from bertx.recipes.pretrain import pretrain as _pretrain

    return _pretrain(_validated(config, PretrainConfig), resume=resume, overwrite=overwrite, show_progress=show_progress)


def multitask(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Multi-task training from a `MultitaskConfig` (or a dict of its fields); see `bertx.recipes.multitask`.
    With `select:`, the selected multi-task run (`bertx.recipes.selected_multitask`; its finished stages are
    reused, so `resume` is implied) and its summary is returned."""
    config = _validated(config, MultitaskConfig)
    if config.select:
        from bertx.recipes.selected_multitask import selected_multitask

        return selected_multitask(config, overwrite=overwrite, show_progress=show_progress)
    from bertx.recipes.multitask import multitask as _multitask

    return _multitask(config, resume=resume, overwrite=overwrite, show_progress=show_progress)


def export_task(mt_dir, task: str, output, overwrite: bool = False):
    """One task of a multi-task folder as a standalone HF model folder; see `bertx.recipes.multitask`."""
    from bertx.recipes.task_folders import export_task as _export

    return _export(mt_dir, task, output, overwrite=overwrite)


def intermediate(config, overwrite: bool = False, show_progress: bool = True) -> dict:
    """The intermediate-task matrix from an `IntermediateConfig` (or a dict of its fields); see `bertx.recipes.intermediate`."""
    from bertx.recipes.intermediate import intermediate as _intermediate

    return _intermediate(_validated(config, IntermediateConfig), overwrite=overwrite, show_progress=show_progress)


def transfer(config, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Cross-domain / cross-lingual transfer matrices from a `TransferConfig` (or a dict of its fields); see `bertx.recipes.transfer`."""
    from bertx.recipes.transfer import transfer as _transfer

    return _transfer(_validated(config, TransferConfig), overwrite=overwrite, show_progress=show_progress)


def distill(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Distil a teacher into a student from a `DistillConfig` (or a dict of its fields); see `bertx.recipes.distill`."""
    from bertx.recipes.distill import distill as _distill

    return _distill(_validated(config, DistillConfig), resume=resume, overwrite=overwrite, show_progress=show_progress)


def fewshot(config, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Few-shot classification from a `FewshotConfig` (or a dict of its fields); see `bertx.recipes.fewshot`."""
    from bertx.recipes.fewshot import fewshot as _fewshot

    return _fewshot(_validated(config, FewshotConfig), resume=resume, overwrite=overwrite, show_progress=show_progress)


def plan(config, dry_run: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """From a target task to a shipped small model within a budget, from a `PlanConfig` (or a dict of its
    fields, or a YAML path); see `bertx.recipes.plan`. Returns plan.json's content."""
    from bertx.config.plan import PlanConfig
    from bertx.recipes.plan import plan as _plan

    if isinstance(config, (str, bytes)) or hasattr(config, "__fspath__"):
        config = load_config(str(config), [], schema=PlanConfig)
    return _plan(_validated(config, PlanConfig), dry_run=dry_run, overwrite=overwrite, show_progress=show_progress)


def evaluate(model_dir, data, **kwargs) -> dict:
    """Metrics of a trained model folder on a labelled file; see `bertx.evaluation.evaluate`."""
    from bertx.evaluation.evaluate import evaluate as _evaluate

    return _evaluate(model_dir, data, **kwargs)


def rank(
    train,
    candidates=None,
    sources=None,
    task: str = "classification",
    estimators=("logme", "hscore", "knn", "probe"),
    max_examples: int = 2000,
    max_length: int = 128,
    seed: int = 42,
    output=None,
    overwrite: bool = False,
) -> dict:
    """Rank candidate encoder folders, or the source tasks of a `SourcesConfig` (or YAML path, or dict), for the
    target task in `train` from frozen features; see `bertx.evaluation.rank` and `bertx.recipes.sources`."""
    if (candidates is None) == (sources is None):
        raise BertxError("rank: give either candidate folders or sources, not both or neither")
    if sources is None:
        from bertx.evaluation.rank import rank as _rank

        return _rank(
            str(train),
            [str(c) for c in candidates],
            task,
            tuple(estimators),
            max_examples,
            max_length,
            seed,
            None if output is None else str(output),
            overwrite,
        )
    from bertx.config import SourcesConfig
    from bertx.recipes.sources import rank_sources

    if not isinstance(sources, (dict, SourcesConfig)):
        sources = load_config(str(sources), [], schema=SourcesConfig)
    return rank_sources(
        _validated(sources, SourcesConfig),
        str(train),
        task,
        tuple(estimators),
        max_examples,
        max_length,
        seed,
        None if output is None else str(output),
        overwrite,
    )


_LAZY = {  # import torch/transformers only when prediction is used
    "Predictor": "bertx.inference.predictor",
    "EntityPredictor": "bertx.inference.entities",
    "AnswerPredictor": "bertx.inference.answers",
    "MultiTaskPredictor": "bertx.inference.multitask_predictor",  # every sequence head of a multi-task run, one encoder pass
    "CorpusJob": "bertx.scale.predict",  # a corpus on Ray: predict_corpus(CorpusJob(model, inputs, output))
    "predict_corpus": "bertx.scale.predict",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = [
    "FinetuneConfig",
    "PretrainConfig",
    "MultitaskConfig",
    "IntermediateConfig",
    "TransferConfig",
    "DistillConfig",
    "FewshotConfig",
    "load_config",
    "plan",
    "finetune",
    "fewshot",
    "pretrain",
    "multitask",
    "export_task",
    "intermediate",
    "distill",
    "transfer",
    "evaluate",
    "rank",
    "Predictor",
    "EntityPredictor",
    "AnswerPredictor",
    "MultiTaskPredictor",
    "CorpusJob",
    "predict_corpus",
    "BertxError",
    "DataError",
]
__version__ = "0.1.0"
