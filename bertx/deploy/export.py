"""`bertx export`: a trained folder -> an ONNX folder that checks itself before it says it is done.

    run folder (fine-tuned, multi-task export, distilled student; any task kind)
    -> torch.onnx.export (dynamic batch and sequence axes, eager attention, the [CLS]-only last layer kept)
    -> [int8] onnxruntime.quantization: dynamic, per-channel weights, chosen layers kept in fp32
    -> parity on a sample (the run's dev file when it has one): largest logit difference, label /
       entity / answer agreement, the task metric of both, file sizes -> export_report.json
    -> the folder: model.onnx, config.json (labels), tokenizer, bertx_run.yaml, export_report.json

An export whose agreement with the PyTorch model falls below `min_agreement` fails, saying by how much,
and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal, Optional

import torch

from bertx.errors import BertxError
from bertx.inference.loading import TrainedModel, load_trained
from bertx.inference.onnx_model import ONNX_FILE, OnnxTaskModel
from bertx.training import outputs

QUANTIZE = ("none", "int8")


def input_names(model) -> list[str]:
    """The inputs the model's forward takes (DistilBERT and RoBERTa-likes have no token types)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]


def output_names(task) -> list[str]:
    return ["start_logits", "end_logits"] if task.name == "qa" else ["logits"]


class _Outputs(torch.nn.Module):
    """The HF model with positional inputs and a tuple of tensors out: what the exporter traces."""

    def __init__(self, model, names: list[str], outputs_: list[str]):
        super().__init__()
        self.model, self.names, self.outputs = model, names, outputs_

    def forward(self, *inputs):
        result = self.model(**dict(zip(self.names, inputs)))
        return tuple(getattr(result, name) for name in self.outputs)


def to_onnx(trained: TrainedModel, path: Path, opset: int) -> None:
    """Trace the PyTorch model into an ONNX graph with dynamic batch and sequence axes."""
    model = trained.model
    model.set_attn_implementation("eager")  # plain MatMul/Softmax: what ONNX Runtime fuses and quantizes
    names, outs = input_names(model), output_names(trained.task)
    # A padded example batch: the traced graph must keep the attention mask's path.
    encoded = trained.tokenizer(["a short example", "a somewhat longer example sentence for the export"],
                                padding=True, return_tensors="pt")
    sample = tuple(encoded[name] if name in encoded else torch.zeros_like(encoded["input_ids"]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch", 1: "sequence"} if trained.task.name in ("ner", "qa") else {0: "batch"} for name in outs})
    wrapper = _Outputs(model, names, outs).eval()
    import warnings

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow in transformers' code
        torch.onnx.export(wrapper, sample, str(path), input_names=names, output_names=outs, dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    model.eval()


def quantize_int8(source: Path, target: Path, keep_fp32: list[str]) -> dict:
    """Dynamic int8 with per-channel weight scales; MatMuls whose names contain a `keep_fp32` part stay fp32.

    Returns what was quantized and kept, for the report."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    matmuls = [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm")]
    excluded = [name for name in matmuls if any(part in name for part in keep_fp32)]
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=excluded)
    return {"matmuls": len(matmuls), "kept_fp32": excluded, "per_channel": True, "weights": "int8 (symmetric)",
            "activations": "uint8, dynamic per tensor"}


# Which MatMuls stay fp32 under int8 by default: the task head (its few weights decide the label) and the
# pooler. Measured on SST-2 MiniLM in benchmarks/predict_speed.py (see docs/deploy.md for each choice).
DEFAULT_KEEP_FP32 = ["classifier", "qa_outputs", "pooler"]


def export(run_dir: str | Path, output: str | Path, quantize: Literal["none", "int8"] = "none", opset: int = 17,
           min_agreement: float = 0.99, sample_size: int = 256, sample_file: Optional[str] = None,
           keep_fp32: Optional[list[str]] = None, overwrite: bool = False) -> dict:
    """Export a trained folder to ONNX, check it against the PyTorch model, write the folder.

    Args:
        run_dir: a bertx run folder (or any HF task-model folder).
        output: the export folder to write.
        quantize: "none" (fp32) or "int8" (dynamic, per-channel weights).
        opset: ONNX opset.
        min_agreement: fail when fewer than this share of the sample's predictions agree.
        sample_size: examples of the sample the parity check runs.
        sample_file: labelled file for the check; default: the run's dev file, else its training file.
        keep_fp32: name parts of MatMuls to keep in fp32 under int8 (default: the head and the pooler).
        overwrite: replace an earlier export in `output`.

    Returns:
        The export report (also written to `output/export_report.json`).
    """
    if quantize not in QUANTIZE:
        raise BertxError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZE)}")
    if not 0 <= min_agreement <= 1:
        raise BertxError(f"--min-agreement {min_agreement}: give a share between 0 and 1 (0.99 = 99%)")
    run_dir, output = Path(run_dir), Path(output)
    trained = load_trained(run_dir, device="cpu")
    if isinstance(trained.model, OnnxTaskModel):
        raise BertxError(f"{run_dir}: already an ONNX export; export the run folder it came from")
    _check_output(output, overwrite, [run_dir, sample_file])
    tmp = output.with_name(output.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        report = _export_into(trained, run_dir, tmp, quantize, opset, min_agreement, sample_size, sample_file,
                              DEFAULT_KEEP_FP32 if keep_fp32 is None else keep_fp32)
        if output.exists():
            outputs.empty_folder(output)
            output.rmdir()
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _check_output(output: Path, overwrite: bool, reads: list) -> None:
    outputs.check_writable_target(output)
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise BertxError(f"{output}: output folder is not empty; choose another or pass --overwrite")
        outputs.check_deletable(output, [r for r in reads if r])
    outputs.make_folder(output.parent, "--output parent")


def _export_into(trained: TrainedModel, run_dir: Path, folder: Path, quantize: str, opset: int, min_agreement: float,
                 sample_size: int, sample_file: Optional[str], keep_fp32: list[str]) -> dict:
    started = time.perf_counter()
    fp32 = folder / ("model.fp32.onnx" if quantize != "none" else ONNX_FILE)
    to_onnx(trained, fp32, opset)
    quantization = None
    if quantize == "int8":
        quantization = quantize_int8(fp32, folder / ONNX_FILE, keep_fp32)
        fp32.unlink()
    onnx_model = OnnxTaskModel(folder / ONNX_FILE, trained.model.config)
    from bertx.deploy.parity import parity

    check = parity(trained, replace(trained, model=onnx_model), sample_file, sample_size)
    report = {
        "source": str(run_dir), "task": trained.task.name, "quantize": quantize, "opset": opset,
        "inputs": input_names(trained.model), "outputs": output_names(trained.task), **check,
        "min_agreement": min_agreement, "quantization": quantization,
        "size_bytes": {"onnx": (folder / ONNX_FILE).stat().st_size, "pytorch": _weights_size(run_dir)},
        "seconds": round(time.perf_counter() - started, 1),
        "onnxruntime": _version("onnxruntime"), "torch": torch.__version__,
    }
    if check["agreement"] < min_agreement:
        raise BertxError(f"{run_dir}: the ONNX model agrees with PyTorch on {100 * check['agreement']:.2f}% of "
                         f"{check['sample']['examples']} sample predictions, {100 * (min_agreement - check['agreement']):.2f} "
                         f"points below --min-agreement {100 * min_agreement:g}% (largest logit difference "
                         f"{check['max_abs_logit_diff']:.4g}); nothing was written")
    trained.model.config.save_pretrained(folder)
    trained.tokenizer.save_pretrained(folder)
    run = dict(trained.run) or {"task": trained.task.name}
    run.setdefault("task", trained.task.name)
    run["export"] = {"from": str(run_dir), "quantize": quantize, "opset": opset}
    outputs.write_run_config(folder, run)
    (folder / "export_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _weights_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def describe(report: dict) -> str:
    """The report in a few lines, for the console."""
    lines = [f"exported {report['task']} model ({report['quantize']}) from {report['source']}",
             f"agreement with PyTorch: {100 * report['agreement']:.2f}% of {report['sample']['examples']} "
             f"({report['sample']['source']}), largest logit difference {report['max_abs_logit_diff']:.3g}"]
    if report.get("metrics"):
        torch_m, onnx_m = report["metrics"]["pytorch"], report["metrics"]["onnx"]
        shown = [k for k, v in torch_m.items() if isinstance(v, float)][:3]
        lines.append("metrics on the sample (pytorch -> onnx): " + ", ".join(f"{k} {torch_m[k]:.4f} -> {onnx_m[k]:.4f}" for k in shown))
    size = report["size_bytes"]
    lines.append(f"size: {size['onnx'] / 1e6:.1f} MB (PyTorch weights {size['pytorch'] / 1e6:.1f} MB)")
    return "\n".join(lines)


def read_report(folder: Path) -> dict:
    return json.loads((Path(folder) / "export_report.json").read_text(encoding="utf-8"))

