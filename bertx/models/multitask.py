"""One shared encoder and one head per task (`MultiTaskModel`), its folder, and export of one task.

Every head is the head part of Hugging Face's own `*For<Task>` model, built by the task's kind. The
task models keep working as HF models (their kinds evaluate them unchanged), but their encoder
attribute is pointed at the one shared encoder:

    MultiTaskModel
      encoder                 BertModel (shared; registered once)
      heads: ModuleDict
        rte   {classifier}    the non-encoder children of rte's BertForSequenceClassification
        conll {classifier}    ... of a BertForTokenClassification
      (task models: plain attributes, not registered: encoder + their head, in HF's forward)

A multi-task student of BiLSTM/CNN/bag kind has the same shape: each head is a small student
(`models/small_students.SequenceStudent`) whose `body` (embeddings and BiLSTM or convolutions) is the shared
encoder, and whose pooling and classifier are the head.

A saved multi-task folder is an encoder folder with heads beside it, so `bertx finetune --model DIR`
starts from the shared encoder with no conversion (a small student's encoder is written as
`small_encoder.json` + `model.safetensors`, each head's labels as `student.json`):

    DIR/config.json, model.safetensors, tokenizer files   the shared encoder (AutoModel)
    DIR/heads/<head>/config.json                          the task model's HF config (labels, problem_type)
    DIR/heads/<head>/head.safetensors                     the head's weights
    DIR/bertx_run.yaml                                    the run config, with each task's columns and labels
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from bertx.errors import BertxError
from bertx.models.encoder import save_encoder
from bertx.models.small_students import (
    STUDENT_FILE,
    SequenceStudent,
    SmallEncoder,
    SmallStudentConfig,
    is_small_encoder_folder,
    load_small_encoder,
    save_small_encoder,
)

HEADS_DIR = "heads"
HEAD_WEIGHTS = "head.safetensors"


def _encoder_attribute(model: nn.Module) -> str:
    return model.base_model_prefix


def head_state(task_model: nn.Module) -> dict[str, torch.Tensor]:
    """The task model's weights outside its encoder (classifier, pooler-free parts), keyed as in the task model."""
    prefix = _encoder_attribute(task_model) + "."
    return {k: v for k, v in task_model.state_dict().items() if not k.startswith(prefix)}


class MultiTaskModel(nn.Module):
    def __init__(self, task_models: dict[str, nn.Module], head_of: dict[str, str]):
        """
        Args:
            task_models: head name -> an HF task model (`*For<Task>`), each loaded on the same encoder weights.
            head_of: task name -> head name.
        """
        super().__init__()
        # Sequence heads read the pooler; token and span heads' encoders are built without one. Share an
        # encoder that has it, so every head finds what it reads.
        first = next(iter(task_models.values()))
        with_pooler = [m for m in task_models.values() if getattr(m.base_model, "pooler", None) is not None]
        self.encoder = (with_pooler or [first])[0].base_model
        self.heads = nn.ModuleDict()
        self._task_models: dict[str, nn.Module] = {}
        for name, model in task_models.items():
            setattr(model, _encoder_attribute(model), self.encoder)
            self.heads[name] = nn.ModuleDict({n: child for n, child in model.named_children() if child is not self.encoder})
            self._task_models[name] = model
        self.head_of = dict(head_of)

    @property
    def config(self):
        """The encoder's config (layer counts for layer-wise learning rates)."""
        return self.encoder.config

    def task_model(self, task: str) -> nn.Module:
        """The HF model of `task`: shared encoder + its head, usable by the task's kind for evaluation."""
        return self._task_models[self.head_of[task]]

    def train(self, mode: bool = True):
        # The task models are not registered children, so nn.Module.train would not reach their own
        # flag; a kind's evaluate restores that flag afterwards and must not restore a stale one.
        super().train(mode)
        for model in self._task_models.values():
            model.training = mode
        return self

    def forward(self, task: str, **batch):
        return self.task_model(task)(**batch)

    # ---- the folder --------------------------------------------------------------------------
    def save(self, target: Path, tokenizer) -> None:
        """Write encoder + heads into `target` atomically (a temporary folder swapped in)."""
        from safetensors.torch import save_file

        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(self.encoder, SmallEncoder):
            save_small_encoder(self.encoder, tmp)
            tokenizer.save_pretrained(tmp)
        else:
            save_encoder(self.encoder, tokenizer, tmp)
        for name, model in self._task_models.items():
            folder = tmp / HEADS_DIR / name
            folder.mkdir(parents=True)
            model.config.save_pretrained(folder)
            save_file({k: v.detach().contiguous().cpu() for k, v in head_state(model).items()}, str(folder / HEAD_WEIGHTS))
        old = target.with_name(target.name + ".old")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)


def load_shared_encoder(mt_dir: str | Path) -> nn.Module:
    """A multi-task folder's shared encoder: an HF encoder, or a small student's (BiLSTM, CNN, bag)."""
    from transformers import AutoModel

    return load_small_encoder(mt_dir) if is_small_encoder_folder(mt_dir) else AutoModel.from_pretrained(mt_dir)


def empty_head_model(head_dir: str | Path, auto_class: str) -> nn.Module:
    """The task model of a head folder, built from its config (weights still to load)."""
    if (Path(head_dir) / STUDENT_FILE).is_file():
        return SequenceStudent(SmallStudentConfig.from_folder(head_dir))
    import transformers
    from transformers import AutoConfig

    return getattr(transformers, auto_class).from_config(AutoConfig.from_pretrained(head_dir))


def head_config_file(head_dir: str | Path) -> Path:
    """The file that holds a head's labels: an HF config.json, or a small student's student.json."""
    small = Path(head_dir) / STUDENT_FILE
    return small if small.is_file() else Path(head_dir) / "config.json"


def head_labels(head_dir: str | Path) -> list[str]:
    if (Path(head_dir) / STUDENT_FILE).is_file():
        config = SmallStudentConfig.from_folder(head_dir)
    else:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(head_dir)
    return [config.id2label[i] for i in range(config.num_labels)]


def load_task_model(mt_dir: str | Path, head: str, auto_class: str):
    """Rebuild one task's full model from a multi-task folder: shared encoder + that head."""
    from safetensors.torch import load_file

    mt_dir = Path(mt_dir)
    folder = mt_dir / HEADS_DIR / head
    if not (folder / HEAD_WEIGHTS).is_file():
        found = sorted(p.name for p in (mt_dir / HEADS_DIR).iterdir()) if (mt_dir / HEADS_DIR).is_dir() else []
        raise BertxError(f"{folder}: no head {head!r} in this multi-task folder (heads: {', '.join(found) or 'none'})")
    model = empty_head_model(folder, auto_class)
    config = model.config
    encoder = load_shared_encoder(mt_dir)
    missing, unexpected = model.base_model.load_state_dict(encoder.state_dict(), strict=False)
    # A token or span head's encoder has no pooler; the shared one may. Nothing else may differ.
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise BertxError(f"{mt_dir}: the shared encoder does not fit head {head!r} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    missing, unexpected = model.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)), strict=False)
    prefix = _encoder_attribute(model) + "."
    if unexpected or any(not k.startswith(prefix) for k in missing):
        raise BertxError(
            f"{folder / HEAD_WEIGHTS}: head weights do not fit {getattr(config, 'architectures', None) or type(model).__name__} "
            f"(missing {[k for k in missing if not k.startswith(prefix)][:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()
