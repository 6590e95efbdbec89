"""OpenVINO rows for predict_speed.py: the same fine-tuned folder through optimum-intel, on the SST-2 dev sentences.

    openvino_fp32          OVModelForSequenceClassification.from_pretrained(folder, export=True)
    openvino_int8_weights  the same with int8 weights (OVWeightQuantizationConfig(bits=8))
    openvino_int8_static   weights and activations in int8 (OVQuantizer, calibrated on 300 training sentences):
                           the closest counterpart of bertx's int8 export

Each predicts every dev sentence from raw text (the folder's fast tokenizer, length-sorted batches of 32,
truncation at the run's max_length), timed like predict_speed's rows (best of `--repeats`), plus the median
single-sentence latency; accuracy on the dev labels.

It runs in its own environment: optimum-intel pins another transformers than bertx's. predict_speed.py
calls it with `--openvino-python ENV/bin/python`; alone:
    ENV/bin/python -m benchmarks.deploy.openvino_rows --model-dir RUN --data-dir DIR
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path


def read(path: Path) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [r["label"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from optimum.intel import OVConfig, OVModelForSequenceClassification, OVQuantizationConfig, OVQuantizer, OVWeightQuantizationConfig
    from transformers import AutoTokenizer

    import openvino

    texts, gold = read(Path(args.data_dir) / "sst2/dev.tsv")
    train, _ = read(Path(args.data_dir) / "sst2/train.tsv")
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))

    def predict(model, batch: list[str]) -> list[int]:
        encoded = tokenizer(batch, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        with torch.no_grad():
            return model(**encoded).logits.argmax(-1).tolist()

    def measure(model) -> dict:
        labels = model.config.id2label
        predict(model, texts[:32])
        best, found = float("inf"), {}
        for _ in range(args.repeats):
            started = time.perf_counter()
            for start in range(0, len(order), 32):
                chosen = order[start : start + 32]
                for i, label in zip(chosen, predict(model, [texts[i] for i in chosen])):
                    found[i] = labels[label]
            best = min(best, time.perf_counter() - started)
        single = []
        for text in texts[:200]:
            started = time.perf_counter()
            predict(model, [text])
            single.append(time.perf_counter() - started)
        return {
            "wall_s": round(best, 3),
            "sentences_per_s": round(len(texts) / best, 1),
            "latency_ms_batch1": round(1000 * statistics.median(single), 3),
            "accuracy": round(100 * sum(found[i] == g for i, g in enumerate(gold)) / len(gold), 2),
        }

    work = Path(tempfile.mkdtemp())
    rows = {}
    fp32 = OVModelForSequenceClassification.from_pretrained(args.model_dir, export=True)
    rows["openvino_fp32"] = measure(fp32)
    weights = OVModelForSequenceClassification.from_pretrained(args.model_dir, export=True, quantization_config=OVWeightQuantizationConfig(bits=8))
    rows["openvino_int8_weights"] = measure(weights)
    calibration = Dataset.from_list([dict(tokenizer(t, truncation=True, max_length=args.max_length)) for t in train[:300]])
    quantizer = OVQuantizer.from_pretrained(fp32)
    quantizer.quantize(
        calibration_dataset=calibration, save_directory=work / "static", ov_config=OVConfig(quantization_config=OVQuantizationConfig(num_samples=300))
    )
    static = OVModelForSequenceClassification.from_pretrained(work / "static")
    rows["openvino_int8_static"] = measure(static)
    from importlib.metadata import version

    print(
        json.dumps(
            {
                "rows": rows,
                "versions": {
                    "openvino": openvino.__version__,
                    "optimum-intel": version("optimum-intel"),
                    "transformers": version("transformers"),
                    "torch": torch.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
