"""The one writer (`bertx/runfolder/`): what every command that writes gets, shown on the writer itself.
Each test reproduces a defect of issue 26 first found in one command (predict, export, merge)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import yaml

from bertx import runfolder
from bertx.errors import BertxError, Terminated


def _write(target, text="new", **kwargs):
    with runfolder.output_file(target, **kwargs) as handle:
        handle.write(text)


def test_a_file_is_published_whole_with_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _write(tmp_path / "out.jsonl")
        mode = stat.S_IMODE((tmp_path / "out.jsonl").stat().st_mode)
        runfolder.write_text(tmp_path / "model.json", "{}")
        assert mode == 0o644 and stat.S_IMODE((tmp_path / "model.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "out.jsonl"]  # no temporaries left


def test_a_users_file_with_the_old_temporary_name_is_never_touched(tmp_path):
    """Issue 26 (6): `predict --output P` deleted a user's `P.tmp`."""
    (tmp_path / "P.tmp").write_text("mine")
    _write(tmp_path / "P")
    assert (tmp_path / "P.tmp").read_text() == "mine" and (tmp_path / "P").read_text() == "new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    for stop in (RuntimeError("boom"), Terminated()):
        with pytest.raises(type(stop)):
            with runfolder.output_file(target) as handle:
                handle.write("half")
                raise stop
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    """Issue 26 (4): os.replace turned a symlink into a regular file and left its target stale."""
    real = tmp_path / "real.jsonl"
    real.write_text("old")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    _write(link)
    assert link.is_symlink() and real.read_text() == "new"


def test_a_fifo_is_written_as_a_stream(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    _write(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == ["through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_device_stays_a_device(tmp_path):
    """Issue 26 (4): a /dev/null clone made with mknod became a 191-byte regular file."""
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    _write(null, "discarded")
    assert stat.S_ISCHR(null.stat().st_mode)
    _write("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_nothing_the_command_reads_can_be_the_target(tmp_path):
    """Issue 26 (5): `predict RUN --output RUN/model.safetensors` overwrote the model it was reading."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    for target in (run / "model.safetensors", run / "new.jsonl", run):
        with pytest.raises(BertxError, match="which this command reads"):
            _write(target, reads=[run])
    assert (run / "model.safetensors").read_bytes() == b"weights"


def _run_folder(path: Path, **run) -> Path:
    path.mkdir(parents=True)
    (path / runfolder.RUN_FILE).write_text(yaml.safe_dump({"task": "classification", **run}))
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_overwrite_replaces_only_a_folder_of_the_same_kind(tmp_path):
    """Issue 26 (5): `export RUN --output OTHER_RUN --overwrite` deleted a complete fine-tuned run."""
    training = _run_folder(tmp_path / "training")
    with pytest.raises(BertxError, match="holds a bertx run folder; --overwrite here replaces only an earlier export"):
        with runfolder.output_folder(training, "export", overwrite=True):
            pass
    merged = _run_folder(tmp_path / "merged", merged_from={"adapter": "x"})
    with pytest.raises(BertxError, match="holds a bertx merge folder; --overwrite here replaces only an earlier export"):
        with runfolder.output_folder(merged, "export", overwrite=True):
            pass
    assert (training / "model.safetensors").read_bytes() == b"weights"
    with runfolder.output_folder(merged, "merge", overwrite=True) as tmp:
        (tmp / "model.safetensors").write_bytes(b"merged again")
        runfolder.write_run_config(tmp, {"written_as": "merge"})
    assert (merged / "model.safetensors").read_bytes() == b"merged again"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries, no graveyard


def test_a_folder_appears_whole_and_a_failure_leaves_nothing(tmp_path):
    target = tmp_path / "export"
    with pytest.raises(Terminated):
        with runfolder.output_folder(target, "export", overwrite=False) as tmp:
            (tmp / "model.onnx").write_bytes(b"x" * 1000)
            raise Terminated()  # SIGTERM during an export: the CLI turns it into this exception
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with runfolder.output_folder(target, "export", overwrite=False) as tmp:
        (tmp / "model.onnx").write_bytes(b"onnx")
    assert (target / "model.onnx").read_bytes() == b"onnx" and not (target / runfolder.LOCK_FILE).exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_two_writers_of_one_folder_do_not_collide(tmp_path):
    """Issue 26 (6): two exports to one folder 2 s apart ended in a FileNotFoundError traceback."""
    target = tmp_path / "export"
    with runfolder.output_folder(target, "export", overwrite=False) as tmp:
        (tmp / "model.onnx").write_bytes(b"first")
        with pytest.raises(BertxError, match="another bertx run .* is using this folder"):
            with runfolder.output_folder(target, "export", overwrite=True):
                pass
    assert (target / "model.onnx").read_bytes() == b"first"


def test_a_user_folder_with_the_old_temporary_name_is_never_removed(tmp_path):
    """Issue 26 (6): `export --output O` rmtree'd a user's folder named `O.tmp-export`."""
    mine = tmp_path / "O.tmp-export"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with runfolder.output_folder(tmp_path / "O", "export", overwrite=False) as tmp:
        (tmp / "model.onnx").write_bytes(b"x")
    assert (mine / "notes.txt").read_text() == "keep"


def test_run_configs_store_existing_paths_absolute(tmp_path, monkeypatch):
    """Issue 26 (7): relative data paths made a run folder useless from another working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.tsv").write_text("x")
    out = tmp_path / "run"
    out.mkdir()
    runfolder.write_run_config(
        out,
        {
            "data": {"train": "data/train.tsv", "dev": "hf:glue:sst2:validation", "text_column": "data"},
            "model": {"name_or_path": "not/here"},
            "output": "run",
        },
    )
    run = runfolder.read_run_config(out)
    assert run["data"]["train"] == str(tmp_path / "data" / "train.tsv") and run["output"] == str(out)
    assert run["data"]["dev"] == "hf:glue:sst2:validation" and run["model"]["name_or_path"] == "not/here"
    assert run["data"]["text_column"] == "data"  # a column name, even when a folder of that name exists


def test_a_trained_model_is_readable_by_others_under_umask_022(tiny_bert, toy_data, tmp_path):
    """Issue 26 (10): the published model.safetensors was 0600, so a service account could not read it."""
    import bertx
    from tests.conftest import tiny_config

    old = os.umask(0o022)
    try:
        bertx.finetune(tiny_config(tiny_bert, *toy_data, str(tmp_path / "run"), epochs=1), show_progress=False)
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json", "bertx_run.yaml", "metrics.json"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_a_publish_that_fails_keeps_the_previous_folder(tmp_path, monkeypatch):
    """The old folder leaves only once the new one is in place: a failed rename puts it back, untouched."""
    import bertx.runfolder.targets as targets

    target = tmp_path / "export"
    with runfolder.output_folder(target, "export", overwrite=False) as tmp:
        (tmp / "export_report.json").write_text("{}")
        (tmp / "model.onnx").write_bytes(b"first")
    real_rename, calls = os.rename, []

    def second_rename_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new folder into place
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(targets.os, "rename", second_rename_fails)
    with pytest.raises(BertxError, match="cannot publish .* the previous contents are intact"):
        with runfolder.output_folder(target, "export", overwrite=True) as tmp:
            (tmp / "export_report.json").write_text("{}")
            (tmp / "model.onnx").write_bytes(b"second")
    assert (target / "model.onnx").read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no graveyard, no temporary
