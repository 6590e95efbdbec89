"""int8 that keeps the accuracy: dynamic quantisation with a calibrated fp32 fallback for sensitive layers.

ONNX Runtime's dynamic quantisation, as bertx applies it:
- only MatMuls with a weight operand are quantised (int8 weights with per-channel scales, uint8
  activations with a per-tensor scale computed at run time); the attention-score products (QK^T, PV)
  and the task head and pooler stay fp32;
- then the encoder layers whose quantisation moves the outputs most are found on calibration text (the
  run's training examples, never its dev set) and kept in fp32, greedily, one layer at a time, until the
  outputs' mean squared change has fallen to `target_ratio` of the all-int8 change or `max_fp32_layers`
  layers are kept.

Measured on SST-2 MiniLM (benchmarks/export_int8_choices.py and docs/deploy.md): every layer in int8 loses
about 1 point of accuracy; the first layers are the sensitive ones, and keeping the two the calibration
picks costs about 30% of the int8 speed-up and recovers most of the loss.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np

LAYER = re.compile(r"layers?\.(\d+)/")
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


def layer_groups(nodes: list[str]) -> dict[int, list[str]]:
    """Encoder layer index -> its weight MatMuls."""
    groups: dict[int, list[str]] = {}
    for name in nodes:
        found = LAYER.search(name)
        if found:
            groups.setdefault(int(found.group(1)), []).append(name)
    return groups


def quantize(source: Path, target: Path, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude)


def calibrated_int8(source: Path, target: Path, outputs_of: Callable[[Path], list[np.ndarray]],
                    max_fp32_layers: int = 2, target_ratio: float = 0.25, keep_fp32: Optional[list[str]] = None,
                    log: Callable[[str], None] = lambda line: None) -> dict:
    """Quantise `source` into `target`, keeping the calibrated most sensitive layers in fp32.

    Args:
        source, target: the fp32 graph, and where the int8 graph goes.
        outputs_of: a graph -> its output arrays on the calibration inputs.
        max_fp32_layers: most encoder layers kept in fp32 (0: quantise every layer).
        target_ratio: stop once the outputs' mean squared change is this share of the all-int8 change.
        keep_fp32: name parts of MatMuls always kept in fp32 (default: the task head and the pooler).

    Returns:
        What was done, for the export report: the layers kept, the calibration error of each step.
    """
    with_weight, activations = matmul_nodes(source)
    always = [n for n in with_weight if any(part in n for part in (HEAD_PARTS if keep_fp32 is None else keep_fp32))]
    groups = layer_groups(with_weight)
    reference = outputs_of(source)
    trial = target.with_name(target.stem + ".trial.onnx")

    def error(kept_layers: list[int]) -> float:
        exclude = activations + always + [n for layer in kept_layers for n in groups[layer]]
        quantize(source, trial, exclude)
        found = outputs_of(trial)
        return float(np.mean([np.mean((a - b) ** 2) for a, b in zip(reference, found)]))

    kept: list[int] = []
    steps = [{"fp32_layers": [], "mse": error([])}]
    log(f"int8 calibration: every layer quantised, output MSE {steps[0]['mse']:.3g}")
    while len(kept) < max_fp32_layers and steps[-1]["mse"] > target_ratio * steps[0]["mse"] and len(kept) < len(groups):
        scores = {layer: error(kept + [layer]) for layer in groups if layer not in kept}
        best = min(scores, key=scores.get)
        kept.append(best)
        steps.append({"fp32_layers": list(kept), "mse": scores[best]})
        log(f"int8 calibration: layer {best} kept in fp32, output MSE {scores[best]:.3g}")
    quantize(source, target, activations + always + [n for layer in kept for n in groups[layer]])
    trial.unlink(missing_ok=True)
    return {"method": "dynamic int8, per-channel weights, calibrated fp32 fallback", "weights": "int8 (symmetric, per channel)",
            "activations": "uint8 (dynamic, per tensor)", "fp32_layers": sorted(kept), "fp32_always": always,
            "activation_matmuls_fp32": len(activations), "quantized_matmuls": len(with_weight) - len(always) -
            sum(len(groups[layer]) for layer in kept), "calibration": steps,
            "target_ratio": target_ratio, "max_fp32_layers": max_fp32_layers}
