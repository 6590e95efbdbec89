"""Many LoRA adapters behind one server, batches mixing adapters, against one merged model.

One `bertx multitask ... peft.method=lora` run trains a LoRA adapter and head per task (SST-2 and the four
Amazon domains) over frozen MiniLM; each task is exported as an adapter folder. A folder of `--adapters`
adapters is made from them: the five trained ones, then variants of them (each B matrix scaled by a random
factor in [0.5, 1.5], and every third with a three-label head: a third row added to the classifier), which
cost what trained adapters cost. Then, each server in its own process on a loopback port, an aiohttp client
on the same machine sends single-sentence requests (SST-2 dev):

    merged    `bertx serve` of the SST-2 adapter merged into its base (`bertx merge`) and exported to ONNX
              fp32 (`bertx export`): the fastest one model at the bank's precision; also the merged folder
              served by PyTorch, as a second row
    bank      `bertx serve bank=FOLDER` of all the adapters (one ONNX graph, the default runtime), each
              request naming a random adapter, so nearly every micro-batch mixes adapters; the admin route
              on: during the concurrency-32 run one adapter is added and another removed (after the clients
              stop drawing it); also its concurrency-1 latency with `--adapter-runtime pytorch`
    bank-1    the same folder with one adapter (the memory baseline)

Figures: throughput at concurrency 32 (bank over merged ONNX, and over merged PyTorch), p50 at concurrency 1, resident memory per adapter
((bank - bank-1) / (N - 1), after warm-up), errors, the live changes, and for the trained adapters the
share of dev sentences on which the bank decides as the merged adapter does.

Usage: python -m benchmarks.serve.serve_adapters [--quick] [--adapters N] [--requests N] [--data-dir DIR]
The last line of stdout is one JSON object; also saved in results/serve_adapters[_quick].json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.serving import Server, free_port

TASKS = {
    "sst2": "sst2",
    "books": "multidomain/books",
    "dvd": "multidomain/dvd",
    "kitchen": "multidomain/kitchen",
    "electronics": "multidomain/electronics",
}
TOKEN = "benchmark-admin-token-0123456789"


def dev_sentences(data_dir: str) -> list[str]:
    with open(Path(data_dir) / "sst2/dev.tsv", encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t")]


def train_adapters(args, work: Path) -> tuple[dict, dict, dict]:
    """One multi-task LoRA run over all tasks; each task exported (adapter) and merged (plain folder)."""
    from bertx.config import MultitaskConfig, validate_config
    from bertx.export.merge import merge
    from bertx.recipes.multitask import multitask
    from bertx.recipes.task_folders import export_task

    run = work / "multitask-lora"
    config = validate_config(
        {
            "output": str(run),
            "data_dir": args.data_dir,
            "tasks": [
                {
                    "name": name,
                    "kind": "classification",
                    "train": f"{{data_dir}}/{path}/train.tsv",
                    "dev": f"{{data_dir}}/{path}/dev.tsv",
                    "data": {"max_length": 128, "max_train_examples": args.train_examples},
                }
                for name, path in TASKS.items()
            ],
            "sampling": {"strategy": "proportional"},
            "peft": {"method": "lora"},
            "train": {"epochs": 1, "batch_size": 32, "save_steps": None, "seed": 42},
        },
        schema=MultitaskConfig,
    )
    if not (run / "metrics.json").is_file():
        print(f"[train] LoRA multi-task on {', '.join(TASKS)} ...", file=sys.stderr, flush=True)
        multitask(config, overwrite=True, show_progress=False)
    final = json.loads((run / "metrics.json").read_text())
    adapters, merged = {}, {}
    for name in TASKS:
        adapters[name] = str(export_task(run, name, work / "adapters" / name, overwrite=True))
        merged[name] = str(merge(adapters[name], work / "merged" / name, overwrite=True))
    scores = {name: round(100 * metrics["accuracy"], 2) for name, metrics in final["tasks"].items()}
    return adapters, merged, {"dev_accuracy": scores, "train_wall_s": final["wall_s"], "steps": final["steps"]}


def variant(source: str, target: Path, rng: random.Random, three_labels: bool) -> None:
    """A copy of a trained adapter with its B matrices scaled (and optionally a three-label head)."""
    from safetensors.torch import load_file, save_file
    import torch

    shutil.copytree(source, target)
    tensors = load_file(str(target / "adapter_model.safetensors"))
    factor = rng.uniform(0.5, 1.5)
    tensors = {k: v * factor if ".lora_B." in k else v for k, v in tensors.items()}
    if three_labels:
        weight = next(k for k in tensors if k.endswith("classifier.weight"))
        bias = weight[: -len("weight")] + "bias"
        generator = torch.Generator().manual_seed(rng.randrange(2**31))
        tensors[weight] = torch.cat([tensors[weight], 0.02 * torch.randn(1, tensors[weight].shape[1], generator=generator)])
        tensors[bias] = torch.cat([tensors[bias], torch.zeros(1)])
        config = json.loads((target / "config.json").read_text())
        config["id2label"] = {"0": "negative", "1": "positive", "2": "mixed"}
        config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
        config["num_labels"] = 3
        (target / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(target / "adapter_model.safetensors"))


def make_bank(adapters: dict, folder: Path, count: int, seed: int = 0) -> list[str]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    names = list(adapters)[:count]
    for name in names:
        shutil.copytree(adapters[name], folder / name)
    sources = list(adapters.values())
    for i in range(len(names), count):
        name = f"variant-{i:03d}"
        variant(sources[i % len(sources)], folder / name, rng, three_labels=i % 3 == 0)
        names.append(name)
    return names


async def drive(
    url: str, texts: list[str], concurrency: int, requests: int, adapters: list[str] | None, progress: list[int] | None = None, seed: int = 0
) -> dict:
    """`requests` single-sentence requests, `concurrency` in flight; each names a random adapter of the
    live list `adapters` (None: no adapter field). Errors are any status but 200."""
    import aiohttp

    rng = random.Random(seed)
    latencies: list[float] = []
    failures: dict = {}
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def worker():
            for i in counter:
                body = {"inputs": [texts[i % len(texts)]]}
                if adapters is not None:
                    body["adapter"] = rng.choice(adapters)
                start = time.perf_counter()
                try:
                    async with session.post(url, json=body) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError as err:
                    status = type(err).__name__
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    failures[status] = failures.get(status, 0) + 1
                if progress is not None:
                    progress[0] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)  # noqa: E731
    return {
        "concurrency": concurrency,
        "requests": requests,
        "errors": sum(failures.values()),
        "failures": failures,
        "sentences_per_s": round(requests / wall, 1),
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
    }


def rss_mb(server: Server) -> float:
    return round(server.ps.memory_info().rss / 2**20, 1)


def serve(folder_spec: str, port: int, admin: Path | None = None, runtime: str = "onnx") -> Server:
    command = [sys.executable, "-m", "bertx.cli", "serve", folder_spec, "--port", str(port), "--adapter-runtime", runtime]
    if admin is not None:
        command += ["--admin-token-file", str(admin)]
    server = Server(command, port)
    server.wait_ready()
    return server


def live_changes(port: int, names: list[str], progress: list[int], requests: int, spare: str, victim: str, log: list) -> None:
    """At a third of the run add an adapter (clients then draw it too); at two thirds stop drawing `victim`,
    let its requests in flight finish, and remove it."""
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    while progress[0] < requests // 3:
        time.sleep(0.05)
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/adapters/live-added", json={"folder": spare}, headers=headers, timeout=60)
    log.append({"change": "add", "status": answer.status_code, "at_request": progress[0]})
    if answer.status_code == 200:
        names.append("live-added")
    while progress[0] < 2 * requests // 3:
        time.sleep(0.05)
    names.remove(victim)
    time.sleep(1.0)  # the requests already naming it finish
    answer = httpx.delete(f"http://127.0.0.1:{port}/v1/adapters/{victim}", headers=headers, timeout=60)
    log.append({"change": "remove", "status": answer.status_code, "at_request": progress[0]})


def agreement(port: int, merged_port: int, texts: list[str]) -> float:
    """Share of sentences on which the bank's SST-2 adapter decides as the merged SST-2 model does."""
    import httpx

    same = 0
    for start in range(0, len(texts), 32):
        batch = texts[start : start + 32]
        ours = httpx.post(f"http://127.0.0.1:{port}/v1/models/bank/predict", json={"inputs": batch, "adapter": "sst2"}, timeout=60)
        theirs = httpx.post(f"http://127.0.0.1:{merged_port}/v1/models/merged/predict", json={"inputs": batch}, timeout=60)
        same += sum(a["label"] == b["label"] for a, b in zip(ours.json()["outputs"], theirs.json()["outputs"]))
    return round(same / len(texts), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 training examples per task, 20 adapters, 2,000 requests.")
    parser.add_argument("--train-examples", type=int, default=None, help="Training examples per task (default 1000).")
    parser.add_argument("--adapters", type=int, default=None, help="Adapters in the bank (default 100).")
    parser.add_argument("--requests", type=int, default=None, help="Requests at concurrency 32 (default 20,000).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-serve-adapters")
    args = parser.parse_args()
    args.train_examples = args.train_examples or (300 if args.quick else 1000)
    count = args.adapters or (20 if args.quick else 100)
    requests = args.requests or (2_000 if args.quick else 20_000)
    if not (Path(args.data_dir) / "multidomain/books/train.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/multidomain not found (pass --data-dir)")
    work = Path(args.work)
    texts = dev_sentences(args.data_dir)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731

    adapters, merged, training = train_adapters(args, work)
    names = make_bank(adapters, work / "bank", count)
    make_bank(adapters, work / "bank-1", 1)
    spare = work / "spare"
    shutil.rmtree(spare, ignore_errors=True)
    variant(adapters["kitchen"], spare, random.Random(99), three_labels=True)
    token = work / "admin-token"
    token.write_text(TOKEN + "\n")
    adapter_mb = round((Path(adapters["sst2"]) / "adapter_model.safetensors").stat().st_size / 2**20, 2)

    from bertx.export.one_model import export

    merged_onnx = work / "merged-onnx"
    if not (merged_onnx / "export_report.json").is_file():
        export(merged["sst2"], merged_onnx, overwrite=True)

    def merged_rows(folder: str) -> tuple[Server, dict]:
        server = serve(f"merged={folder}", free_port())
        url = f"http://127.0.0.1:{server.port}/v1/models/merged/predict"
        asyncio.run(drive(url, texts, 4, 100, None))
        row = {
            "c1": asyncio.run(drive(url, texts, 1, 500, None)),
            "c32": asyncio.run(drive(url, texts, 32, requests, None)),
            "rss_mb": rss_mb(server),
        }
        return server, row

    torch_server, merged_pytorch = merged_rows(merged["sst2"])
    torch_server.stop()
    log(f"merged (pytorch): {json.dumps(merged_pytorch)}")
    one, merged_row = merged_rows(str(merged_onnx))
    port = one.port
    log(f"merged (onnx): {json.dumps(merged_row)}")

    eager = serve(f"bank={work / 'bank'}", free_port(), runtime="pytorch")
    eager_url = f"http://127.0.0.1:{eager.port}/v1/models/bank/predict"
    asyncio.run(drive(eager_url, texts, 4, 100, names))
    bank_pytorch_c1 = asyncio.run(drive(eager_url, texts, 1, 500, names, seed=1))
    eager.stop()
    log(f"bank (pytorch) c1: {json.dumps(bank_pytorch_c1)}")

    small = serve(f"bank={work / 'bank-1'}", free_port())
    asyncio.run(drive(f"http://127.0.0.1:{small.port}/v1/models/bank/predict", texts, 4, 100, ["sst2"]))
    bank1_rss = rss_mb(small)
    small.stop()

    bank = serve(f"bank={work / 'bank'}", free_port(), admin=token)
    url = f"http://127.0.0.1:{bank.port}/v1/models/bank/predict"
    live = list(names)
    asyncio.run(drive(url, texts, 4, 200, live))
    bank_rss = rss_mb(bank)
    agreed = agreement(bank.port, port, texts)
    one.stop()
    c1 = asyncio.run(drive(url, texts, 1, 500, live, seed=1))
    progress, changes = [0], []
    changer = threading.Thread(target=live_changes, args=(bank.port, live, progress, requests, str(spare), names[-1], changes))
    changer.start()
    c32 = asyncio.run(drive(url, texts, 32, requests, live, progress, seed=2))
    changer.join()
    bank_row = {"c1": c1, "c32": c32, "rss_mb": bank_rss, "rss_mb_after": rss_mb(bank), "exit_code_after_sigterm": bank.stop()}
    log(f"bank: {json.dumps(bank_row)}")

    result = {
        "benchmark": "serve_adapters",
        "quick": args.quick,
        "tasks": list(TASKS),
        "train_examples": args.train_examples,
        "training": training,
        "adapter_file_mb": adapter_mb,
        "adapters": count,
        "requests_c32": requests,
        "ratio_c32_vs_merged": round(c32["sentences_per_s"] / merged_row["c32"]["sentences_per_s"], 3),
        "ratio_c32_vs_merged_pytorch": round(c32["sentences_per_s"] / merged_pytorch["c32"]["sentences_per_s"], 3),
        "runtime": "onnx fp32 (bank and merged)",
        "bank_pytorch_c1": bank_pytorch_c1,
        "merged_pytorch": merged_pytorch,
        "p50_ms_c1": c1["p50_ms"],
        "mb_per_adapter": round((bank_rss - bank1_rss) / (count - 1), 2),
        "errors": c1["errors"] + c32["errors"],
        "live_changes": sum(c["status"] == 200 for c in changes),
        "live_change_log": changes,
        "sst2_agreement_with_merged": agreed,
        "bank": bank_row,
        "merged": merged_row,
        "bank_1_rss_mb": bank1_rss,
        "machine": machine(),
    }
    save("serve_adapters" + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
