"""`train.precision: auto`: bf16 where the hardware runs it fast, fp32 elsewhere, an override for
tests and scripts, and the run says which it used."""

from __future__ import annotations

import json

import pytest

import bertx
from bertx.errors import BertxError
from bertx.training import accelerator
from tests.conftest import tiny_config


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx512f", "avx512_bf16"}, "bf16"),
        ({"amx_bf16", "avx512f"}, "bf16"),
        ({"avx2", "avx512f"}, "fp32"),
        (set(), "fp32"),
    ],
)
def test_auto_follows_the_cpu(monkeypatch, flags, expected):
    monkeypatch.delenv("BERTX_PRECISION", raising=False)
    monkeypatch.setattr(accelerator.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accelerator, "cpu_flags", lambda: frozenset(flags))
    assert accelerator.resolve_precision("auto") == expected
    assert accelerator.resolve_precision("fp32") == "fp32" and accelerator.resolve_precision("bf16") == "bf16"


def test_the_override_and_a_bad_one(monkeypatch):
    monkeypatch.setenv("BERTX_PRECISION", "bf16")
    assert accelerator.resolve_precision("auto") == "bf16" and accelerator.resolve_precision("fp32") == "fp32"
    monkeypatch.setenv("BERTX_PRECISION", "fp8")
    with pytest.raises(BertxError, match="BERTX_PRECISION='fp8'"):
        accelerator.resolve_precision("auto")


def test_the_run_reports_the_precision_it_used(tiny_bert, toy_data, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTX_PRECISION", "bf16")
    out = tmp_path / "run"
    metrics = bertx.finetune(tiny_config(tiny_bert, *toy_data, str(out), epochs=1), show_progress=False)
    assert metrics["precision"] == "bf16" and json.loads((out / "metrics.json").read_text())["precision"] == "bf16"
    start = next(json.loads(line) for line in open(out / "log.jsonl") if '"start"' in line)
    assert start["precision"] == "bf16"
