"""`bertx plan` as a user meets it: a cold machine, only the labelled data the user has, and the result
scored afterwards on data no decision saw.

Targets (configs/plan/): kitchen (200 labelled reviews, the other kitchen reviews unlabelled, three other
Amazon domains as sources), SST-2 (500 labelled sentences, 20,000 unlabelled, the Amazon domains as
sources), Portuguese SST-2 (the same, in PLUE's translation, with the English Amazon domains as sources),
RTE (its 2,490 training pairs, other GLUE tasks as sources), CoNLL-2003 NER (1,000 labelled sentences,
the rest as text, PAN-X English as a source). Each ships a model at most one fifth of the baseline's
latency within 45 minutes. No target has a dev file: the plan decides on a split of its labelled draw and
reports scores (with 95% intervals) on a fifth of it that no decision saw.

For each target, in its own process and with cold caches (a fresh BERTX_CACHE, the sources fine-tuned
into a fresh folder): `bertx plan CONFIG --dry-run` (its estimate), then `bertx plan CONFIG` (the wall
time). Afterwards the official dev file, which the plan never read, scores the baseline, the teacher and
the shipped model, as a user's own later test would (`shipped`), beside what the plan reported
(`shipped_reported`, `reported_interval`).

Usage: python -m benchmarks.plan.plan [--quick] [--budget 45m] [--targets kitchen sst2-pt sst2 rte conll2003]
  --quick: a 12-minute budget per target. The last line of stdout is one JSON object; it is also saved in
  benchmarks/plan/results/plan.json (plan_quick.json), after every target.
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

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, results_of, save

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("kitchen", "sst2-pt", "sst2", "rte", "conll2003")
HELD_OUT = {
    "kitchen": "multidomain/kitchen/dev.tsv",
    "sst2": "sst2/dev.tsv",
    "sst2-pt": "sst2-pt/dev.tsv",
    "rte": "glue/rte/dev.tsv",
    "conll2003": "conll2003/dev.txt",
}


def data_dir() -> Path:
    return Path(os.environ.get("BERTX_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


def bertx(args: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bertx.cli", *args], cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bertx {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def cold_setting(name: str, folder: Path) -> tuple[list[str], dict]:
    """Overrides and environment of a first run: the sources fine-tuned into a fresh folder, an empty cache."""
    config = yaml.safe_load((ROOT / "configs" / "plan" / f"{name}.yaml").read_text(encoding="utf-8"))
    overrides = []
    if config.get("sources"):
        sources = yaml.safe_load((ROOT / config["sources"]).read_text(encoding="utf-8"))
        sources["output"] = str(folder / "sources")
        copy = folder / "sources.yaml"
        copy.write_text(yaml.safe_dump(sources), encoding="utf-8")
        overrides.append(f"sources={copy}")
    env = {**os.environ, "BERTX_CACHE": str(folder / "cache")}
    return overrides, env


HELD_OUT_SCORE = r"""
import json, sys
import bertx
metric, data, folders = sys.argv[1], sys.argv[2], sys.argv[3:]
print(json.dumps([bertx.evaluate(folder, data)[metric] for folder in folders]))
"""


def held_out(ledger: dict, name: str, env: dict) -> dict:
    """The baseline, teacher and shipped model on the official dev file, which the plan never read."""
    summary = ledger["summary"]
    folders = [ledger["stages"]["baseline"]["result"]["folder"], ledger["stages"]["teacher"]["result"]["folder"], summary["shipped_dir"]]
    done = subprocess.run(
        [sys.executable, "-c", HELD_OUT_SCORE, summary["metric"], str(data_dir() / HELD_OUT[name]), *folders],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    baseline, teacher, shipped = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "baseline": round(100 * baseline, 2),
        "teacher": round(100 * teacher, 2),
        "shipped": round(100 * shipped, 2),
        "gain_pts": round(100 * (shipped - baseline), 2),
    }


def matching_error(row: dict) -> float:
    """The dry run's error against the estimate that matches what ran: with the levers when they ran."""
    estimate = row.get("estimate_with_levers_min", row["estimate_min"]) if row.get("levers_ran") else row["estimate_min"]
    return round(100 * (estimate - row["wall_min"]) / row["wall_min"], 1)


def run_target(name: str, budget: str, out_root: Path) -> dict:
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    overrides, env = cold_setting(name, folder)
    config = f"configs/plan/{name}.yaml"
    _, dry = bertx(["plan", config, f"budget={budget}", *overrides, "--output", str(folder / "dry"), "--dry-run", "--overwrite"], env)
    print(dry, flush=True)
    estimate_min = float(re.search(r"estimated total ([\d.]+) min", dry).group(1))
    found = re.search(r"up to ([\d.]+) min if the best student does not beat the baseline", dry)
    with_levers_min = float(found.group(1)) if found else estimate_min
    wall_s, printed = bertx(["plan", config, f"budget={budget}", *overrides, "--output", str(folder / "plan"), "--overwrite"], env)
    print(printed[-5000:], flush=True)
    ledger = json.loads((folder / "plan" / "plan.json").read_text(encoding="utf-8"))
    summary, reported = ledger["summary"], ledger["summary"]["reported"]
    scored = held_out(ledger, name, env)
    interval = [round(100 * v, 2) for v in reported["shipped_interval"]]
    return {
        **scored,
        "metric": summary["metric"],
        "shipped_reported": round(100 * reported["shipped"], 2),
        "reported_interval": interval,
        "reported_gain_pts": reported["gain_pts"],
        "reported_gain_interval_pts": reported["gain_interval_pts"],
        "reported_on": f"{reported['examples']} examples, {reported['on']}",
        "interval_contains_held_out": interval[0] <= scored["shipped"] <= interval[1],
        "dev_scores": {
            "baseline": round(100 * summary["baseline"], 2),
            "teacher": round(100 * summary["teacher"], 2),
            "shipped": round(100 * summary["shipped"], 2),
        },
        "latency_ratio": summary["latency_ratio"],
        "baseline_latency_ms": summary["baseline_latency_ms"],
        "shipped_latency_ms": summary["shipped_latency_ms"],
        "shipped_size_mb": summary["shipped_size_mb"],
        "wall_min": round(wall_s / 60, 1),
        "estimate_min": estimate_min,
        "estimate_error_pct": round(100 * (estimate_min - wall_s / 60) / (wall_s / 60), 1),
        # the dry run's second figure: its estimate when the levers run (they do when the best student does not beat the baseline)
        "estimate_with_levers_min": with_levers_min,
        "levers_ran": any(d["decision"] == "pull the levers" for d in ledger["decisions"]),
        "budget_min": round(ledger["budget_s"] / 60, 1),
        "within_budget": wall_s <= 1.1 * ledger["budget_s"],
        "stages_run": [k for k, v in ledger["stages"].items() if v.get("status") == "done"],
        "stages_skipped": {k: v.get("reason") for k, v in ledger["stages"].items() if v.get("status") == "skipped"},
        "minutes_per_stage": {k: round((v.get("seconds") or 0) / 60, 1) for k, v in ledger["stages"].items()},
        "shipped_dir": summary["shipped_dir"],
        "decisions": [f"{d['stage']}: {d['decision']} ({d['why']})" for d in ledger["decisions"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", default=None, help="Budget per target (default 45m; --quick 12m).")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--out", default="runs/bench-plan")
    parser.add_argument("--results", default=None, help="Name of the results file (default plan, or plan_quick).")
    parser.add_argument("--merge", action="store_true", help="Keep the other targets' rows of the results file: rerun some targets only.")
    args = parser.parse_args()
    budget = args.budget or ("12m" if args.quick else "45m")
    name_of_results = args.results or ("plan_quick" if args.quick else "plan")
    results, commits = earlier_rows(name_of_results, args.targets) if args.merge else ({}, {})
    for name in args.targets:
        results[name] = run_target(name, budget, ROOT / args.out)
        commits[name] = commit()
        print(json.dumps({name: results[name]}), flush=True)
        report = {**summary(args, budget, results), "commits": commits}
        save(name_of_results, report)  # after every target: a long run stopped early keeps its rows
    print(json.dumps(summary(args, budget, results)))


def earlier_rows(name: str, rerun: list[str]) -> tuple[dict, dict]:
    """The rows (and the commits they were measured at) of the targets not rerun, from the results file."""
    path = results_of(__file__) / f"{name}.json"
    if not path.is_file():
        return {}, {}
    earlier = json.loads(path.read_text(encoding="utf-8"))
    kept = {k: v for k, v in earlier.get("targets", {}).items() if k not in rerun}
    return kept, {k: v for k, v in earlier.get("commits", {}).items() if k in kept}


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def summary(args, budget: str, results: dict) -> dict:
    gains = [r["gain_pts"] for r in results.values()]
    return {
        "benchmark": "plan",
        "setting": "cold caches, no dev file, scored on the official dev file afterwards",
        "quick": args.quick,
        "budget": budget,
        "machine": machine(),
        "targets_run": list(results),
        "mean_gain_pts": round(sum(gains) / len(gains), 2),
        "min_gain_pts": min(gains),
        "intervals_containing_held_out": sum(r["interval_contains_held_out"] for r in results.values()),
        "all_latency_within_fifth": all(r["latency_ratio"] <= 0.2 for r in results.values()),
        "all_estimates_within_25pct": all(abs(r["estimate_error_pct"]) <= 25 for r in results.values()),
        "all_matching_estimates_within_25pct": all(abs(matching_error(r)) <= 25 for r in results.values()),
        "all_within_budget": all(r["within_budget"] for r in results.values()),
        "targets": results,
    }


if __name__ == "__main__":
    main()
