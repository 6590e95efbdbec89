"""`bertx export`: a trained folder -> an ONNX folder that checks itself before it says it is done.

    run folder (fine-tuned, multi-task export, distilled student; any task kind)
    -> torch.onnx.export (dynamic batch and sequence axes, eager attention, the [CLS]-only last layer kept)
    -> [int8] onnxruntime.quantization: dynamic, per-channel weights; the layers calibration on training
       text finds most sensitive kept in fp32 (`export/quantize.py`)
    -> parity on a sample (the run's dev file when it has one): largest logit difference, label /
       entity / answer agreement, the task metric of both, file sizes -> export_report.json
    -> the folder: model.onnx, config.json (labels), tokenizer, bertx_run.yaml, export_report.json

An export whose task metric on a labelled sample falls more than `max_metric_drop` points below the
PyTorch model's (or, when asked, whose raw agreement falls below `min_agreement`) fails, saying by how
much, and leaves nothing behind. Raw agreement alone punishes a model with many near-ties, whose int8
flips change no score.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Literal, Optional

import torch

from bertx import runfolder
from bertx.errors import BertxError
from bertx.inference.loading import TrainedModel, load_trained
from bertx.export.tracing import TupleOutputs, input_names, output_names, trace
from bertx.inference.graph_io import ONNX_FILE, OPENVINO_FILE
from bertx.inference.onnx_model import OnnxTaskModel

QUANTIZE = ("none", "int8")
FORMATS = ("onnx", "openvino")


def to_onnx(trained: TrainedModel, path: Path, opset: int) -> None:
    """Trace the PyTorch model into an ONNX graph with dynamic batch and sequence axes."""
    model = trained.model
    model.set_attn_implementation("eager")  # plain MatMul/Softmax: what ONNX Runtime fuses and quantizes
    names, outs = input_names(model), output_names(trained.task)
    per_token = trained.task.name in ("ner", "qa")
    trace(
        TupleOutputs(model, names, outs).eval(),
        trained.tokenizer,
        names,
        {name: {0: "batch", 1: "sequence"} if per_token else {0: "batch"} for name in outs},
        path,
        opset,
    )
    model.eval()


# Opsets the TorchScript exporter writes (torch.onnx._constants); below 14 BERT's ops do not all exist.
OPSETS = (14, 20)
# The default gate: the int8 / fp32 model's main metric on the sample may fall at most this far (points).
METRIC_TOLERANCE = 0.5


def export(
    run_dir: str | Path,
    output: str | Path,
    quantize: Literal["none", "int8"] = "none",
    opset: int = 17,
    min_agreement: Optional[float] = None,
    sample_size: int = 1000,
    sample_file: Optional[str] = None,
    fp32_groups: int = 5,
    keep_fp32: Optional[list[str]] = None,
    overwrite: bool = False,
    max_metric_drop: float = METRIC_TOLERANCE,
    format: str = "onnx",
    log=lambda line: None,
) -> dict:
    """Export a trained folder to ONNX, check it against the PyTorch model, write the folder.

    Args:
        run_dir: a bertx run folder (or any HF task-model folder).
        output: the export folder to write.
        quantize: "none" (fp32) or "int8" (dynamic, per-channel weights).
        opset: ONNX opset (14-20).
        min_agreement: when given, also fail when fewer than this share of the sample's predictions agree.
        sample_size: examples of the sample the parity check runs.
        sample_file: labelled file for the check; default: the run's dev file, else its training file.
        fp32_groups: int8: most groups of MatMuls (a layer's attention, feed-forward input or output)
            kept in fp32, picked by calibration on training text (0: everything in int8).
        keep_fp32: int8: name parts of MatMuls always kept in fp32 (default: the head and the pooler).
        overwrite: replace an earlier export in `output` (never another kind of folder).
        max_metric_drop: fail when the task's main metric on a labelled sample falls by more points.
        format: "onnx", or "openvino" (the fp32 graph converted to OpenVINO IR; its CPU plugin may compute in
            bf16, which the parity check measures).
        log: receives progress lines and warnings (data the run recorded that is not there).

    Returns:
        The export report (also written to `output/export_report.json`).
    """
    if quantize not in QUANTIZE:
        raise BertxError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZE)}")
    if format not in FORMATS:
        raise BertxError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if format == "openvino" and quantize != "none":
        raise BertxError(
            "--format openvino --quantize int8: not offered; OpenVINO runs the fp32 graph in bf16 where the "
            "CPU has it (as accurate as bertx's int8 there, and as fast), and its static int8 lost 0.57 points "
            "of SST-2 accuracy (docs/deploy.md); use --format onnx --quantize int8"
        )
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise BertxError(f"--min-agreement {min_agreement}: give a share between 0 and 1 (0.99 = 99%)")
    if not OPSETS[0] <= opset <= OPSETS[1]:
        raise BertxError(f"--opset {opset}: the exporter writes opsets {OPSETS[0]} to {OPSETS[1]}")
    run_dir, output = Path(run_dir), Path(output)
    runfolder.check_output_folder(output, "export", overwrite, [run_dir, sample_file])
    if "multitask" in (runfolder.read_run_config(run_dir) or {}) and not (run_dir / ONNX_FILE).is_file():
        if format != "onnx":
            raise BertxError(f"{run_dir}: a multi-task run exports to ONNX only (--format onnx)")
        from bertx.export.multitask import export_multitask  # every sequence head in one graph

        return export_multitask(run_dir, output, quantize, opset, min_agreement, sample_size, fp32_groups, overwrite, log)
    trained = load_trained(run_dir, device="cpu")
    if getattr(trained.model, "runtime", None) is not None:
        raise BertxError(f"{run_dir}: already an ONNX export; export the run folder it came from")
    _warn_missing_data(trained, sample_file, quantize, log)
    gate = {"max_metric_drop": max_metric_drop, "min_agreement": min_agreement}
    with runfolder.output_folder(output, "export", overwrite, [run_dir, sample_file]) as folder:
        return _export_into(trained, run_dir, folder, quantize, opset, gate, sample_size, sample_file, fp32_groups, keep_fp32, format, log)


def _warn_missing_data(trained: TrainedModel, sample_file: Optional[str], quantize: str, log) -> None:
    """Say which recorded data files are gone, instead of silently checking on made-up sentences."""
    data = trained.run.get("data") or {}
    missing = {key: data[key] for key in ("dev", "train") if isinstance(data.get(key), str) and not Path(data[key]).is_file()}
    if missing.get("dev") and not sample_file:
        fallback = "the training file" if "train" not in missing and data.get("train") else "sentences made from the vocabulary"
        log(f"warning: the run's dev file {missing['dev']} is not there; the parity check uses {fallback} (pass --sample FILE)")
    if missing.get("train") and quantize == "int8":
        log(f"warning: the run's training file {missing['train']} is not there; int8 calibration uses sentences made from the vocabulary")


def _gate(check: dict, gate: dict, run_dir: Path) -> None:
    """Refuse an export that changes what the user cares about: the main metric on a labelled sample
    (by default), or the raw agreement (when --min-agreement is given, and when the sample has no labels)."""
    metrics = check.get("metrics") or {}
    if metrics:
        torch_m, onnx_m = metrics["pytorch"], metrics["onnx"]
        name = check["main_metric"]
        drop = 100 * (torch_m[name] - onnx_m[name])
        if drop > gate["max_metric_drop"]:
            raise BertxError(
                f"{run_dir}: the ONNX model's {name} on the sample is {100 * onnx_m[name]:.2f}, "
                f"{drop:.2f} points below PyTorch's {100 * torch_m[name]:.2f} (allowed: "
                f"--max-metric-drop {gate['max_metric_drop']:g}); nothing was written"
            )
    min_agreement = gate["min_agreement"]
    if min_agreement is None and not metrics:
        min_agreement = 0.99  # no labels to score: agreement is all there is to check
    if min_agreement is not None and check["agreement"] < min_agreement:
        raise BertxError(
            f"{run_dir}: the ONNX model agrees with PyTorch on {100 * check['agreement']:.2f}% of "
            f"{check['sample']['examples']} sample predictions, {100 * (min_agreement - check['agreement']):.2f} "
            f"points below --min-agreement {100 * min_agreement:g}% (largest logit difference "
            f"{check['max_abs_logit_diff']:.4g}); nothing was written"
        )


def _export_into(
    trained: TrainedModel,
    run_dir: Path,
    folder: Path,
    quantize: str,
    opset: int,
    gate: dict,
    sample_size: int,
    sample_file: Optional[str],
    fp32_groups: int,
    keep_fp32: Optional[list[str]],
    format: str,
    log,
) -> dict:
    started = time.perf_counter()
    fp32 = folder / ("model.fp32.onnx" if quantize != "none" or format != "onnx" else ONNX_FILE)
    try:
        to_onnx(trained, fp32, opset)
    except (RuntimeError, ValueError, TypeError) as err:  # the exporter's own refusals (an op this opset lacks, ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise BertxError(f"{run_dir}: the ONNX exporter cannot write this model at opset {opset}: {first}") from None
    from bertx.export.parity import calibration_features, output_arrays, parity

    quantization = None
    if quantize == "int8":
        from bertx.export.quantize import calibrated_int8

        features = calibration_features(trained)
        outputs_of = lambda graph: output_arrays(trained, OnnxTaskModel(graph, trained.model.config), features)  # noqa: E731
        from bertx.export.quantize import mean_squared, span_error

        # Extractive QA picks the best pair of boundaries among hundreds of positions, so a change that leaves a
        # label alone moves a span: its fallback goes on to a quarter of the all-int8 change, not half. Measured on
        # 4,000 SQuAD questions (MiniLM): half -> -0.44 F1; a quarter (all 5 groups) -> -0.09.
        qa = trained.task.name == "qa"
        quantization = calibrated_int8(
            fp32,
            folder / ONNX_FILE,
            outputs_of,
            fp32_groups,
            keep_fp32=keep_fp32,
            log=log,
            change=span_error if qa else mean_squared,
            target_ratio=0.25 if qa else 0.5,
        )
        quantization["calibration_examples"] = len(features.lengths)
        fp32.unlink()
    if format == "openvino":
        from bertx.inference.openvino_model import OpenVinoTaskModel, convert

        convert(fp32, folder / OPENVINO_FILE)
        fp32.unlink()
        onnx_model = OpenVinoTaskModel(folder / OPENVINO_FILE, trained.model.config)
        graph_bytes = sum(f.stat().st_size for f in folder.glob("openvino_model.*"))
    else:
        onnx_model = OnnxTaskModel(folder / ONNX_FILE, trained.model.config)
        graph_bytes = (folder / ONNX_FILE).stat().st_size

    check = parity(trained, replace(trained, model=onnx_model), sample_file, sample_size)
    if check.get("metrics"):
        names = check["metrics"]["pytorch"]
        check["main_metric"] = (
            trained.task.main_metric if trained.task.main_metric in names else next(k for k, v in names.items() if isinstance(v, float))
        )
    report = {
        "source": str(run_dir),
        "task": trained.task.name,
        "format": format,
        "quantize": quantize,
        "opset": opset,
        "inputs": input_names(trained.model),
        "outputs": output_names(trained.task),
        **check,
        "gate": gate,
        "quantization": quantization,
        "size_bytes": {format: graph_bytes, "pytorch": _weights_size(run_dir)},
        "seconds": round(time.perf_counter() - started, 1),
        "onnxruntime": _version("onnxruntime"),
        "torch": torch.__version__,
    }
    if format == "openvino":
        report.update(openvino=_version("openvino"), openvino_precision=onnx_model.precision)
    _gate(check, gate, run_dir)
    trained.model.config.save_pretrained(folder)
    trained.tokenizer.save_pretrained(folder)
    run = dict(trained.run) or {"task": trained.task.name}
    run.setdefault("task", trained.task.name)
    run["export"] = {"from": str(run_dir), "format": format, "quantize": quantize, "opset": opset}
    run["written_as"] = "export"
    runfolder.write_run_config(folder, run)
    runfolder.write_json(folder / "export_report.json", report)
    return report


def _weights_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def describe(report: dict) -> str:
    """The report in a few lines, for the console."""
    if report["task"] == "multitask":
        heads = ", ".join(f"{t} {100 * h['agreement']:.2f}%" for t, h in report["heads"].items())
        return (
            f"exported {len(report['heads'])} heads in one graph ({report['quantize']}) from {report['source']}\n"
            f"agreement with PyTorch per head: {heads}\nsize: {report['size_bytes']['onnx'] / 1e6:.1f} MB"
        )
    lines = [
        f"exported {report['task']} model ({report.get('format', 'onnx')}, {report['quantize']}) from {report['source']}",
        f"agreement with PyTorch: {100 * report['agreement']:.2f}% of {report['sample']['examples']} "
        f"({report['sample']['source']}), largest logit difference {report['max_abs_logit_diff']:.3g}",
    ]
    if report.get("metrics"):
        torch_m, onnx_m = report["metrics"]["pytorch"], report["metrics"]["onnx"]
        shown = [k for k, v in torch_m.items() if isinstance(v, float)][:3]
        lines.append("metrics on the sample (pytorch -> onnx): " + ", ".join(f"{k} {torch_m[k]:.4f} -> {onnx_m[k]:.4f}" for k in shown))
    if report.get("quantization"):
        q = report["quantization"]
        lines.append(
            f"int8: {q['quantized_matmuls']} MatMuls quantized; kept in fp32 by calibration: "
            f"{', '.join(q['fp32_groups']) or 'nothing'} (output {q.get('change', 'mean_squared')} {q['calibration'][0]['mse']:.3g} -> "
            f"{q['calibration'][-1]['mse']:.3g})"
        )
    size = report["size_bytes"]
    graph = report.get("format", "onnx")
    lines.append(f"size: {size[graph] / 1e6:.1f} MB (PyTorch weights {size['pytorch'] / 1e6:.1f} MB)")
    if report.get("openvino_precision"):
        lines.append(f"OpenVINO computes in {report['openvino_precision']} on this CPU")
    return "\n".join(lines)
