"""Memory and speed of serving several LoRA adapters of one base: shared (`bertx serve`) against merged copies.

One `bertx multitask ... peft.method=lora` run trains a LoRA adapter and head per task (SST-2 and the four
Amazon domains) over frozen MiniLM; each task is exported as an adapter folder and merged (`bertx merge`)
into a plain HF folder. Then, for N = 1..5 served tasks, a fresh process loads:

    shared     the adapter folders through bertx serve's loader: one base model, N adapters (not merged)
    merged     the merged folders through the same loader: N full models (what adapters of different bases,
               or `bertx merge` outputs, cost)
    pipeline   N `transformers.pipeline` objects on the merged folders (what a user writes by hand)

and records resident memory after loading and a warm-up (VmRSS, and the peak VmHWM), then the speed of
predicting the same dev sentences through every served model in turn (sentences/s). The price of
sharing is speed: the adapter is not merged, so LoRA's small matmuls run at every call.

Usage: python benchmarks/serve_adapters.py [--quick] [--train-examples N] [--sentences N]
The last line of stdout is one JSON object; also saved in results/serve_adapters[_quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

TASKS = {"sst2": "sst2", "books": "multidomain/books", "dvd": "multidomain/dvd", "kitchen": "multidomain/kitchen",
         "electronics": "multidomain/electronics"}
SETTINGS = ("shared", "merged", "pipeline")


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def dev_sentences(data_dir: str, count: int) -> list[str]:
    import csv

    with open(Path(data_dir) / "sst2/dev.tsv", encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t")][:count]


def worker(args) -> None:
    """One setting in this fresh process: load the named folders, warm up, measure memory and speed."""
    import torch  # noqa: F401  (imported before the baseline, as every setting needs it)
    import transformers  # noqa: F401

    from bertx.deploy.server import load_models

    named = dict(spec.split("=", 1) for spec in args.models.split(","))
    texts = dev_sentences(args.data_dir, args.sentences)
    before, _ = rss_mb()
    started = time.perf_counter()
    if args.worker == "pipeline":
        from transformers import pipeline

        models = {name: pipeline("text-classification", model=folder, device=-1) for name, folder in named.items()}

        def predict(name, batch):
            return models[name](batch, batch_size=32, truncation=True)
    else:
        served = load_models(named)

        def predict(name, batch):
            return served[name].predict([(text, None) for text in batch])
    for name in named:
        predict(name, texts[:4])  # warm-up
    load_s = time.perf_counter() - started
    after, peak = rss_mb()
    started = time.perf_counter()
    for start in range(0, len(texts), 32):
        for name in named:
            predict(name, texts[start:start + 32])
    seconds = time.perf_counter() - started
    print(json.dumps({"rss_mb": round(after, 1), "added_mb": round(after - before, 1), "peak_mb": round(peak, 1),
                      "load_s": round(load_s, 2), "sentences_per_s": round(len(texts) * len(named) / seconds, 1),
                      "shared_base": args.worker == "shared" and all(m.info.get("shared_base") for m in served.values())
                      if args.worker != "pipeline" else False}))


def child(setting: str, named: dict[str, str], args) -> dict:
    command = [sys.executable, __file__, "--worker", setting, "--models", ",".join(f"{k}={v}" for k, v in named.items()),
               "--data-dir", args.data_dir, "--sentences", str(args.sentences)]
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{setting} with {len(named)} models failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_adapters(args, work: Path) -> tuple[dict, dict, dict]:
    """One multi-task LoRA run over all tasks; each task exported (adapter) and merged (plain folder)."""
    from bertx.config import MultitaskConfig, validate_config
    from bertx.deploy.merge import merge
    from bertx.recipes.multitask import export_task, multitask

    run = work / "multitask-lora"
    config = validate_config({
        "output": str(run), "data_dir": args.data_dir,
        "tasks": [{"name": name, "kind": "classification", "train": f"{{data_dir}}/{path}/train.tsv",
                   "dev": f"{{data_dir}}/{path}/dev.tsv",
                   "data": {"max_length": 128, "max_train_examples": args.train_examples}} for name, path in TASKS.items()],
        "sampling": {"strategy": "proportional"}, "peft": {"method": "lora"},
        "train": {"epochs": 1, "batch_size": 32, "save_steps": None, "seed": 42},
    }, schema=MultitaskConfig)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 training examples per task, 256 sentences: a few minutes.")
    parser.add_argument("--train-examples", type=int, default=None, help="Training examples per task (default 1000).")
    parser.add_argument("--sentences", type=int, default=None, help="Dev sentences predicted per served model (default 512).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-serve-adapters")
    parser.add_argument("--worker", choices=SETTINGS)
    parser.add_argument("--models", default="")
    args = parser.parse_args()
    args.train_examples = args.train_examples or (300 if args.quick else 1000)
    args.sentences = args.sentences or (256 if args.quick else 512)
    if args.worker:
        worker(args)
        return
    if not (Path(args.data_dir) / "multidomain/books/train.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/multidomain not found (pass --data-dir)")

    adapters, merged, training = train_adapters(args, Path(args.work))
    names = list(TASKS)
    rows = []
    for n in range(1, len(names) + 1):
        chosen = names[:n]
        row = {"models": n}
        for setting in SETTINGS:
            folders = adapters if setting == "shared" else merged
            row[setting] = child(setting, {name: folders[name] for name in chosen}, args)
            print(f"  N={n} {setting}: {row[setting]}", file=sys.stderr, flush=True)
        rows.append(row)
    last, first = rows[-1], rows[0]
    per_model = {setting: round((last[setting]["rss_mb"] - first[setting]["rss_mb"]) / (len(rows) - 1), 1) for setting in SETTINGS}
    adapter_mb = round(sum(f.stat().st_size for f in Path(adapters[names[0]]).glob("adapter_model.safetensors")) / 2**20, 2)
    result = {
        "benchmark": "serve_adapters", "quick": args.quick, "tasks": names, "train_examples": args.train_examples,
        "sentences": args.sentences, "training": training, "adapter_file_mb": adapter_mb, "rows": rows,
        "rss_mb_per_added_model": per_model,
        "memory_ratio_at_n": round(last["merged"]["rss_mb"] / last["shared"]["rss_mb"], 2),
        "speed_ratio_shared_vs_merged": round(last["shared"]["sentences_per_s"] / last["merged"]["sentences_per_s"], 2),
        "speed_ratio_shared_vs_pipeline": round(last["shared"]["sentences_per_s"] / last["pipeline"]["sentences_per_s"], 2),
        "machine": machine(),
    }
    lines = ["| served models | shared RSS MB | merged RSS MB | pipeline RSS MB | shared s/s | merged s/s | pipeline s/s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['models']} | " + " | ".join(f"{row[s]['rss_mb']:.0f}" for s in SETTINGS) + " | "
                     + " | ".join(f"{row[s]['sentences_per_s']:.0f}" for s in SETTINGS) + " |")
    print("\n".join(lines), file=sys.stderr)
    print(f"each added model: {per_model} MB; adapter file {adapter_mb} MB", file=sys.stderr)
    save("serve_adapters" + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
