"""`bertx export MULTITASK_RUN`: one ONNX graph with the shared encoder and every sequence head.

    multi-task folder -> MultiTaskPredictor (the encoder once, each head's own trained forward on its output)
    -> torch.onnx.export of all heads together: inputs as a task model's, one output `logits_<task>` per head
    -> [int8] the same calibrated dynamic quantisation as a single model (`export/quantize.py`), judged on
       every head's outputs at once
    -> parity per head: each head's decisions from the graph against PyTorch on that task's dev texts
       (else its training texts, else sentences made from the vocabulary) -> export_report.json
    -> the folder: model.onnx, config.json (the encoder's), heads/<head>/config.json (labels), tokenizer,
       bertx_run.yaml (the run's, with `export`), export_report.json

`MultiTaskPredictor.load` and `bertx serve` read the folder like the run: one session run per batch
answers every requested head (ONNX Runtime computes only the outputs asked for).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bertx import runfolder
from bertx.errors import BertxError
from bertx.models.multitask import HEADS_DIR, head_config_file

OUTPUT_PREFIX = "logits_"
MIN_AGREEMENT = 0.98  # default gate per head: int8 flips only near-ties


class _AllHeads(torch.nn.Module):
    """Positional inputs in, every head's logits out, from one encoder pass: what the exporter traces."""

    def __init__(self, predictor, names: list[str], tasks: list[str]):
        super().__init__()
        self.predictor, self.names, self.tasks = predictor, names, tasks
        # registered, so the exporter sees their weights as the graph's initialisers, not as constants
        self.encoder = predictor.encoder
        self.heads = torch.nn.ModuleDict({task: predictor.heads[task].model for task in tasks})
        self.requires_grad_(False)

    def forward(self, *inputs):
        batch = dict(zip(self.names, inputs))
        self.predictor._computed.outputs = self.encoder(**batch)
        return tuple(self.heads[task](**batch).logits for task in self.tasks)


def sample_texts(run: dict, task: str, head, tokenizer, size: int, split: str = "dev") -> list[tuple[str, Optional[str]]]:
    """Up to `size` inputs of a head's own data (its dev file for parity, its training file for calibration)."""
    from bertx.data.examples import read_examples
    from bertx.export.parity import synthetic_words

    entry = next((t for t in run.get("tasks") or [] if t.get("name") == task), {})
    columns = (run.get("multitask", {}).get(task) or {}).get("columns") or {}
    path = entry.get(split)
    if isinstance(path, str) and Path(path).is_file():
        examples, _ = read_examples(path, head.spec, columns.get("text"), columns.get("text_pair"), None, require_label=False)
        step = max(1, len(examples) // size)
        found = [(e.text, e.text_pair) for e in examples[::step][:size]]
        if found:
            return found
    words = synthetic_words(tokenizer, size)
    return [(" ".join(w), " ".join(reversed(w)) if head.pairs else None) for w in words]


def export_multitask(
    run_dir: Path, output: Path, quantize: str, opset: int, min_agreement: Optional[float], sample_size: int, fp32_groups: int, overwrite: bool, log
) -> dict:
    from bertx.export.tracing import input_names
    from bertx.export.parity import decisions_agree
    from bertx.inference.multitask_predictor import MultiTaskPredictor

    predictor = MultiTaskPredictor.load(run_dir)
    run = runfolder.read_run_config(run_dir) or {}
    tasks = list(predictor.heads)
    gate = MIN_AGREEMENT if min_agreement is None else min_agreement
    with runfolder.output_folder(output, "export", overwrite, [run_dir]) as folder:
        started = time.perf_counter()
        fp32 = folder / ("model.fp32.onnx" if quantize == "int8" else "model.onnx")
        names = input_names(predictor.encoder)
        _trace(predictor, names, tasks, fp32, opset, run_dir)
        samples = {t: sample_texts(run, t, predictor.heads[t], predictor.tokenizer, sample_size) for t in tasks}
        quantization = None
        if quantize == "int8":
            from bertx.export.quantize import calibrated_int8

            calibration = {t: sample_texts(run, t, predictor.heads[t], predictor.tokenizer, 128, "train") for t in tasks}
            outputs_of = lambda graph: [a for t in tasks for a in [_graph_logits(graph, predictor, calibration[t], t)]]  # noqa: E731
            quantization = calibrated_int8(fp32, folder / "model.onnx", outputs_of, fp32_groups, log=log)
            fp32.unlink()
        heads = {}
        for task in tasks:
            head = predictor.heads[task]
            texts = samples[task]
            reference = predictor._heads_on(_features(predictor, texts, head.max_length), [task], 64)[task]
            exported = _graph_logits(folder / "model.onnx", predictor, texts, task)
            same = decisions_agree(head.spec.label_kind, reference, exported, [])
            heads[task] = {"examples": len(texts), "agreement": round(same, 4), "max_abs_logit_diff": float(np.abs(reference - exported).max())}
        report = {
            "source": str(run_dir),
            "task": "multitask",
            "tasks": tasks,
            "quantize": quantize,
            "opset": opset,
            "outputs": [OUTPUT_PREFIX + t for t in tasks],
            "heads": heads,
            "gate": {"min_agreement": gate},
            "quantization": quantization,
            "agreement": min(h["agreement"] for h in heads.values()),
            "size_bytes": {"onnx": (folder / "model.onnx").stat().st_size},
            "seconds": round(time.perf_counter() - started, 1),
        }
        worst = min(heads, key=lambda t: heads[t]["agreement"])
        if heads[worst]["agreement"] < gate:
            raise BertxError(
                f"{run_dir}: head {worst!r} of the ONNX model decides as PyTorch on "
                f"{100 * heads[worst]['agreement']:.2f}% of {heads[worst]['examples']} sample inputs, below "
                f"{100 * gate:g}% (--min-agreement); nothing was written"
            )
        _save_encoder_config(predictor.encoder, folder)
        predictor.tokenizer.save_pretrained(folder)
        for task in tasks:
            head_dir = run_dir / HEADS_DIR / run["multitask"][task]["head"]
            labels = head_config_file(head_dir)
            (folder / HEADS_DIR / head_dir.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(labels, folder / HEADS_DIR / head_dir.name / labels.name)
        run = dict(run)
        run["multitask"] = {t: info for t, info in run["multitask"].items() if t in tasks}  # token/span heads stay behind
        run["export"] = {"from": str(run_dir), "quantize": quantize, "opset": opset, "skipped": predictor.skipped}
        run["written_as"] = "export"
        runfolder.write_run_config(folder, run)
        runfolder.write_json(folder / "export_report.json", report)
    return report


def _save_encoder_config(encoder, folder: Path) -> None:
    """The shared encoder's architecture beside the graph (a small student's under its own name, so the
    folder is not mistaken for one single-task student)."""
    from bertx.models.small_students import ENCODER_FILE, SmallEncoder

    if isinstance(encoder, SmallEncoder):
        encoder.config.save_pretrained(folder, ENCODER_FILE)
    else:
        encoder.config.save_pretrained(folder)


def _trace(predictor, names: list[str], tasks: list[str], path: Path, opset: int, run_dir: Path) -> None:
    from bertx.export.tracing import trace

    predictor.encoder.set_attn_implementation("eager")
    try:
        trace(_AllHeads(predictor, names, tasks).eval(), predictor.tokenizer, names, {OUTPUT_PREFIX + t: {0: "batch"} for t in tasks}, path, opset)
    except (RuntimeError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise BertxError(f"{run_dir}: the ONNX exporter cannot write this model at opset {opset}: {first}") from None
    finally:
        predictor._computed.outputs = None


def _features(predictor, texts, max_length: int):
    from bertx.data.examples import Example
    from bertx.data.features import tokenize

    return tokenize(predictor.tokenizer, [Example(t, p, None, i + 1) for i, (t, p) in enumerate(texts)], max_length)


def _graph_logits(graph: Path, predictor, texts, task: str) -> np.ndarray:
    """One head's logits from an ONNX graph, batched as the predictor batches."""
    from bertx.inference.multitask_predictor import OnnxHeads

    features = _features(predictor, texts, predictor.heads[task].max_length)
    return OnnxHeads(graph).logits(features, [task], predictor.tokenizer.pad_token_id, 64)[task]
