"""The report of a plan (`OUTPUT/report.html`), in `bertx report`'s style: what was shipped against the
baseline, the decision trail, each stage's score, wall time and the budget left, the students tried."""

from __future__ import annotations

import html
from pathlib import Path

from bertx import runfolder
from bertx.evaluation.report import STYLE, figure_tag, table


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def write_report(out: Path, ledger: dict) -> Path:
    summary, stages = ledger.get("summary") or {}, ledger["stages"]
    metric = summary.get("metric", "score")
    sections = [
        f"<h1>bertx plan: {html.escape(Path(out).name)}</h1>",
        f"<p>Task <b>{html.escape(ledger['config']['task'])}</b>, budget {ledger['budget_s'] / 60:.0f} min, dev {html.escape(metric)}.</p>",
    ]
    if summary.get("reported"):
        sections.append(_reported_section(summary, metric))
    if summary:
        sections.append(
            "<h2>Shipped against the baseline</h2>"
            + table(
                ["model", f"dev {metric}", "latency, 1 input (ms)", "weights (MB)"],
                [
                    ["baseline (bertx finetune defaults)", _pct(summary["baseline"]), summary["baseline_latency_ms"], summary["baseline_size_mb"]],
                    ["teacher", _pct(summary["teacher"]), stages["teacher"]["result"]["latency_ms"], stages["teacher"]["result"]["size_mb"]],
                    [f"shipped ({summary['shipped_dir']})", _pct(summary["shipped"]), summary["shipped_latency_ms"], summary["shipped_size_mb"]],
                ],
            )
            + f"<p>Gain {summary['gain_pts']:+.2f} points at {summary['latency_ratio']:.2f}x the baseline's latency.</p>"
        )
    sections.append(
        "<h2>Decisions</h2>" + table(["stage", "decision", "why (measured)"], [[d["stage"], d["decision"], d["why"]] for d in ledger["decisions"]])
    )
    rows, left = [], ledger["budget_s"]
    for name, record in stages.items():
        left -= record.get("seconds") or 0.0
        result = record.get("result") or {}
        score = result.get("score") if isinstance(result, dict) else None
        rows.append(
            [
                name,
                record["status"],
                _pct(score),
                f"{(record.get('seconds') or 0) / 60:.1f}",
                "" if record.get("estimate_s") is None else f"{record['estimate_s'] / 60:.1f}",
                f"{left / 60:.1f}",
                record.get("reason") or "",
            ]
        )
    sections.append("<h2>Stages</h2>" + table(["stage", "status", f"dev {metric}", "minutes", "estimated", "budget left (min)", "note"], rows))
    students = (stages.get("compress", {}).get("result") or {}).get("students") or []
    if students:
        sections.append(
            "<h2>Students</h2>"
            + table(
                ["student", "export", f"dev {metric} (PyTorch)", "exported", "latency (ms)", "predicted (ms)", "MB", "minutes", "missed"],
                [
                    [
                        s["student"],
                        s["quantize"],
                        _pct(s["pytorch_score"]),
                        _pct(s["score"]),
                        s["latency_ms"],
                        s["predicted_latency_ms"],
                        s["size_mb"],
                        f"{s['seconds'] / 60:.1f}",
                        "; ".join(s["missed"]) or "meets ship",
                    ]
                    for s in students
                ],
            )
        )
        sections.append(_figure(summary, students, metric))
    profile = stages["profile"]["result"]["profile"]
    sections.append("<h2>Data profile</h2>" + table(["field", "value"], [[k, v] for k, v in profile.items() if k != "probe"]))
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bertx plan: {html.escape(Path(out).name)}'
        f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
    return runfolder.write_text(Path(out) / "report.html", page)


def _reported_section(summary: dict, metric: str) -> str:
    """The scores the plan reports: on examples no decision saw, each with its 95% interval, and whether the
    shipped model's gain over the baseline is more than the noise of so few examples."""
    reported = summary["reported"]
    rows = [[name, _pct(reported[name]), "–".join(_pct(v) for v in reported[f"{name}_interval"])] for name in ("baseline", "teacher", "shipped")]
    gain = f"{reported['gain_pts']:+.2f} points"
    if reported.get("gain_interval_pts"):
        low, high = reported["gain_interval_pts"]
        gain += f" (paired 95% interval {low:+.2f} to {high:+.2f}: " + (
            "inside the noise of these examples, not a measured gain)" if reported["within_noise"] else "beyond the noise)"
        )
    return (
        f"<h2>Reported scores: {html.escape(reported['on'])}</h2><p>{reported['examples']} examples that chose nothing "
        f"(no checkpoint, no student, no stage): {html.escape(reported['file'])}.</p>"
        + table(["model", f"{metric}", "95% interval (bootstrap)"], rows)
        + f"<p>Shipped against the baseline: {gain}. "
        "The dev scores below chose checkpoints and students, so they are optimistic.</p>"
    )


def _figure(summary: dict, students: list[dict], metric: str) -> str:
    """Dev score against latency: the baseline, the teacher and every student tried."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 3.4))
    if summary:
        axis.scatter([summary["baseline_latency_ms"]], [100 * summary["baseline"]], color="#aaaaaa", label="baseline")
    for s in students:
        axis.scatter([s["latency_ms"]], [100 * s["score"]], color="#1f77b4" if not s["missed"] else "#d62728")
        axis.annotate(s["student"], (s["latency_ms"], 100 * s["score"]), fontsize=8)
    if summary.get("ship", {}).get("latency_ms"):
        axis.axvline(summary["ship"]["latency_ms"], color="#555555", linestyle="--", linewidth=1)
    axis.set_xscale("log")
    axis.set_xlabel("latency, 1 input (ms, log)")
    axis.set_ylabel(f"dev {metric}")
    axis.legend(fontsize=8)
    return figure_tag(fig, "dev score against latency")
