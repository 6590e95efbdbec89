"""What int8 costs, choice by choice: accuracy and speed of each quantisation of one SST-2 model.

The fp32 ONNX graph is exported once (bertx's exporter), then quantised several ways with
onnxruntime.quantization; each variant predicts the 872 SST-2 dev sentences through bertx's Predictor
(length-sorted batches) and is compared with the PyTorch model:
  fp32                 the exported graph, no quantisation
  naive                quantize_dynamic defaults: every MatMul (activation x activation ones too), per-tensor
  per_channel          the same with per-channel weight scales
  weights_only         only MatMuls with a weight operand (attention scores QK^T and PV stay fp32), per-channel
  weights_only_head    weights_only, and the classifier and pooler kept in fp32
  fused_*              the same after onnxruntime.transformers' BERT fusion (Attention, SkipLayerNorm, Gelu)
  preprocessed_*       the same after onnxruntime's recommended quantisation pre-processing (shape inference)
  calibrated_fallback  weights_only_head, and the MatMul groups calibration on training text finds most
                       sensitive kept in fp32 (bertx's default, `bertx export --quantize int8`)
  static_qdq           static QDQ quantisation calibrated on 512 training sentences (per-channel weights)

Usage: python -m benchmarks.deploy.export_int8_choices --model-dir RUN [--quick] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/deploy/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

from bertx.export.quantize import matmul_nodes as weight_matmuls  # noqa: E402


def variants(fp32: Path, work: Path, train_texts: list[str], trained) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    made = {"fp32": fp32}
    with_weight, act_act = weight_matmuls(fp32)
    head = [n for n in with_weight if "classifier" in n or "pooler" in n]

    def dynamic(name, source, **kwargs):
        target = work / f"{name}.onnx"
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, **kwargs)
        made[name] = target

    dynamic("naive", fp32)
    dynamic("per_channel", fp32, per_channel=True)
    dynamic("weights_only", fp32, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=act_act)
    dynamic("weights_only_head", fp32, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=act_act + head)

    from onnxruntime.transformers.optimizer import optimize_model

    config = trained.model.config
    fused = optimize_model(str(fp32), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
    fused_path = work / "fused_fp32.onnx"
    fused.save_model_to_file(str(fused_path))
    made["fused_fp32"] = fused_path
    fused_weight, fused_act = weight_matmuls(fused_path)
    fused_head = [n for n in fused_weight if "classifier" in n or "pooler" in n]
    import onnx

    dynamic(
        "fused_weights_only_head",
        fused_path,
        per_channel=True,
        nodes_to_exclude=fused_act + fused_head,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )

    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work / "preprocessed_fp32.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # symbolic inference fails on the traced graph
    pre_weight, pre_act = weight_matmuls(prepared)
    dynamic(
        "preprocessed_weights_only_head",
        prepared,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=pre_act + [n for n in pre_weight if "classifier" in n or "pooler" in n],
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            encoded = [trained.tokenizer(text, truncation=True, max_length=trained.data.max_length, return_tensors="np") for text in train_texts]
            self.items = iter([{k: v.astype("int64") for k, v in e.items()} for e in encoded])

        def get_next(self):
            return next(self.items, None)

    # bertx's default: the groups calibration on training text finds most sensitive stay fp32.
    from bertx.export.parity import calibration_features, output_arrays
    from bertx.export.quantize import calibrated_int8
    from bertx.inference.onnx_model import OnnxTaskModel

    features = calibration_features(trained)
    target = work / "calibrated_fallback.onnx"
    calibrated_int8(fp32, target, lambda graph: output_arrays(trained, OnnxTaskModel(graph, trained.model.config), features))
    made["calibrated_fallback"] = target

    target = work / "static_qdq.onnx"
    quantize_static(
        str(fp32),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=act_act + head,
    )
    made["static_qdq"] = target
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="A fine-tuned SST-2 folder.")
    parser.add_argument("--quick", action="store_true", help="One timing per variant instead of best of 3.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    data = Path(args.data_dir) / "sst2"
    rows = lambda name: [line.split("\t") for line in (data / name).read_text(encoding="utf-8").splitlines()[1:] if line.strip()]  # noqa: E731
    dev = rows("dev.tsv")
    texts, gold = [r[0] for r in dev], [r[1] for r in dev]
    train_texts = [r[0] for r in rows("train.tsv")[:512]]

    from bertx.export.one_model import to_onnx
    from bertx.inference.loading import load_trained
    from bertx.inference.onnx_model import OnnxTaskModel
    from bertx.inference.predictor import Predictor

    trained = load_trained(args.model_dir, device="cpu")
    reference = Predictor.from_trained(trained).predict(texts)
    torch_accuracy = sum(p["label"] == g for p, g in zip(reference, gold)) / len(gold)
    work = Path(tempfile.mkdtemp())
    fp32 = work / "fp32.onnx"
    to_onnx(load_trained(args.model_dir, device="cpu"), fp32, 17)
    results = {}
    for name, path in variants(fp32, work, train_texts, trained).items():
        predictor = Predictor.from_trained(replace(trained, model=OnnxTaskModel(path, trained.model.config)))
        predictor.predict(texts[:64], batch_size=32)
        best = float("inf")
        for _ in range(1 if args.quick else 3):
            start = time.perf_counter()
            predicted = predictor.predict(texts, batch_size=32)
            best = min(best, time.perf_counter() - start)
        accuracy = sum(p["label"] == g for p, g in zip(predicted, gold)) / len(gold)
        results[name] = {
            "accuracy": round(100 * accuracy, 2),
            "drop_pts": round(100 * (torch_accuracy - accuracy), 2),
            "agreement": round(sum(p["label"] == r["label"] for p, r in zip(predicted, reference)) / len(texts), 4),
            "sentences_per_s": round(len(texts) / best, 1),
            "mb": round(path.stat().st_size / 1e6, 1),
        }
        print(name, results[name], file=sys.stderr, flush=True)
    result = {
        "benchmark": "export_int8_choices",
        "model": args.model_dir,
        "pytorch_accuracy": round(100 * torch_accuracy, 2),
        "sentences": len(texts),
        "batch_size": 32,
        "quick": args.quick,
        "variants": results,
        "machine": machine(),
    }
    save("export_int8_choices_quick" if args.quick else "export_int8_choices", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
