"""The reports of a transfer matrix: in-domain scores and transfer gaps per method, its files, the summary table."""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Optional

from bertx import runfolder
from bertx.config.transfer import TransferSource, TransferTarget
from bertx.evaluation.matrix_report import write_matrix


def describe(
    rows: dict[str, list[TransferSource]], targets: list[TransferTarget], values: list[list[Optional[float]]], source_dev: list[Optional[float]]
) -> dict:
    """In-domain score per row, transfer gaps per cell, off-diagonal mean and mean gap (all in points)."""
    columns = [t.name for t in targets]
    in_domain, gaps, off = [], [], []
    for sources, cells, dev in zip(rows.values(), values, source_dev):
        own = {s.name for s in sources}
        diagonal = [v for c, v in zip(columns, cells) if c in own and v is not None]
        score = round(mean(diagonal), 2) if diagonal else dev
        in_domain.append(score)
        gaps.append([None if c in own or v is None or score is None else round(score - v, 2) for c, v in zip(columns, cells)])
        off += [v for c, v in zip(columns, cells) if c not in own and v is not None]
    all_gaps = [g for row in gaps for g in row if g is not None]
    return {
        "values": values,
        "in_domain": in_domain,
        "gaps": gaps,
        "in_domain_cells": [[i, j] for i, (_, sources) in enumerate(rows.items()) for j, c in enumerate(columns) if c in {s.name for s in sources}],
        "off_diagonal_mean": round(mean(off), 2) if off else None,
        "mean_gap": round(mean(all_gaps), 2) if all_gaps else None,
    }


def write_method(out: Path, rows: list[str], columns: list[str], method: str, result: dict, reference: Optional[list], metric: str) -> None:
    """One method's matrix (JSON, Markdown, PNG), with the transfer gaps added to its Markdown table."""
    name = f"matrix-{method}"
    title = f"{method}: zero-shot {metric} on the target (rows: trained on)"
    write_matrix(
        out,
        name,
        rows,
        columns,
        result["values"],
        title=title,
        baseline=reference,
        baseline_label="plain",
        extra={k: result[k] for k in ("in_domain", "gaps", "off_diagonal_mean", "mean_gap")},
        highlight=result["in_domain_cells"],
        row_axis="trained on",
    )
    lines = [
        "",
        "Transfer gap (the row's in-domain score minus the cell; boxed cells in the PNG are in-domain):",
        "",
        "| | in-domain | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for row, score, gaps in zip(rows, result["in_domain"], result["gaps"]):
        cells = " | ".join("-" if g is None else f"{g:+.2f}" for g in gaps)
        lines.append(f"| {row} | {'-' if score is None else f'{score:.2f}'} | {cells} |")
    lines += ["", f"Off-diagonal mean: {_points(result['off_diagonal_mean'])}; mean gap: {_points(result['mean_gap'])}."]
    table = (out / f"{name}.md").read_text(encoding="utf-8")
    runfolder.write_text(out / f"{name}.md", table + "\n".join(lines) + "\n")


def _points(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary_markdown(summary: dict) -> str:
    lines = [
        f"**Transfer ({summary['task']}, {summary['metric']}): rows {', '.join(summary['rows'])}; targets {', '.join(summary['columns'])}**",
        "",
        "| method | in-domain mean | off-diagonal mean | mean gap | off-diagonal vs plain |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, r in summary["methods"].items():
        in_domain = [v for v in r["in_domain"] if v is not None]
        vs = r.get("off_diagonal_vs_plain")
        lines.append(
            f"| {method} | {_points(round(mean(in_domain), 2) if in_domain else None)} | {_points(r['off_diagonal_mean'])} "
            f"| {_points(r['mean_gap'])} | {'-' if vs is None else f'{vs:+.2f}'} |"
        )
    return "\n".join(lines) + "\n"
