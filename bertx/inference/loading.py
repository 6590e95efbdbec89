"""Load a trained model folder with everything needed to read data the way it was trained.

A folder written by bertx carries `bertx_run.yaml` (task, data options, columns, labels); any other HF
folder works too: its task is read from the head class in `config.json` (`BertForTokenClassification`
-> ner, `...ForQuestionAnswering` -> qa, otherwise a sequence task by `problem_type`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from bertx.config import DataConfig
from bertx.errors import BertxError
from bertx.models.adapters import is_adapter_folder, load_adapter_model
from bertx.models.cls_only import enable_cls_only_last_layer
from bertx.inference.graph_io import ONNX_FILE, OPENVINO_FILE, is_export
from bertx.inference.onnx_model import OnnxTaskModel
from bertx.models.encoder import check_encoder_folder, load_tokenizer
from bertx.models.sentence_classifier import is_sentence_classifier, load_sentence_classifier
from bertx.models.small_students import is_small_student, load_small_student
from bertx.tasks import TASKS, TaskKind, TaskSpec, get_kind
from bertx.runfolder import read_run_config

PROBLEM_TO_TASK = {
    "regression": "regression",
    "multi_label_classification": "multilabel",
    "single_label_classification": "classification",
}


@dataclass
class TrainedModel:
    model: torch.nn.Module
    tokenizer: object
    task: TaskSpec
    kind: TaskKind
    data: DataConfig  # the training run's data options (max_length, tag scheme, QA windows, ...)
    run: dict = field(default_factory=dict)
    autocast_dtype: Optional[torch.dtype] = None

    @property
    def labels(self) -> list[str]:
        config = self.model.config
        return [config.id2label[i] for i in range(config.num_labels)]

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


def task_of(model_dir: Path, run: dict | None, config: dict) -> TaskSpec:
    if run and "multitask" in run:
        raise BertxError(
            f"{model_dir}: a multi-task folder (tasks: {', '.join(run['multitask'])}); write one task as a "
            f"model first: bertx multitask-export {model_dir} --task NAME --output DIR"
        )
    if run and run.get("task") in TASKS:
        return TASKS[run["task"]]
    architecture = (config.get("architectures") or [""])[0]
    if architecture.endswith("ForTokenClassification"):
        return TASKS["ner"]
    if architecture.endswith("ForQuestionAnswering"):
        return TASKS["qa"]
    if architecture.endswith("ForSequenceClassification"):
        return TASKS[PROBLEM_TO_TASK.get(config.get("problem_type") or "", "classification")]
    raise BertxError(f"{model_dir}: holds no task head (architectures: {config.get('architectures')}); fine-tune it first with `bertx finetune`")


def folder_task(model_dir: str | Path) -> tuple[TaskSpec, dict]:
    """A model folder's task and run config, read without loading its weights."""
    import json

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise BertxError(f"{model_dir}: model folder not found")
    run = read_run_config(model_dir) or {}
    config = {}
    if (model_dir / "config.json").is_file():
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise BertxError(f"{model_dir / 'config.json'}: not valid JSON ({err})") from None
    if not run.get("task") and not config:
        raise BertxError(f"{model_dir}: not a trained model folder (no bertx_run.yaml, no config.json)")
    return task_of(model_dir, run, config), run


def data_options(run: dict, max_length: int | None = None) -> DataConfig:
    """The training run's data options (how its files were read), or defaults for a foreign folder."""
    options = {k: v for k, v in (run.get("data") or {}).items() if k in DataConfig.model_fields}
    data = DataConfig.model_validate(options) if options else DataConfig(max_length=512)
    if max_length:
        data.max_length = max_length
    return data


def load_export(folder: Path, max_length: int | None = None) -> TrainedModel:
    """An export folder (`bertx export`): the ONNX graph behind the same interface as a PyTorch model."""
    import json

    from transformers import AutoConfig

    from bertx.models.small_students import SmallStudentConfig

    if not (folder / "bertx_run.yaml").is_file():
        raise BertxError(f"{folder}: an export folder needs bertx_run.yaml (write it with `bertx export`)")
    if is_small_student(folder):  # an exported BiLSTM / CNN / bag student: its labels are in student.json
        config = SmallStudentConfig.from_folder(folder)
    else:
        if not (folder / "config.json").is_file():
            raise BertxError(f"{folder}: an export folder needs config.json (write it with `bertx export`)")
        try:
            json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise BertxError(f"{folder / 'config.json'}: not valid JSON ({err})") from None
        config = AutoConfig.from_pretrained(folder)
    run = read_run_config(folder) or {}
    task = task_of(folder, run, {})
    if (folder / ONNX_FILE).is_file():
        model = OnnxTaskModel(folder / ONNX_FILE, config)
    else:
        from bertx.inference.openvino_model import OpenVinoTaskModel

        model = OpenVinoTaskModel(folder / OPENVINO_FILE, config)
    return TrainedModel(model, load_tokenizer(str(folder)), task, get_kind(task), data_options(run, max_length), run)


def load_small(folder: Path, device: str | None = None, max_length: int | None = None) -> TrainedModel:
    """A BiLSTM / CNN / bag student written by `bertx distill --student ...` (not an HF folder)."""
    run = read_run_config(folder) or {}
    if not (folder / "model.safetensors").is_file():
        raise BertxError(f"{folder}: a student folder without model.safetensors")
    task = task_of(folder, run, {})
    model = load_small_student(folder).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return TrainedModel(model, load_tokenizer(str(folder)), task, get_kind(task), data_options(run, max_length), run)


def trained_with(model: torch.nn.Module, folder: str | Path, max_length: int | None = None, tokenizer=None) -> TrainedModel:
    """A model loaded elsewhere (a view of a shared adapter model) with the folder's task, tokenizer (or the
    one given: adapters of one base share it) and data options."""
    folder = Path(folder)
    run = read_run_config(folder) or {}
    task = task_of(folder, run, {})
    return TrainedModel(model, tokenizer or load_tokenizer(str(folder)), task, get_kind(task), data_options(run, max_length), run)


def load_trained(model_dir: str | Path, device: str | None = None, max_length: int | None = None, bf16: bool = False) -> TrainedModel:
    """Load a fine-tuned folder for evaluation or prediction.

    Args:
        model_dir: the model folder.
        device: "cpu", "cuda", ...; default: a GPU if there is one.
        max_length: longest input in tokens; default: the training run's.
        bf16: run matrix products in bf16 (faster on recent CPUs and GPUs).
    """
    import transformers

    model_dir = Path(model_dir)
    if is_export(model_dir):
        return load_export(model_dir, max_length)
    if is_small_student(model_dir):
        return load_small(model_dir, device, max_length)
    if is_adapter_folder(model_dir):  # a PEFT run: the base model plus its adapter, merged for speed
        run = read_run_config(model_dir) or {}
        task = task_of(model_dir, run, {})
        model = load_adapter_model(model_dir, task.auto_class, run)
    elif is_sentence_classifier(model_dir):  # a few-shot run: a sentence encoder and a head on its mean-pooled tokens
        run = read_run_config(model_dir) or {}
        task = task_of(model_dir, run, {}) if run.get("task") else TASKS["classification"]
        model = load_sentence_classifier(model_dir)
    else:
        run = read_run_config(model_dir) or {}
        if "multitask" in run:  # refused in one line naming its tasks, whatever encoder it shares
            task_of(model_dir, run, {})
        config = check_encoder_folder(str(model_dir))
        task = task_of(model_dir, run, config)
        model = getattr(transformers, task.auto_class).from_pretrained(model_dir)
    data = data_options(run, max_length)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    if task.auto_class == "AutoModelForSequenceClassification":
        enable_cls_only_last_layer(model)  # the head reads [CLS] only: skip the rest of the last layer
    return TrainedModel(model, load_tokenizer(str(model_dir)), task, get_kind(task), data, run, torch.bfloat16 if bf16 else None)
