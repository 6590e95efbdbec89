"""Multi-task learning on GLUE: does one encoder shared by five tasks beat five single-task models?

Three settings on the default MiniLM, the same data and the same optimisation (lr 1e-4, batch 32,
linear schedule, 6% warm-up, probe-initialised heads, bf16 autocast), dev sets in full:

  single    `bertx finetune` on each task alone, E epochs; the best epoch by the task's main metric.
  multi     `bertx multitask` on all tasks at once, the same number of optimizer steps as all single
            runs together (proportional sampling: each task sees about as many examples as alone);
            the best epoch by the mean of the main metrics.
  multi+ft  the multi-task encoder fine-tuned again on each task alone, F more epochs (MT-DNN's
            recipe; this setting spends more compute than the other two, by the F epochs).

Tasks (main metric): RTE (accuracy), MRPC (F1), STS-B (Pearson), CoLA (MCC), SST-2 (accuracy,
a subset of its 67k training sentences).

Auxiliary tasks (`--aux qnli`): trained in the multi-task stage only, never scored or fine-tuned. QNLI
has no training file here, so its 5,463 dev pairs serve as training data (QNLI is never evaluated).
`--reuse-single FILE` takes the single-task scores from an earlier result with the same settings
(the runs are deterministic) instead of training them again.

Usage: python -m benchmarks.multitask.multitask_glue [--quick] [--epochs 3] [--ft-epochs 2] [--sampling proportional]
                                           [--aux qnli] [--lr 1e-4] [--reuse-single FILE] [--name NAME]
The last line of stdout is one JSON object; it is also saved in benchmarks/multitask/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.glue import TASKS

# name, kind, folder, main metric, max_length


def task_entries(args) -> list[dict]:
    entries = []
    for name, kind, folder, metric, max_length in TASKS:
        data = {"max_length": max_length, "max_train_examples": args.train_examples}
        if name == "sst2":
            data["max_train_examples"] = args.sst2_examples
        if args.dev_examples:
            data["max_dev_examples"] = args.dev_examples
        entries.append(
            {
                "name": name,
                "kind": kind,
                "train": f"{{data_dir}}/{folder}/train.tsv",
                "dev": f"{{data_dir}}/{folder}/dev.tsv",
                "metric": metric,
                "data": data,
            }
        )
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 training and 200 dev examples per task, 1 epoch: a few minutes.")
    parser.add_argument("--epochs", type=float, default=None, help="Epochs of single and multi-task training (default 3).")
    parser.add_argument("--ft-epochs", type=float, default=None, help="Epochs of the fine-tuning after multi-task (default 2).")
    parser.add_argument("--train-examples", type=int, default=None, help="Cap per GLUE task (default: all).")
    parser.add_argument("--sst2-examples", type=int, default=None, help="SST-2 training sentences (default 4000).")
    parser.add_argument("--dev-examples", type=int, default=None, help="Cap per dev set (default: all).")
    parser.add_argument("--sampling", default="proportional", help="Multi-task sampling strategy.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lr", type=float, default=1e-4, help="Learning rate of every stage.")
    parser.add_argument("--aux", nargs="*", default=[], choices=["qnli"], help="Auxiliary tasks of the multi-task stage.")
    parser.add_argument("--reuse-single", default=None, help="Result JSON whose single-task scores to reuse.")
    parser.add_argument("--name", default=None, help="Result file name (default multitask_glue).")
    parser.add_argument(
        "--select",
        choices=["auto"],
        default=None,
        help="Instead of multi/multi+ft: per target, `select:` the helpful sources (LogME), multi-task, fine-tune.",
    )
    parser.add_argument("--top-k", type=int, default=2, help="Sources kept per target with --select.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-multitask")
    args = parser.parse_args()
    if args.quick:
        args.train_examples = args.train_examples or 400
        args.dev_examples = args.dev_examples or 200
    args.sst2_examples = args.sst2_examples or (args.train_examples or 4000)
    epochs = args.epochs or (1 if args.quick else 3)
    ft_epochs = args.ft_epochs or (1 if args.quick else 2)
    if not (Path(args.data_dir) / "glue/rte/train.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/glue not found (pass --data-dir)")

    from bertx.config import MultitaskConfig, validate_config
    from bertx.recipes.finetune import finetune
    from bertx.recipes.multitask import multitask

    work = Path(args.work)
    train = {"epochs": epochs, "batch_size": 32, "lr": args.lr, "warmup_ratio": 0.06, "save_steps": None, "seed": args.seed, "precision": "bf16"}
    entries = task_entries(args)
    aux = [
        {"name": f"{name}-aux", "kind": "pair-classification", "train": f"{{data_dir}}/glue/{name}/dev.tsv", "data": {"max_length": 128}}
        for name in args.aux
    ]
    config = validate_config(
        {"output": str(work / "multi"), "data_dir": args.data_dir, "tasks": entries, "sampling": {"strategy": args.sampling}, "train": train},
        schema=MultitaskConfig,
    )
    mt_config = validate_config({**config.model_dump(), "tasks": entries + aux}, schema=MultitaskConfig)
    metric = {entry.name: entry.metric for entry in config.tasks}
    result: dict = {
        "benchmark": "multitask_glue",
        "quick": args.quick,
        "epochs": epochs,
        "ft_epochs": ft_epochs,
        "sampling": args.sampling,
        "aux_tasks": args.aux,
        "train": train,
        "main_metrics": metric,
    }

    def run_single(setting: str, model: str | None, run_epochs: float) -> dict:
        scores, wall, steps = {}, 0.0, 0
        for entry in config.tasks:
            task_config = config.task_config(entry, output=str(work / setting / entry.name))
            task_config.train.epochs = run_epochs
            if model:
                task_config.model.name_or_path = model
            print(f"[{setting}] {entry.name} ...", file=sys.stderr, flush=True)
            metrics = finetune(task_config, overwrite=True, show_progress=False)
            scores[entry.name] = metrics[metric[entry.name]]
            wall += metrics["wall_s"]
            steps += metrics["steps"]
            print(f"  {entry.name}: {metric[entry.name]}={scores[entry.name]:.4f} ({metrics['wall_s']:.0f}s)", file=sys.stderr, flush=True)
        return {"scores": scores, "mean": sum(scores.values()) / len(scores), "wall_s": round(wall, 1), "steps": steps}

    started = time.perf_counter()
    if args.reuse_single:
        result["single"] = json.loads(Path(args.reuse_single).read_text())["single"]
        result["single_reused_from"] = args.reuse_single
    else:
        result["single"] = run_single("single", None, epochs)
    if args.select:
        result["select"] = run_selected(args, work, entries + aux, train, ft_epochs, metric)
        finish(result, ("select",), started, args)
        return
    # The same number of optimizer steps as all single runs (auxiliary tasks take their share of them).
    mt_config.train.max_steps = result["single"]["steps"]
    print("[multi] all tasks ...", file=sys.stderr, flush=True)
    mt = multitask(mt_config, overwrite=True, show_progress=False)
    result["multi"] = {
        "scores": {name: mt["tasks"][name][metric[name]] for name in metric},
        "mean": mt["mean"],
        "wall_s": mt["wall_s"],
        "steps": mt["steps"],
        "best_step": mt["best_step"],
        "batches_per_task": mt["batches_per_task"],
    }
    print(f"  multi: {result['multi']['scores']}", file=sys.stderr, flush=True)
    result["multi+ft"] = run_single("multi+ft", str(work / "multi"), ft_epochs)

    finish(result, ("multi", "multi+ft"), started, args)


def run_selected(args, work: Path, entries: list[dict], train: dict, ft_epochs: float, metric: dict) -> dict:
    """Per target: rank the other tasks (their single-task runs are the cached sources), multi-task on the
    target and its selected sources, fine-tune on the target."""
    from bertx.config import MultitaskConfig, validate_config
    from bertx.recipes.selected_multitask import selected_multitask

    scores, selected, wall = {}, {}, 0.0
    for target in metric:
        config = validate_config(
            {
                "output": str(work / "select" / target),
                "data_dir": args.data_dir,
                "tasks": entries,
                "sampling": {"strategy": args.sampling},
                "train": train,
                "select": {"target": target, "top_k": args.top_k, "finetune_epochs": ft_epochs, "sources_cache": str(work / "single")},
            },
            schema=MultitaskConfig,
        )
        print(f"[select] {target} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        summary = selected_multitask(config, overwrite=True, show_progress=False)
        wall += time.perf_counter() - started
        scores[target], selected[target] = summary["final"][metric[target]], summary["selected"]
        print(f"  {target}: selected {summary['selected']}, {metric[target]}={scores[target]:.4f}", file=sys.stderr, flush=True)
    return {
        "scores": scores,
        "mean": sum(scores.values()) / len(scores),
        "selected": selected,
        "wall_s": round(wall, 1),
        "estimator": "logme",
        "top_k": args.top_k,
    }


def finish(result: dict, settings: tuple[str, ...], started: float, args) -> None:
    single = result["single"]
    for setting in settings:
        scores = result[setting]["scores"]
        result[setting]["gain_pts"] = {name: round(100 * (scores[name] - single["scores"][name]), 2) for name in scores}
        result[setting]["mean_gain_pts"] = round(100 * (result[setting]["mean"] - single["mean"]), 2)
    best = max(settings, key=lambda s: result[s]["mean"])
    result["target"] = {
        "best_setting": best,
        "mean_gain_pts": result[best]["mean_gain_pts"],
        "rte_gain_pts": result[best]["gain_pts"]["rte"],
        "met": result[best]["mean_gain_pts"] >= 1.0 and result[best]["gain_pts"]["rte"] > 0,
    }
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    result["machine"] = machine()
    print(table(result), file=sys.stderr)
    default = "multitask_glue" + ("_select" if "select" in result else "") + ("_quick" if args.quick else "")
    save(args.name or default, result)
    print(json.dumps(result))


def table(result: dict) -> str:
    names = list(result["main_metrics"])
    lines = ["| setting | " + " | ".join(f"{n} ({result['main_metrics'][n]})" for n in names) + " | mean |", "|---" * (len(names) + 2) + "|"]
    for setting in [s for s in ("single", "multi", "multi+ft", "select") if s in result]:
        scores = result[setting]["scores"]
        lines.append(f"| {setting} | " + " | ".join(f"{100 * scores[n]:.2f}" for n in names) + f" | {100 * result[setting]['mean']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
