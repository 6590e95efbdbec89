"""`bertx plan` on four low-resource targets: what the shipped model gains over the plain `bertx finetune`
baseline (trained by the plan on the same labelled data), at what latency, within what budget, and how
close `--dry-run`'s estimate came to the wall time.

Targets (configs/plan/): kitchen (200 labelled reviews, the other kitchen reviews unlabelled, three other
Amazon domains as sources), RTE (other GLUE tasks as sources), SST-2 (500 labelled sentences, 20,000
unlabelled, the Amazon domains as sources), CoNLL-2003 NER (1,000 labelled sentences, the rest as text,
PAN-X English as a source). Each ships a model at most one fifth of the baseline's latency.

For each target, in its own process: `bertx plan CONFIG --dry-run` (its estimate), then `bertx plan
CONFIG` into a fresh folder (the wall time), then plan.json's summary. After all targets, the baseline's
and the shipped model's single-input latency are measured again, back to back in interleaved rounds
(`latency_ratio`; the plan's own figure is kept as `plan_latency_ratio`).

Usage: python benchmarks/plan.py [--quick] [--budget 45m] [--targets kitchen rte sst2 conll2003]
  --quick: a 12-minute budget per target (about 50 minutes in all); the full run gives each 45 minutes.
Source runs are cached in runs/sources-* and shared by the plans (delete them to time their training).
The last line of stdout is one JSON object; it is also saved in benchmarks/results/plan.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("sst2", "kitchen", "conll2003", "rte")


def bertx(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bertx.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bertx {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def run_target(name: str, budget: str, out_root: Path) -> dict:
    config = f"configs/plan/{name}.yaml"
    output = out_root / name
    _, dry = bertx("plan", config, f"budget={budget}", "--output", str(output / "dry"), "--dry-run")
    print(dry, flush=True)
    estimate_min = float(re.search(r"estimated total ([\d.]+) min", dry).group(1))
    wall_s, printed = bertx("plan", config, f"budget={budget}", "--output", str(output / "plan"), "--overwrite")
    print(printed[-4000:], flush=True)
    ledger = json.loads((output / "plan" / "plan.json").read_text(encoding="utf-8"))
    summary = ledger["summary"]
    return {
        "baseline": round(100 * summary["baseline"], 2), "teacher": round(100 * summary["teacher"], 2),
        "shipped": round(100 * summary["shipped"], 2), "gain_pts": summary["gain_pts"], "metric": summary["metric"],
        "latency_ratio": summary["latency_ratio"], "baseline_latency_ms": summary["baseline_latency_ms"],
        "shipped_latency_ms": summary["shipped_latency_ms"], "shipped_size_mb": summary["shipped_size_mb"],
        "wall_min": round(wall_s / 60, 1), "plan_wall_min": round(ledger["elapsed_s"] / 60, 1), "estimate_min": estimate_min,
        "estimate_error_pct": round(100 * (estimate_min - wall_s / 60) / (wall_s / 60), 1),
        "budget_min": round(ledger["budget_s"] / 60, 1), "within_budget": wall_s <= 1.1 * ledger["budget_s"],
        "shipped_dir": summary["shipped_dir"],
        "minutes_per_stage": {k: round((v.get("seconds") or 0) / 60, 1) for k, v in ledger["stages"].items()},
        "decisions": [f"{d['stage']}: {d['decision']} ({d['why']})" for d in ledger["decisions"]],
    }


REMEASURE = r"""
import json, sys
from bertx.evaluation.latency import single_input_latency
baseline, shipped, dev = sys.argv[1:4]
rows = {"baseline": [], "shipped": []}
for _ in range(3):  # interleaved rounds: both models see the same machine
    rows["baseline"].append(single_input_latency(baseline, dev, inputs=200)["latency_ms"])
    rows["shipped"].append(single_input_latency(shipped, dev, inputs=200)["latency_ms"])
print(json.dumps({k: sorted(v)[1] for k, v in rows.items()}))
"""


def remeasure(target: dict, out_root: Path, name: str) -> dict:
    """Baseline and shipped latency again, back to back in one fresh process, after every plan has run: a
    plan measures each model when its stage ends, and anything else on the machine then moves the ratio."""
    ledger = json.loads((out_root / name / "plan" / "plan.json").read_text(encoding="utf-8"))
    dev = ledger["stages"]["profile"]["result"]["inputs"]["dev"]
    done = subprocess.run([sys.executable, "-c", REMEASURE, str(out_root / name / "plan" / "baseline"), target["shipped_dir"], dev],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"plan_latency_ratio": target["latency_ratio"], "baseline_latency_ms": found["baseline"],
            "shipped_latency_ms": found["shipped"], "latency_ratio": round(found["shipped"] / found["baseline"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", default=None, help="Budget per target (default 45m; --quick 12m).")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS,
                        help="In this order (sst2 before kitchen: kitchen then reuses the Amazon sources it trained).")
    parser.add_argument("--out", default="runs/bench-plan")
    parser.add_argument("--results", default=None, help="Name of the results file (default plan, or plan_quick).")
    parser.add_argument("--remeasure-only", action="store_true", help="Only measure the latencies of the plans in "
                        "benchmarks/results/plan.json (or plan_quick.json) again.")
    args = parser.parse_args()
    budget = args.budget or ("12m" if args.quick else "45m")
    name_of_results = args.results or ("plan_quick" if args.quick else "plan")
    if args.remeasure_only:
        path = Path(__file__).resolve().parent / "results" / f"{name_of_results}.json"
        report = json.loads(path.read_text(encoding="utf-8"))
        for name, target in report["targets"].items():
            target.update(remeasure({**target, "latency_ratio": target.get("plan_latency_ratio", target["latency_ratio"])},
                                    ROOT / args.out, name))
        report["all_latency_within_fifth"] = all(r["latency_ratio"] <= 0.2 for r in report["targets"].values())
        save(name_of_results, report)
        print(json.dumps(report))
        return
    results = {}
    for name in args.targets:
        results[name] = run_target(name, budget, ROOT / args.out)
        print(json.dumps({name: results[name]}), flush=True)
        report = summary(args, budget, results)
        save(name_of_results, report)  # after every target: a long run stopped early keeps its rows
    for name in results:
        results[name].update(remeasure(results[name], ROOT / args.out, name))
    report = summary(args, budget, results)
    save(name_of_results, report)
    print(json.dumps(report))


def summary(args, budget: str, results: dict) -> dict:
    gains = [r["gain_pts"] for r in results.values()]
    return {
        "benchmark": "plan", "quick": args.quick, "budget": budget, "machine": machine(), "targets_run": list(results),
        "mean_gain_pts": round(sum(gains) / len(gains), 2),
        "all_latency_within_fifth": all(r["latency_ratio"] <= 0.2 for r in results.values()),
        "all_within_budget": all(r["within_budget"] for r in results.values()),
        "targets": results,
    }


if __name__ == "__main__":
    main()
