"""The transfer report of a distillation: teacher, distilled student and the same student trained without
a teacher, side by side (Markdown + JSON + PNG).

Per model: parameters, size on disk, CPU latency at batch 1 (median over single dev inputs), dev
inputs per second at batch 32, the dev metrics, and for the students the share of the teacher's main
metric they keep and their speed-up. Speeds are measured here, one model after the other on the same
inputs and threads, so they compare fairly with each other (not with other machines).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from bertx import runfolder
from bertx.data.batching import collate, sorted_batches

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def size_on_disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in WEIGHT_SUFFIXES) / 2**20


@torch.inference_mode()
def measure_speed(model, features, pad_id: int, latency_inputs: int = 100, throughput_inputs: int = 1024, batch_size: int = 32) -> dict:
    """Median batch-1 latency (ms) and batch-32 throughput (inputs/s) on the first dev inputs, on CPU."""
    model.eval()
    n = len(features.lengths)
    single = list(range(min(latency_inputs, n)))
    for i in single[:5]:  # warm-up
        model(**collate(features, [i], pad_id))
    times = []
    for i in single:
        batch = collate(features, [i], pad_id)
        start = time.perf_counter()
        model(**batch)
        times.append(time.perf_counter() - start)
    subset = features.lengths[: min(throughput_inputs, n)]
    batches = sorted_batches(subset, batch_size)
    model(**collate(features, batches[0], pad_id))  # warm-up
    start = time.perf_counter()
    for indices in batches:
        model(**collate(features, indices, pad_id))
    elapsed = time.perf_counter() - start
    return {"latency_ms_batch1": round(1000 * statistics.median(times), 2), "inputs_per_s_batch32": round(len(subset) / elapsed, 1)}


def describe(folder: Path, dev_path: str) -> dict:
    """Size, speed and dev metrics of one model folder."""
    return {"folder": str(folder), **_measured([folder], [1.0], dev_path)}


def describe_ensemble(folders: list[str], weights: list[float], dev_path: str) -> dict:
    """Size, speed and dev metrics of several teachers run as one (`models/ensemble.py`)."""
    return {"folder": None, **_measured(folders, weights, dev_path), "weights": [round(w, 4) for w in weights]}


def _measured(folders: list, weights: list[float], dev_path: str) -> dict:
    from dataclasses import replace

    from bertx.evaluation.evaluate import evaluate_loaded
    from bertx.inference.loading import load_trained
    from bertx.models.bert_students import parameter_count
    from bertx.models.ensemble import EnsembleModel

    members = [load_trained(folder, device="cpu") for folder in folders]
    model = members[0].model if len(members) == 1 else EnsembleModel([m.model for m in members], weights, members[0].task.label_kind).eval()
    trained = replace(members[0], model=model)
    metrics, evalset = evaluate_loaded(trained, dev_path)  # the dev file is read and tokenised once per model
    return {
        "layers": model.config.num_hidden_layers,
        "hidden": model.config.hidden_size,
        "parameters": parameter_count(model),  # an ensemble: every member's
        "size_mb": round(sum(size_on_disk_mb(Path(folder)) for folder in folders), 1),
        **measure_speed(model, evalset.features, trained.pad_id),
        "metrics": metrics,
        "main_metric": trained.task.main_metric if trained.task.main_metric in metrics else next(iter(metrics)),
    }


def write_report(
    teacher: str | Path,
    student: str | Path,
    baseline: str | Path | None,
    dev_path: str,
    out: str | Path,
    teachers: list[str] = (),
    weights: list[float] | None = None,
) -> dict:
    """Measure the models and write report.json, report.md and report.png into `out`; with more `teachers`,
    each of them and their ensemble too (speed-ups and kept shares stay relative to the first teacher)."""
    out = Path(out)
    rows = {"teacher": describe(Path(teacher), dev_path)}
    for i, extra in enumerate(teachers, start=2):
        rows[f"teacher {i}"] = describe(Path(extra), dev_path)
    if teachers:
        rows[f"ensemble of {1 + len(teachers)}"] = describe_ensemble([str(teacher), *map(str, teachers)], weights, dev_path)
    rows["student"] = describe(Path(student), dev_path)
    if baseline is not None:
        rows["student without teacher"] = describe(Path(baseline), dev_path)
    metric = rows["teacher"]["main_metric"]
    base_score, base_speed = rows["teacher"]["metrics"][metric], rows["teacher"]["inputs_per_s_batch32"]
    for row in rows.values():
        row["kept_pct"] = round(100 * row["metrics"][metric] / base_score, 2) if base_score else None
        row["speedup"] = round(row["inputs_per_s_batch32"] / base_speed, 2)
        row["latency_speedup"] = round(rows["teacher"]["latency_ms_batch1"] / row["latency_ms_batch1"], 2)
    report = {"main_metric": metric, "dev": dev_path, "models": rows}
    runfolder.write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    runfolder.write_text(out / "report.md", markdown(report))
    plot(report, out / "report.png")
    return report


def markdown(report: dict) -> str:
    metric = report["main_metric"]
    lines = [
        f"| model | layers x hidden | parameters | size | latency, batch 1 | inputs/s, batch 32 | speed-up | dev {metric} | % of teacher |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["models"].items():
        lines.append(
            f"| {name} | {row['layers']} x {row['hidden']} | {row['parameters'] / 1e6:.1f}M | {row['size_mb']:.0f} MB | "
            f"{row['latency_ms_batch1']:.1f} ms | {row['inputs_per_s_batch32']:.0f} | {row['speedup']:.2f}x | "
            f"{100 * row['metrics'][metric]:.2f} | {row['kept_pct']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["models"])
    metric = report["main_metric"]
    scores = [100 * report["models"][n]["metrics"][metric] for n in names]
    speeds = [report["models"][n]["inputs_per_s_batch32"] for n in names]
    colours = [{"student": "#1f77b4", "student without teacher": "#aaaaaa"}.get(n, "#555555") for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(9, 1.6 * len(names)), 3.2))
    left.bar(names, scores, color=colours)
    left.set_ylabel(f"dev {metric}")
    left.set_ylim(max(0.0, min(scores) - 10), min(100.0, max(scores) + 3))
    right.bar(names, speeds, color=colours)
    right.set_ylabel("inputs/s at batch 32 (CPU)")
    for axis, values, fmt in ((left, scores, "{:.1f}"), (right, speeds, "{:.0f}")):
        for i, v in enumerate(values):
            axis.text(i, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
        axis.tick_params(axis="x", labelsize=8)
    fig.suptitle("Distillation: teacher vs student", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
