"""Load test: `bertx serve` (an int8 ONNX export, micro-batched) against a plain FastAPI + pipeline server.

Each server runs in its own process on a loopback port. An asynchronous aiohttp client sends single-sentence
requests drawn from the SST-2 dev set at concurrency 1, 8, 32 and 64, a fixed number of requests per
level, and records throughput (sentences/s), p50/p95/p99 latency, errors and the server's peak RSS.
The baseline is what people write first: one `pipeline(...)` call per request in a sync FastAPI route.

The client shares the machine's 2 cores with the server: at high rates it takes CPU from the server
under test, for both servers alike.

`--documents`: Amazon reviews of 100-500 words instead, both servers truncating at the model's length.
`--openvino`: also `bertx serve` of the same run exported with `--format openvino` (the openvino package in
this environment; its CPU plugin computes in bf16 where the CPU has it), under the same load.

Usage: python -m benchmarks.serve.serve_load --model-dir RUN [--export-dir EXPORT] [--documents] [--quick] [--requests N]
The last line of stdout is one JSON object (throughput_ratio_c32, p50_ms_c1, ...); also saved in results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.serving import Server, drive, free_port, sentences, documents

LEVELS = (1, 8, 32, 64)

NAIVE_SERVER = r"""
import sys
import uvicorn
from fastapi import FastAPI
from transformers import pipeline

classifier = pipeline("text-classification", model=sys.argv[1], device=-1)
max_length = int(sys.argv[3])  # the model's length, as bertx truncates: the same work per text
app = FastAPI()

@app.get("/ready")
def ready():
    return {"ready": True}

@app.post("/predict")
def predict(body: dict):
    return {"outputs": classifier(body["inputs"], truncation=True, max_length=max_length)}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def load_test(name: str, server: Server, path: str, texts: list[str], requests: int) -> dict:
    server.wait_ready()
    url = f"http://127.0.0.1:{server.port}{path}"
    asyncio.run(drive(url, texts, 4, 50))  # warm-up
    levels = {}
    for concurrency in LEVELS:
        levels[f"c{concurrency}"] = asyncio.run(drive(url, texts, concurrency, requests))
        print(f"{name} {levels[f'c{concurrency}']}", file=sys.stderr, flush=True)
    exit_code = server.stop()
    return {"levels": levels, "peak_rss_mb": round(server.peak_rss / 2**20, 1), "exit_code_after_sigterm": exit_code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="A fine-tuned SST-2 run folder (the baseline serves it).")
    parser.add_argument("--export-dir", default=None, help="Its int8 export (default: made with `bertx export --quantize int8`).")
    parser.add_argument("--quick", action="store_true", help="500 requests per level instead of 5,000.")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument(
        "--documents",
        action="store_true",
        help="Amazon reviews of 100-500 words (truncated to the model's length by both servers) instead "
        "of SST-2 sentences; 2,000 requests per level (quick: 300).",
    )
    parser.add_argument("--openvino", action="store_true", help="Add a row: the run exported with --format openvino.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    requests = args.requests or ((300 if args.quick else 2000) if args.documents else (500 if args.quick else 5000))
    texts = documents(Path(args.data_dir)) if args.documents else sentences(Path(args.data_dir))
    import yaml

    max_length = int(((yaml.safe_load((Path(args.model_dir) / "bertx_run.yaml").read_text()) or {}).get("data") or {}).get("max_length") or 128)
    export_dir = args.export_dir
    if export_dir is None:
        export_dir = str(Path(tempfile.mkdtemp()) / "int8")
        subprocess.run([sys.executable, "-m", "bertx.cli", "export", args.model_dir, "--output", export_dir, "--quantize", "int8"], check=True)

    port = free_port()
    ours = load_test(
        "bertx",
        Server([sys.executable, "-m", "bertx.cli", "serve", f"sst2={export_dir}", "--port", str(port)], port),
        "/v1/models/sst2/predict",
        texts,
        requests,
    )
    openvino = None
    if args.openvino:
        openvino_dir = str(Path(tempfile.mkdtemp()) / "openvino")
        subprocess.run([sys.executable, "-m", "bertx.cli", "export", args.model_dir, "--output", openvino_dir, "--format", "openvino"], check=True)
        port = free_port()
        openvino = load_test(
            "bertx-openvino",
            Server([sys.executable, "-m", "bertx.cli", "serve", f"sst2={openvino_dir}", "--port", str(port)], port),
            "/v1/models/sst2/predict",
            texts,
            requests,
        )
    port = free_port()
    naive = load_test(
        "naive", Server([sys.executable, "-c", NAIVE_SERVER, args.model_dir, str(port), str(max_length)], port), "/predict", texts, requests
    )
    c32, c1, c64 = ours["levels"]["c32"], ours["levels"]["c1"], ours["levels"]["c64"]
    result = {
        "benchmark": "serve_load",
        "mode": "documents" if args.documents else "sentences",
        "texts": len(texts),
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "max_length": max_length,
        "requests_per_level": requests,
        "quick": args.quick,
        "model": args.model_dir,
        "bertx": ours,
        "naive_pipeline_server": naive,
        "throughput_ratio_c32": round(c32["sentences_per_s"] / naive["levels"]["c32"]["sentences_per_s"], 2),
        "p50_ms_c1": c1["p50_ms"],
        "p99_over_p50_c64": round(c64["p99_ms"] / c64["p50_ms"], 2),
        "bertx_errors": sum(level["errors"] for level in ours["levels"].values()),
        **(
            {
                "bertx_openvino": openvino,
                "openvino_vs_int8_c32": round(openvino["levels"]["c32"]["sentences_per_s"] / c32["sentences_per_s"], 2),
                "openvino_p50_ms_c1": openvino["levels"]["c1"]["p50_ms"],
            }
            if openvino
            else {}
        ),
        "machine": machine(),
    }
    save("serve_load" + ("_documents" if args.documents else "") + ("_openvino" if args.openvino else "") + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
