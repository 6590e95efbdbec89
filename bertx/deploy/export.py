"""`bertx export`: a trained folder -> an ONNX folder that checks itself before it says it is done.

    run folder (fine-tuned, multi-task export, distilled student; any task kind)
    -> torch.onnx.export (dynamic batch and sequence axes, eager attention, the [CLS]-only last layer kept)
    -> [int8] onnxruntime.quantization: dynamic, per-channel weights; the layers calibration on training
       text finds most sensitive kept in fp32 (`deploy/quantize.py`)
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


def export(run_dir: str | Path, output: str | Path, quantize: Literal["none", "int8"] = "none", opset: int = 17,
           min_agreement: float = 0.99, sample_size: int = 1000, sample_file: Optional[str] = None,
           fp32_groups: int = 5, keep_fp32: Optional[list[str]] = None, overwrite: bool = False,
           log=lambda line: None) -> dict:
    """Export a trained folder to ONNX, check it against the PyTorch model, write the folder.

    Args:
        run_dir: a bertx run folder (or any HF task-model folder).
        output: the export folder to write.
        quantize: "none" (fp32) or "int8" (dynamic, per-channel weights).
        opset: ONNX opset.
        min_agreement: fail when fewer than this share of the sample's predictions agree.
        sample_size: examples of the sample the parity check runs.
        sample_file: labelled file for the check; default: the run's dev file, else its training file.
        fp32_groups: int8: most groups of MatMuls (a layer's attention, feed-forward input or output)
            kept in fp32, picked by calibration on training text (0: everything in int8).
        keep_fp32: int8: name parts of MatMuls always kept in fp32 (default: the head and the pooler).
        overwrite: replace an earlier export in `output`.
        log: receives progress lines (the int8 calibration steps).

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
                              fp32_groups, keep_fp32, log)
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
                 sample_size: int, sample_file: Optional[str], fp32_groups: int, keep_fp32: Optional[list[str]], log) -> dict:
    started = time.perf_counter()
    fp32 = folder / ("model.fp32.onnx" if quantize != "none" else ONNX_FILE)
    to_onnx(trained, fp32, opset)
    from bertx.deploy.parity import calibration_features, output_arrays, parity

    quantization = None
    if quantize == "int8":
        from bertx.deploy.quantize import calibrated_int8

        features = calibration_features(trained)
        outputs_of = lambda graph: output_arrays(trained, OnnxTaskModel(graph, trained.model.config), features)  # noqa: E731
        quantization = calibrated_int8(fp32, folder / ONNX_FILE, outputs_of, fp32_groups, keep_fp32=keep_fp32, log=log)
        quantization["calibration_examples"] = len(features.lengths)
        fp32.unlink()
    onnx_model = OnnxTaskModel(folder / ONNX_FILE, trained.model.config)

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
    if report.get("quantization"):
        q = report["quantization"]
        lines.append(f"int8: {q['quantized_matmuls']} MatMuls quantized; kept in fp32 by calibration: "
                     f"{', '.join(q['fp32_groups']) or 'nothing'} (output MSE {q['calibration'][0]['mse']:.3g} -> "
                     f"{q['calibration'][-1]['mse']:.3g})")
    size = report["size_bytes"]
    lines.append(f"size: {size['onnx'] / 1e6:.1f} MB (PyTorch weights {size['pytorch'] / 1e6:.1f} MB)")
    return "\n".join(lines)


def read_report(folder: Path) -> dict:
    return json.loads((Path(folder) / "export_report.json").read_text(encoding="utf-8"))

