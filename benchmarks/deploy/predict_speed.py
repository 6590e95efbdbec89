"""Prediction speed: `bertx predict` vs `transformers.pipeline` on the SST-2 dev sentences.

One fine-tuned model folder is made first (a short bertx fine-tune, or --model-dir), then each set-up
predicts all dev sentences in the same process, timed end to end from raw texts to labels:
  bertx            Predictor.predict (one tokenizer call, length-sorted batches of 128)
  bertx_bf16       the same with bf16 matrix products (`--bf16`; AVX512-BF16 / AMX CPUs, GPUs)
  bertx_cli        `bertx predict` as a subprocess, file in, JSONL out (includes start-up)
  onnx_fp32        `bertx export` (fp32) run by the same Predictor through ONNX Runtime, batches of 32
  onnx_int8        `bertx export --quantize int8` (bertx's default int8 recipe), batches of 32
  openvino_bertx   `bertx export --format openvino` (the openvino package in this environment), batches of 32:
                   the CPU plugin's own precision (bf16 on AVX512-BF16 / AMX CPUs), and `_f32` with fp32 forced
  pipeline_bs1     pipeline("text-classification", batch_size=1)
  pipeline_bs32    pipeline("text-classification", batch_size=32)
  openvino_*       with --openvino-python: OpenVINO through optimum-intel, fp32, int8 weights and static int8
                   (benchmarks/deploy/openvino_rows.py, in its own environment)
Accuracy on the dev labels is reported for the PyTorch model and both exports.

Usage: python -m benchmarks.deploy.predict_speed [--quick] [--model-dir DIR] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/deploy/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save, timed


def single_latency_ms(predictor, texts: list[str], n: int = 200) -> float:
    """Median milliseconds for one sentence, raw text to label."""
    import statistics
    import time

    times = []
    for text in texts[:n]:
        started = time.perf_counter()
        predictor.predict([text], batch_size=1)
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 3)


def make_model(data_dir: str) -> str:
    import bertx

    out = tempfile.mkdtemp() + "/sst2"
    bertx.finetune(
        {
            "task": "classification",
            "output": out,
            "data": {"train": f"{data_dir}/sst2/train.tsv", "max_train_examples": 2000},
            "train": {"epochs": 1, "save_steps": None},
        },
        show_progress=False,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="One timing per set-up instead of best of 3.")
    parser.add_argument("--model-dir", default=None, help="A fine-tuned folder (default: make one).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument(
        "--openvino-python",
        default=None,
        help="The Python of an environment with optimum-intel[openvino] (its own: it pins another "
        "transformers): adds the OpenVINO rows (benchmarks/deploy/openvino_rows.py).",
    )
    args = parser.parse_args()
    dev = Path(args.data_dir) / "sst2/dev.tsv"
    if not dev.is_file():
        raise SystemExit(f"SST-2 dev not found at {dev} (pass --data-dir)")
    repeats = 1 if args.quick else 3
    model_dir = args.model_dir or make_model(args.data_dir)
    rows = [line.split("\t") for line in dev.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    texts, gold = [r[0] for r in rows], [r[1] for r in rows]
    accuracy = lambda predicted: round(100 * sum(p["label"] == g for p, g in zip(predicted, gold)) / len(gold), 2)  # noqa: E731

    from transformers import pipeline

    from bertx.inference.predictor import Predictor

    predictor = Predictor.load(model_dir)
    predictor.predict(texts[:64])  # warm-up: first-call allocations
    results: dict = {}
    wall, ours = timed(lambda: predictor.predict(texts), repeats)
    results["bertx"] = {"wall_s": round(wall, 3), "sentences_per_s": round(len(texts) / wall, 1)}
    fast = Predictor.load(model_dir, bf16=True)
    fast.predict(texts[:64])
    wall, ours_bf16 = timed(lambda: fast.predict(texts), repeats)
    results["bertx_bf16"] = {
        "wall_s": round(wall, 3),
        "sentences_per_s": round(len(texts) / wall, 1),
        "label_agreement_with_fp32": sum(a["label"] == b["label"] for a, b in zip(ours, ours_bf16)) / len(texts),
    }

    results["bertx"]["accuracy"] = accuracy(ours)
    from bertx.export.one_model import export

    exports = [("onnx_fp32", "none", "onnx", None), ("onnx_int8", "int8", "onnx", None)]
    try:
        import openvino  # noqa: F401

        exports += [("openvino_bertx", "none", "openvino", "auto"), ("openvino_bertx_f32", "none", "openvino", "f32")]
    except ImportError:
        print("openvino is not installed: no openvino_bertx rows (pip install 'bertx[openvino]')", file=sys.stderr)
    for name, quantize, form, precision in exports:
        if precision:
            os.environ["BERTX_OPENVINO_PRECISION"] = precision
        folder = Path(tempfile.mkdtemp()) / name
        report = export(model_dir, folder, quantize=quantize, min_agreement=0.0, max_metric_drop=100.0, format=form)
        onnx_predictor = Predictor.load(folder)
        onnx_predictor.predict(texts[:64], batch_size=32)
        wall, predicted = timed(lambda p=onnx_predictor: p.predict(texts, batch_size=32), repeats)
        results[name] = {
            "wall_s": round(wall, 3),
            "sentences_per_s": round(len(texts) / wall, 1),
            "accuracy": accuracy(predicted),
            "label_agreement_with_pytorch": round(sum(a["label"] == b["label"] for a, b in zip(ours, predicted)) / len(texts), 4),
            "onnx_mb": round(report["size_bytes"][form] / 1e6, 1),
            "latency_ms_batch1": single_latency_ms(onnx_predictor, texts),
            **({"openvino_precision": report["openvino_precision"]} if precision else {}),
        }
        os.environ.pop("BERTX_OPENVINO_PRECISION", None)
    if args.openvino_python:  # same folder, sentences, threads; another environment
        found = subprocess.run(
            [
                args.openvino_python,
                str(Path(__file__).with_name("openvino_rows.py")),
                "--model-dir",
                model_dir,
                "--data-dir",
                args.data_dir,
                "--repeats",
                str(repeats),
                "--max-length",
                str(predictor.max_length),
            ],
            capture_output=True,
            text=True,
        )
        if found.returncode != 0:
            raise SystemExit(f"openvino_rows.py failed:\n{found.stderr[-3000:]}")
        openvino = json.loads(found.stdout.strip().splitlines()[-1])
        results.update(openvino["rows"])
        results["openvino_versions"] = openvino["versions"]

    inputs = Path(tempfile.mkdtemp()) / "dev.tsv"
    inputs.write_text(dev.read_text(encoding="utf-8"), encoding="utf-8")
    cmd = [sys.executable, "-m", "bertx.cli", "predict", model_dir, "--input", str(inputs), "--output", str(inputs) + ".jsonl"]
    wall, _ = timed(lambda: subprocess.run(cmd, check=True, capture_output=True), 1)
    results["bertx_cli"] = {
        "wall_s": round(wall, 3),
        "sentences_per_s": round(len(texts) / wall, 1),
        "note": "whole command: Python start-up, model load, read, predict, write",
    }

    classifier = pipeline("text-classification", model=model_dir, device=-1)
    classifier(texts[:64], batch_size=32)
    for name, batch in (("pipeline_bs1", 1), ("pipeline_bs32", 32)):
        wall, theirs = timed(lambda batch=batch: classifier(texts, batch_size=batch), repeats)
        results[name] = {"wall_s": round(wall, 3), "sentences_per_s": round(len(texts) / wall, 1)}
    agree = sum(o["label"] == t["label"] for o, t in zip(ours, theirs)) / len(texts)

    result = {
        "benchmark": "predict_speed",
        "sentences": len(texts),
        "quick": args.quick,
        **results,
        "speedup_vs_pipeline_bs1": round(results["bertx"]["sentences_per_s"] / results["pipeline_bs1"]["sentences_per_s"], 2),
        "speedup_vs_pipeline_bs32": round(results["bertx"]["sentences_per_s"] / results["pipeline_bs32"]["sentences_per_s"], 2),
        "speedup_bf16_vs_pipeline_bs1": round(results["bertx_bf16"]["sentences_per_s"] / results["pipeline_bs1"]["sentences_per_s"], 2),
        "speedup_bf16_vs_pipeline_bs32": round(results["bertx_bf16"]["sentences_per_s"] / results["pipeline_bs32"]["sentences_per_s"], 2),
        "label_agreement_with_pipeline": round(agree, 4),
        "speedup_onnx_fp32_vs_pipeline_b1": round(results["onnx_fp32"]["sentences_per_s"] / results["pipeline_bs1"]["sentences_per_s"], 2),
        "speedup_onnx_int8_vs_pipeline_b1": round(results["onnx_int8"]["sentences_per_s"] / results["pipeline_bs1"]["sentences_per_s"], 2),
        "speedup_onnx_int8_vs_pipeline_b32": round(results["onnx_int8"]["sentences_per_s"] / results["pipeline_bs32"]["sentences_per_s"], 2),
        "accuracy_drop_int8": round(results["bertx"]["accuracy"] - results["onnx_int8"]["accuracy"], 2),
        **(
            {
                "bertx_int8_vs_openvino_int8_static": round(
                    results["onnx_int8"]["sentences_per_s"] / results["openvino_int8_static"]["sentences_per_s"], 2
                )
            }
            if "openvino_int8_static" in results
            else {}
        ),
        "machine": machine(),
    }
    save("predict_speed_quick" if args.quick else "predict_speed", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
