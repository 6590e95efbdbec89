"""The teacher store verifies what it reads: a truncated, altered, misshapen or non-finite file is labelled
again and replaced with a note, never trained on; a NaN teacher or a NaN loss stops with one line."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import bertx
from bertx.cli import app
from bertx.errors import BertxError
from bertx.training import teacher_store
from tests.recipes.test_distill import kd_config, teacher  # noqa: F401  (the module's teacher fixture)

LENGTHS = [3, 5, 2]


def store_in(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    notes: list[str] = []
    return notes, notes.append


def test_rows_round_trip_and_every_kind_of_damage_is_refused(tmp_path, monkeypatch):
    notes, log = store_in(tmp_path, monkeypatch)
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    teacher_store.save("k", rows, None, LENGTHS)
    assert np.array_equal(teacher_store.load("k", None, LENGTHS, log), rows) and not notes
    path = teacher_store.store_root() / "k.npz"
    data = path.read_bytes()

    path.write_bytes(data[: len(data) // 2])  # truncated (a full disk, a killed copy)
    assert teacher_store.load("k", None, LENGTHS, log) is None and "unreadable" in notes[-1]
    assert teacher_store.load("k", None, LENGTHS[:2], log) is None  # another number of examples
    teacher_store.save("k", rows, None, LENGTHS)
    assert teacher_store.load("k", None, LENGTHS[:2], log) is None and "shape (3, 2) for 2 examples" in notes[-1]

    nan = rows.copy()
    nan[1, 0] = np.nan
    teacher_store.save("k", nan, None, LENGTHS)
    assert teacher_store.load("k", None, LENGTHS, log) is None and "NaN or infinite values for 1 of 3" in notes[-1]


def test_an_altered_file_fails_its_digest(tmp_path, monkeypatch):
    notes, log = store_in(tmp_path, monkeypatch)
    rows = np.ones((3, 2), dtype=np.float32)
    teacher_store.save("k", rows, None, LENGTHS)
    path = teacher_store.store_root() / "k.npz"
    with np.load(path) as stored:  # a well-formed file whose values are not those its digest was made of
        digest = stored["digest"]
    np.savez(path.with_suffix(".tmp.npz"), digest=digest, rows=rows * 2)
    path.with_suffix(".tmp.npz").replace(path)
    assert teacher_store.load("k", None, LENGTHS, log) is None and "digest" in notes[-1]


def test_per_token_outputs_need_one_row_per_token(tmp_path, monkeypatch):
    notes, log = store_in(tmp_path, monkeypatch)
    outputs = {"logits": [np.zeros((n, 4), dtype=np.float32) for n in LENGTHS]}
    teacher_store.save("t", outputs, ("logits",), LENGTHS)
    found = teacher_store.load("t", ("logits",), LENGTHS, log)
    assert [len(r) for r in found["logits"]] == LENGTHS
    assert teacher_store.load("t", ("logits",), [3, 4, 3], log) is None and "one row per token" in notes[-1]


def test_a_cache_root_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BertxError, match="must be a folder"):
        teacher_store.store_root()


def test_a_damaged_store_is_relabelled_and_a_nan_teacher_stops(teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    bertx.distill(kd_config(tmp, train, dev, tmp_path / "first", train__max_steps=2), show_progress=False)
    for path in teacher_store.store_root().glob("*.npz"):  # NaN where the logits were
        rows = teacher_store.unpack(path, None)
        path.write_bytes(teacher_store.pack(np.full_like(rows, np.nan), None, [1] * len(rows)))
    second = bertx.distill(kd_config(tmp, train, dev, tmp_path / "second", train__max_steps=2), show_progress=False)
    summary = bertx.runfolder.read_run_config(tmp_path / "second")["transfer_set"]
    assert summary["from_store"] == 0 and summary["labelled"] > 0  # labelled again, not trained on NaN
    assert np.isfinite(second["accuracy"])
    for path in teacher_store.store_root().glob("*.npz"):  # and replaced by good outputs
        assert np.isfinite(teacher_store.unpack(path, None)).all()

    monkeypatch.setattr(
        "bertx.recipes.teacher_labels.TeacherLabeller._local",
        lambda self, features, how: np.full((len(features.lengths), 2), np.nan, dtype=np.float32),
    )
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "empty"))
    config = kd_config(tmp, train, dev, tmp_path / "nan", train__max_steps=2)
    result = CliRunner().invoke(
        app,
        [
            "distill",
            "--teacher",
            config["teacher"],
            "--train",
            train,
            "--dev",
            dev,
            "--output",
            str(tmp_path / "nan"),
            "--max-steps",
            "2",
            "--max-length",
            "32",
        ],
    )
    assert result.exit_code == 2 and "the teacher's outputs are unusable (NaN or infinite values" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "nan" / "model.safetensors").exists()


def test_a_nan_loss_stops_the_run_with_one_line(teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    monkeypatch.setattr("bertx.training.run.optimizer_step", lambda *a, **k: None)
    monkeypatch.setattr("bertx.training.run.Run.backward", lambda self, loss: float("nan"))
    with pytest.raises(BertxError, match="the training loss is nan at step 1"):
        bertx.distill(kd_config(tmp, train, dev, tmp_path / "kd", train__max_steps=2), show_progress=False)
