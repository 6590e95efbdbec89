"""Matrix reports: JSON, Markdown and PNG agree with the values, gains are value - baseline."""

import json

import pytest

from bertx.evaluation.matrix_report import write_matrix


def test_matrix_files_and_gains(tmp_path):
    result = write_matrix(
        tmp_path,
        "m",
        ["a", "b"],
        ["x", "y", "z"],
        [[60.0, 70.5, None], [58.0, 71.0, 80.0]],
        title="t",
        baseline=[59.0, 70.0, 81.0],
        extra={"metrics": {"x": "accuracy"}},
    )
    assert result["gains"][0][:2] == pytest.approx([1.0, 0.5]) and result["gains"][0][2] is None
    assert result["gains"][1] == pytest.approx([-1.0, 1.0, -1.0])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["values"] == result["values"] and saved["metrics"] == {"x": "accuracy"}
    table = (tmp_path / "m.md").read_text()
    assert "| *none* | 59.00 | 70.00 | 81.00 |" in table
    assert "| a | 60.00 (+1.00) | 70.50 (+0.50) | - |" in table
    png = (tmp_path / "m.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_matrix_without_baseline(tmp_path):
    result = write_matrix(tmp_path, "plain", ["en"], ["en", "de"], [[90.0, 70.0]], title="t")
    assert result["gains"] is None
    assert "| en | 90.00 | 70.00 |" in (tmp_path / "plain.md").read_text()
    assert (tmp_path / "plain.png").is_file()
