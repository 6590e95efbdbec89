"""How bertx cuts a batch of inputs for the model: at most twice an input's length of padding, against plain
batches of 32, on SST-2 sentences (20 words on average, 8-60 tokens) and on Amazon reviews (all truncated at
128 tokens), through `Predictor` (what `bertx serve`, `predict` and `evaluate` run).

The server hands the predictor batches of up to 32 inputs; sorted by length, a batch of sentences then runs from
about 60 tokens down to 8, padded to its longest. Cut where an input would be padded past twice its length, the
same batch runs as two or three model calls of similar lengths. The settings are interleaved round by round in
one process (the median of the rounds), so a change of the machine's load touches every setting alike.

Usage: python -m benchmarks.serve.batch_padding --export-dir INT8_EXPORT --model-dir RUN [--quick]
The last line of stdout is one JSON object; also saved in results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.serving import documents, sentences

SETTINGS = (None, 3.0, 2.0, 1.5)  # max_padding; None: batches of 32 as they come


def rates(predictor, texts: list[str], rounds: int) -> dict:
    """Inputs/s per setting: the median over `rounds` rounds, the settings taking turns in each round."""
    import bertx.data.batching as batching

    default = batching.sorted_batches.__defaults__
    predictor.predict(texts[:32])  # warm-up
    found = {setting: [] for setting in SETTINGS}
    try:
        for _ in range(rounds):
            for setting in SETTINGS:
                batching.sorted_batches.__defaults__ = (setting,)
                started = time.perf_counter()
                for i in range(0, len(texts), 32):  # the server's batches
                    predictor.predict(texts[i : i + 32])
                found[setting].append(len(texts) / (time.perf_counter() - started))
    finally:
        batching.sorted_batches.__defaults__ = default
    return {str(setting): round(statistics.median(values), 1) for setting, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", required=True, help="An int8 export (`bertx export --quantize int8`).")
    parser.add_argument("--model-dir", required=True, help="The PyTorch run it was exported from.")
    parser.add_argument("--quick", action="store_true", help="3 rounds on fewer texts (about a minute).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    from bertx.inference.predictor import Predictor

    data = Path(args.data_dir)
    loads = {"sentences": sentences(data)[: 192 if args.quick else 384], "documents": documents(data)[: 64 if args.quick else 128]}
    result = {"benchmark": "batch_padding", "quick": args.quick, "rounds": 3 if args.quick else 5, "inputs_per_s": {}}
    for runtime, folder in (("onnx_int8", args.export_dir), ("pytorch", args.model_dir)):
        predictor = Predictor.load(folder)
        for name, texts in loads.items():
            found = rates(predictor, texts, result["rounds"])
            result["inputs_per_s"][f"{runtime}_{name}"] = found
            print(runtime, name, found, flush=True)
    table = result["inputs_per_s"]
    result["speedup_at_2x"] = {key: round(row["2.0"] / row["None"], 2) for key, row in table.items()}
    result["machine"] = machine()
    save("batch_padding" + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
