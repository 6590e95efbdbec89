"""Shared fixtures: a tiny random-initialised BERT (built in seconds, offline) and tiny data files.

The tiny data is a toy sentiment language: sentences built from clearly positive or clearly negative
words, so a two-layer, 32-wide model learns it in a few dozen steps and tests can assert that
training actually worked.
"""

from __future__ import annotations

import os
import tempfile
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `train.precision: auto` picks bf16 on CPUs with AVX512-BF16/AMX and fp32 elsewhere; the tests pin fp32 so
# that their thresholds hold on every machine (tests/training/test_precision.py checks the choice itself).
os.environ.setdefault("BERTX_PRECISION", "fp32")
# Caches bertx keeps across runs (teacher outputs, written-out datasets, tokenised corpora) go to a folder of
# this session, never the user's ~/.cache; subprocesses inherit it.
os.environ.setdefault("BERTX_CACHE", tempfile.mkdtemp(prefix="bertx-test-cache-"))

# Generated-input tests (tests/test_generated_inputs.py): a bounded example count keeps CI fast;
# `BERTX_HYPOTHESIS=long python -m pytest tests/test_generated_inputs.py` runs 20x as many.
try:
    from hypothesis import HealthCheck, settings

    _checks = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("ci", max_examples=30, deadline=None, suppress_health_check=_checks, derandomize=True)
    settings.register_profile("long", max_examples=600, deadline=None, suppress_health_check=_checks)
    # BERTX_HYPOTHESIS_EXAMPLES=N: any other count (e.g. 60 for the tests that train a tiny model per example)
    settings.register_profile(
        "custom", max_examples=int(os.environ.get("BERTX_HYPOTHESIS_EXAMPLES", "30")), deadline=None, suppress_health_check=_checks
    )
    settings.load_profile("custom" if os.environ.get("BERTX_HYPOTHESIS_EXAMPLES") else os.environ.get("BERTX_HYPOTHESIS", "ci"))
except ImportError:  # pragma: no cover - hypothesis comes with the test extras
    pass

POSITIVE = ["good", "great", "fine", "lovely", "superb", "happy", "bright", "warm"]
NEGATIVE = ["bad", "awful", "poor", "dull", "sad", "dark", "cold", "weak"]
NEUTRAL = ["the", "a", "film", "movie", "story", "was", "is", "very", "quite", "plot", "and", "it"]
SHARED_DATA = Path(os.environ.get("BERTX_DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def make_tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + NEUTRAL + list("abcdefghijklmnopqrstuvwxyz")
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    import torch

    torch.manual_seed(0)
    BertForMaskedLM(config).bert.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


def toy_sentence(rng: random.Random, positive: bool) -> str:
    words = [rng.choice(NEUTRAL) for _ in range(rng.randint(2, 6))]
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if positive else NEGATIVE))
    return " ".join(words)


def write_toy_classification(path: Path, n: int, seed: int, labels=("neg", "pos"), pair: bool = False) -> Path:
    rng = random.Random(seed)
    header = "sentence1\tsentence2\tlabel" if pair else "sentence\tlabel"
    lines = [header]
    for _ in range(n):
        y = rng.random() < 0.5
        text = toy_sentence(rng, y)
        lines.append(f"{text}\t{toy_sentence(rng, y)}\t{labels[y]}" if pair else f"{text}\t{labels[y]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def toy_data(tmp_path):
    """Train/dev TSV files of the toy sentiment task."""
    return (
        str(write_toy_classification(tmp_path / "train.tsv", 240, seed=1)),
        str(write_toy_classification(tmp_path / "dev.tsv", 80, seed=2)),
    )


def tiny_config(tiny_bert: str, train: str, dev: str | None, output: str, **train_overrides) -> dict:
    train_cfg = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7}
    train_cfg.update(train_overrides)
    return {
        "task": "classification",
        "output": output,
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "data": {"train": train, "dev": dev, "max_length": 32},
        "train": train_cfg,
    }


def shared_data(*parts: str) -> Path:
    """A file of the shared datasets, or skip the test saying where it was looked for."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset not found at {path} (set BERTX_DATA_DIR)")
    return path


def count_teacher_passes(monkeypatch, outputs: str = "model_outputs") -> list[int]:
    """Record the size of every batched teacher pass (`model_outputs`, or `token_outputs` for taggers)."""
    from bertx.models import batched_outputs

    calls: list[int] = []
    real = getattr(batched_outputs, outputs)

    def counting(model, features, *args, **kwargs):
        calls.append(len(features.lengths))
        return real(model, features, *args, **kwargs)

    monkeypatch.setattr(batched_outputs, outputs, counting)
    return calls
