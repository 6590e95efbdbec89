"""A (row x column) score matrix written three ways: JSON for tools, Markdown for people, a heatmap PNG.

Used for transfer maps: rows are what a model learned first (an intermediate task, a source domain or
language), columns are where it is evaluated. With a baseline row (no transfer), the heatmap colours
the gain over it, which is what the map is for; the cells still print the scores themselves.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Optional
from bertx import runfolder


def write_matrix(
    folder: str | Path,
    name: str,
    rows: list[str],
    columns: list[str],
    values: list[list[Optional[float]]],
    title: str,
    baseline: Optional[list] = None,
    baseline_label: str = "none",
    extra: Optional[dict] = None,
    highlight: Optional[list[list[int]]] = None,
    row_axis: str = "trained first on",
) -> dict:
    """Write NAME.json, NAME.md and NAME.png into `folder` and return the JSON object.

    Args:
        rows, columns: labels; `values[i][j]` is the score of row i on column j (None: not run).
        title: one line above the table and the plot.
        baseline: one score per column without transfer (a row), or one per cell (a matrix of the same
            shape, e.g. another method's); gains are value - baseline.
        extra: more fields for the JSON (settings, metric names).
        highlight: [row, column] cells drawn boxed in the heatmap (in-domain cells).
        row_axis: what the rows are, as the heatmap's y label.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gains = None
    if baseline is not None:
        per_cell = baseline if is_matrix(baseline) else [baseline] * len(values)
        gains = [[None if v is None or b is None else round(v - b, 2) for v, b in zip(row, ref)] for row, ref in zip(values, per_cell)]
    result = {
        "title": title,
        "rows": rows,
        "columns": columns,
        "values": values,
        "baseline": baseline,
        "baseline_label": baseline_label if baseline is not None else None,
        "gains": gains,
        "highlight": highlight or [],
        "row_axis": row_axis,
        **(extra or {}),
    }
    runfolder.write_text(folder / f"{name}.json", json.dumps(result, indent=2) + "\n")
    runfolder.write_text(folder / f"{name}.md", markdown(result))
    heatmap(result, folder / f"{name}.png")
    return result


def is_matrix(baseline: list) -> bool:
    return bool(baseline) and isinstance(baseline[0], list)


def _cell(value: Optional[float], gain: Optional[float] = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if gain is None else f"{value:.2f} ({gain:+.2f})"


def markdown(result: dict) -> str:
    columns = result["columns"]
    lines = [f"**{result['title']}**", "", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    if result["baseline"] is not None and not is_matrix(result["baseline"]):
        lines.append(f"| *{result['baseline_label']}* | " + " | ".join(_cell(v) for v in result["baseline"]) + " |")
    for i, row in enumerate(result["rows"]):
        gains = result["gains"][i] if result["gains"] else [None] * len(columns)
        lines.append(f"| {row} | " + " | ".join(_cell(v, g) for v, g in zip(result["values"][i], gains)) + " |")
    if result["gains"]:
        label = result["baseline_label"]
        where = f"the same cell of *{label}*" if is_matrix(result["baseline"]) else f"the *{label}* row"
        lines += ["", f"In brackets: the change against {where}."]
    return "\n".join(lines) + "\n"


def heatmap(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    import numpy as np

    shown = result["gains"] or result["values"]
    grid = np.array([[np.nan if v is None else v for v in row] for row in shown], dtype=float)
    rows, columns = result["rows"], result["columns"]
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(columns), 1.0 + 0.6 * len(rows)))
    if result["gains"]:
        limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit or -1, vmax=limit or 1)
        label = f"change vs {result['baseline_label']}"
    else:
        image = ax.imshow(grid, cmap="viridis")
        label = "score"
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel(result.get("row_axis", "trained first on"))
    for i, j in result.get("highlight", []):  # boxed: in-domain cells
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    for i in range(len(rows)):
        for j in range(len(columns)):
            value = result["values"][i][j]
            if value is not None:
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(textwrap.fill(result["title"], 48), fontsize=9)  # long titles wrap instead of running off
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
