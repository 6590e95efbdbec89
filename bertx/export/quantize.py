"""int8 that keeps the accuracy: dynamic quantisation with a calibrated fp32 fallback for sensitive layers.

ONNX Runtime's dynamic quantisation, as bertx applies it:
- only MatMuls with a weight operand are quantised (int8 weights with per-channel scales, uint8
  activations with a per-tensor scale computed at run time); the attention-score products (QK^T, PV)
  and the task head and pooler stay fp32;
- then the groups of MatMuls whose quantisation moves the outputs most are found on calibration text
  (the run's training examples, never its dev set) and kept in fp32, most sensitive first, until the
  outputs' change has fallen to `target_ratio` of the all-int8 change or `max_fp32_groups` groups are
  kept. The change is the outputs' mean squared difference, except for extractive QA, where it is
  `span_error`: only the positions the fp32 model might pick an answer boundary at count, since a
  small change there moves a span and a large one elsewhere moves nothing.

Measured on SST-2 MiniLM (benchmarks/deploy/export_int8_choices.py and docs/deploy.md): everything in int8 loses
about 1 point of accuracy; the sensitive parts are the feed-forward blocks of the first layers, and
keeping those the calibration picks costs about 15% of the int8 speed and recovers most of the loss.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np

LAYER = re.compile(r"layers?\.(\d+)/")  # `layer.3/` in the exported node names
HEAD_PARTS = ("classifier", "qa_outputs", "pooler")


def matmul_nodes(path: Path) -> tuple[list[str], list[str]]:
    """(MatMul/Gemm nodes with a weight operand, MatMuls of two activations) of an ONNX graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    with_weight, activations = [], []
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            (with_weight if any(i in weights for i in node.input) else activations).append(node.name)
    return with_weight, activations


def component_groups(nodes: list[str]) -> dict[str, list[str]]:
    """The weight MatMuls of the encoder in groups that fall back to fp32 together: per layer, its
    attention projections (query, key, value, output), its feed-forward input and its feed-forward output."""
    groups: dict[str, list[str]] = {}
    for name in nodes:
        found = LAYER.search(name)
        if not found:
            continue
        part = "attention" if "attention" in name else "ffn_in" if "intermediate" in name else "ffn_out"
        groups.setdefault(f"layer {found.group(1)} {part}", []).append(name)
    return groups


def quantize(source: Path, target: Path, exclude: list[str]) -> None:
    import logging
    import os
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime's symbolic shape inference leaves `sym_shape_infer_temp.onnx` in the working directory
    # when it gives up; run it from a scratch folder so the user's directory never collects it.
    source, target = Path(source).resolve(), Path(target).resolve()
    here = os.getcwd()
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="bertx-quantize-") as scratch:
        os.chdir(scratch)
        root.setLevel(logging.ERROR)  # its "consider pre-processing" warning, once per calibration step, says nothing to act on
        try:
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_exclude=exclude,
            )
        finally:
            os.chdir(here)
            root.setLevel(level)


def mean_squared(reference: list[np.ndarray], found: list[np.ndarray]) -> float:
    return float(np.mean([np.mean((a - b) ** 2) for a, b in zip(reference, found)]))


def span_error(reference: list[np.ndarray], found: list[np.ndarray]) -> float:
    """For (windows, positions) start and end logits: per window, the squared change of each position's
    log-probability, weighted by the fp32 model's probability of that position; averaged."""

    def log_softmax(x: np.ndarray) -> np.ndarray:
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    errors = []
    for a, b in zip(reference, found):
        ref, new = log_softmax(a.astype(np.float64)), log_softmax(b.astype(np.float64))
        errors.append(np.mean(np.sum(np.exp(ref) * (new - ref) ** 2, axis=1)))
    return float(np.mean(errors))


def calibrated_int8(
    source: Path,
    target: Path,
    outputs_of: Callable[[Path], list[np.ndarray]],
    max_fp32_groups: int = 5,
    target_ratio: float = 0.5,
    keep_fp32: Optional[list[str]] = None,
    log: Callable[[str], None] = lambda line: None,
    change: Callable[[list, list], float] = mean_squared,
) -> dict:
    """Quantise `source` into `target`, keeping the calibrated most sensitive groups of MatMuls in fp32.

    Each group (a layer's attention projections, its feed-forward input, its feed-forward output) is
    scored by the outputs' mean squared change with every other group in int8 and it alone in fp32;
    groups then fall back to fp32 in that order until the change is `target_ratio` of the all-int8
    change, or `max_fp32_groups` groups are fp32.

    Args:
        source, target: the fp32 graph, and where the int8 graph goes.
        outputs_of: a graph -> its output arrays on the calibration inputs.
        max_fp32_groups: most groups kept in fp32 (0: quantise every group).
        target_ratio: stop once the outputs' mean squared change is this share of the all-int8 change.
        keep_fp32: name parts of MatMuls always kept in fp32 (default: the task head and the pooler).
        change: how far a graph's outputs are from the fp32 graph's (`mean_squared`, `span_error`).

    Returns:
        What was done, for the export report: the groups kept, the calibration error of each step.
    """
    with_weight, activations = matmul_nodes(source)
    always = [n for n in with_weight if any(part in n for part in (HEAD_PARTS if keep_fp32 is None else keep_fp32))]
    groups = component_groups([n for n in with_weight if n not in always])
    reference = outputs_of(source)
    trial = target.with_name(target.stem + ".trial.onnx")

    def error(kept: list[str]) -> float:
        quantize(source, trial, activations + always + [n for group in kept for n in groups[group]])
        return change(reference, outputs_of(trial))

    all_int8 = error([])
    log(f"int8 calibration: every group quantised, output change {all_int8:.3g}")
    steps = [{"fp32_groups": [], "mse": all_int8}]
    if max_fp32_groups > 0:
        alone = {group: error([group]) for group in groups}
        ranked = sorted(alone, key=alone.get)
        kept: list[str] = []
        for group in ranked[:max_fp32_groups]:
            if steps[-1]["mse"] <= target_ratio * all_int8:
                break
            kept.append(group)
            steps.append({"fp32_groups": list(kept), "mse": error(kept) if len(kept) > 1 else alone[group]})
            log(f"int8 calibration: {group} kept in fp32, output change {steps[-1]['mse']:.3g}")
    kept = steps[-1]["fp32_groups"]
    quantize(source, target, activations + always + [n for group in kept for n in groups[group]])
    trial.unlink(missing_ok=True)
    return {
        "method": "dynamic int8, per-channel weights, calibrated fp32 fallback",
        "weights": "int8 (symmetric, per channel)",
        "activations": "uint8 (dynamic, per tensor)",
        "fp32_groups": kept,
        "fp32_always": always,
        "activation_matmuls_fp32": len(activations),
        "quantized_matmuls": len(with_weight) - len(always) - sum(len(groups[g]) for g in kept),
        "calibration": steps,
        "change": change.__name__,
        "target_ratio": target_ratio,
        "max_fp32_groups": max_fp32_groups,
    }
