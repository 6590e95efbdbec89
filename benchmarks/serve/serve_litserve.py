"""`bertx serve` against LitServe, the batching server a user would pick, on sentences and on reviews.

Three servers, one after another, each in its own process on a loopback port:
- `bertx serve` of an int8 ONNX export (micro-batched, admission by expected answer time);
- LitServe (dynamic batching, `max_batch_size` 32) around bertx's own `Predictor` on the same export:
  the same model, so the ratio is the server's alone;
- LitServe around a `transformers` `pipeline` on the PyTorch run: what a user writes without bertx.

Each is loaded with plain clients (one text per request, no retries): concurrency 32 on SST-2 sentences,
concurrency 32 on Amazon reviews of 100-500 words (both truncated at the model's length), and bursts of
200 clients that send one review each at the same moment. A request counts as answered within the
deadline when it gets a 200 in at most `--deadline-ms` (bertx serve's own deadline, 2 s by default).

The client shares the machine's 2 cores with the server under test, for every server alike.

Usage: python -m benchmarks.serve.serve_litserve --model-dir RUN [--export-dir INT8_EXPORT] [--quick]
The last line of stdout is one JSON object; also saved in results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.serving import Server, documents, drive, free_port, sentences

LITSERVE_SERVER = r"""
import sys

import litserve as ls

kind, folder, port, max_length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


class Classifier(ls.LitAPI):
    def setup(self, device):
        if kind == "bertx":  # bertx's own predictor on the int8 export: the same model as `bertx serve`
            from bertx.inference.predictor import Predictor

            predictor = Predictor.load(folder)
            self.run = lambda texts: predictor.predict(texts)
        else:
            from transformers import pipeline

            classifier = pipeline("text-classification", model=folder, device=-1)
            self.run = lambda texts: classifier(texts, truncation=True, max_length=max_length, batch_size=len(texts))

    def decode_request(self, request):
        return request["inputs"][0]

    def predict(self, texts):
        return self.run(list(texts))

    def encode_response(self, output):
        return {"outputs": [output]}


if __name__ == "__main__":
    server = ls.LitServer(Classifier(max_batch_size=32, batch_timeout=0.005), accelerator="cpu", workers_per_device=1,
                          timeout=30)
    server.run(port=port, log_level="warning", generate_client_file=False)
"""


class LitServer(Server):
    def wait_ready(self, timeout: float = 300) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"LitServe exited early: {self.proc.stderr.read()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit("LitServe did not become ready")


async def burst(url: str, texts: list[str], clients: int, deadline_s: float) -> dict:
    """`clients` requests sent at the same moment, one text each; how many were answered, and in time."""
    import aiohttp

    results: list[tuple[int, float]] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(i: int):
            start = time.perf_counter()
            try:
                async with session.post(url, json={"inputs": [texts[i % len(texts)]]}) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            results.append((status, time.perf_counter() - start))

        await asyncio.gather(*(one(i) for i in range(clients)))
    answered = [t for s, t in results if s == 200]
    answered.sort()
    return {
        "clients": clients,
        "answered": len(answered),
        "refused_503": sum(s == 503 for s, _ in results),
        "answered_within_deadline": sum(t <= deadline_s for t in answered),
        "p99_answered_ms": round(1000 * answered[min(len(answered) - 1, int(0.99 * len(answered)))], 1) if answered else None,
    }


def measure(name: str, server: Server, path: str, loads: dict, requests: int, bursts: int, deadline_s: float) -> dict:
    server.wait_ready()
    url = f"http://127.0.0.1:{server.port}{path}"
    asyncio.run(drive(url, loads["sentences"], 4, 50))  # warm-up
    result = {}
    for mode in ("sentences", "documents"):
        result[f"{mode}_c32"] = level = asyncio.run(drive(url, loads[mode], 32, requests))
        print(f"{name} {mode} c32 {level}", file=sys.stderr, flush=True)
    shots = []
    for b in range(bursts):
        shots.append(asyncio.run(burst(url, loads["documents"][b * 200 :], 200, deadline_s)))
        print(f"{name} burst {shots[-1]}", file=sys.stderr, flush=True)
        time.sleep(2)  # the server drains before the next burst
    result["bursts"] = shots
    result["burst_answered_within_deadline"] = sum(s["answered_within_deadline"] for s in shots)
    result["exit_code_after_sigterm"] = server.stop()
    result["peak_rss_mb"] = round(server.peak_rss / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="A fine-tuned SST-2 run folder (the pipeline peer serves it).")
    parser.add_argument("--export-dir", default=None, help="Its int8 export (default: made with `bertx export --quantize int8`).")
    parser.add_argument("--quick", action="store_true", help="300 requests per load and 2 bursts instead of 2,000 and 5.")
    parser.add_argument("--deadline-ms", type=float, default=2000.0)
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    requests, bursts = (300, 2) if args.quick else (2000, 5)
    loads = {"sentences": sentences(Path(args.data_dir)), "documents": documents(Path(args.data_dir))}
    import yaml

    max_length = int(((yaml.safe_load((Path(args.model_dir) / "bertx_run.yaml").read_text()) or {}).get("data") or {}).get("max_length") or 128)
    export_dir = args.export_dir
    if export_dir is None:
        export_dir = str(Path(tempfile.mkdtemp()) / "int8")
        subprocess.run([sys.executable, "-m", "bertx.cli", "export", args.model_dir, "--output", export_dir, "--quantize", "int8"], check=True)
    deadline_s = args.deadline_ms / 1000
    rows = {}
    port = free_port()
    rows["bertx"] = measure(
        "bertx",
        Server([sys.executable, "-m", "bertx.cli", "serve", f"sst2={export_dir}", "--port", str(port), "--deadline-ms", str(args.deadline_ms)], port),
        "/v1/models/sst2/predict",
        loads,
        requests,
        bursts,
        deadline_s,
    )
    script = Path(tempfile.mkdtemp()) / "litserve_server.py"  # a file: LitServe's worker processes re-import it
    script.write_text(LITSERVE_SERVER, encoding="utf-8")
    for name, kind, folder in (("litserve_same_model", "bertx", export_dir), ("litserve_pipeline", "pipeline", args.model_dir)):
        port = free_port()
        rows[name] = measure(
            name,
            LitServer([sys.executable, str(script), kind, folder, str(port), str(max_length)], port),
            "/predict",
            loads,
            requests,
            bursts,
            deadline_s,
        )

    def ratio(peer: str, mode: str) -> float:
        return round(rows["bertx"][f"{mode}_c32"]["sentences_per_s"] / rows[peer][f"{mode}_c32"]["sentences_per_s"], 2)

    result = {
        "benchmark": "serve_litserve",
        "quick": args.quick,
        "requests_per_load": requests,
        "bursts": bursts,
        "deadline_ms": args.deadline_ms,
        "max_length": max_length,
        "model": args.model_dir,
        "mean_words": {mode: round(sum(len(t.split()) for t in texts) / len(texts), 1) for mode, texts in loads.items()},
        **rows,
        "vs_litserve_same_model": {f"{m}_c32": ratio("litserve_same_model", m) for m in ("sentences", "documents")},
        "vs_litserve_pipeline": {f"{m}_c32": ratio("litserve_pipeline", m) for m in ("sentences", "documents")},
        "documents_c32_refused": rows["bertx"]["documents_c32"]["errors"],
        "burst_answered_within_deadline": {
            "bertx": rows["bertx"]["burst_answered_within_deadline"],
            "litserve": rows["litserve_same_model"]["burst_answered_within_deadline"],
            "litserve_pipeline": rows["litserve_pipeline"]["burst_answered_within_deadline"],
            "of": 200 * bursts,
        },
        "machine": machine(),
    }
    save("serve_litserve" + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
