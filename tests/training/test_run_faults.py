"""What real machines do to a run, on tiny models, through the one run lifecycle (`training/run.py`):
SIGTERM and Ctrl-C save and stop, SIGKILL at random steps resumes to the same model, a damaged latest
checkpoint falls back to an intact one, a second run on the same folder is refused, a full disk stops
with one line and keeps the previous checkpoint."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import bertx
from bertx import runfolder
from bertx.errors import BertxError
from bertx.training import outputs
from bertx.runfolder.lock import process_start
from bertx.training.checkpoint import checkpoints_in, latest_checkpoint, verify
from tests.conftest import tiny_config
from tests.recipes.killing import kill_after_step
from tests.recipes.test_pretrain import tiny_pretrain_config, write_patterned_text

REPO = Path(__file__).resolve().parents[2]

# A child that runs the real `bertx` command and sends itself a signal right after optimizer step N
# (the recipe's progress bar advances once per step), or fills the disk after step N.
CHILD = r"""
import os, signal, sys
recipe_name, action, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
import importlib
recipe = importlib.import_module("bertx.training.fit")  # the one loop every recipe runs
class Bar(recipe.tqdm):
    def update(self, n=1):
        super().update(n)
        if self.n != at:
            return
        if action == "fill":  # take every free byte of the disk the output is on, outside the output folder
            with open(os.environ["FILLER"], "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                        handle.flush()
                except OSError:
                    pass
        else:
            os.kill(os.getpid(), getattr(signal, action))
recipe.tqdm = Bar
from bertx.cli import app
sys.argv = ["bertx"] + sys.argv[4:]
app()
"""


def run_cli_child(recipe: str, action: str, at: int, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", CHILD, recipe, action, str(at), *args], env=full_env, capture_output=True, text=True, timeout=300)


def write_yaml(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


@pytest.fixture
def finetune_setup(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data  # 240 examples / batch 16 = 15 steps per epoch, 45 in all
    return lambda name, **kw: tiny_config(
        tiny_bert, train, dev, str(tmp_path / name), epochs=3, save_steps=kw.pop("save_steps", 10), eval_steps=kw.pop("eval_steps", 5), **kw
    )


@pytest.fixture
def pretrain_setup(tiny_bert, tmp_path):
    text = write_patterned_text(tmp_path / "corpus.txt")
    return lambda name, **kw: tiny_pretrain_config(
        tiny_bert, text, str(tmp_path / name), max_steps=30, eval_steps=10, save_steps=kw.pop("save_steps", 10), **kw
    )


@pytest.mark.parametrize("signame,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_signal_saves_the_step_and_resume_ends_where_an_uninterrupted_run_ends(finetune_setup, tmp_path, signame, code):
    reference = bertx.finetune(finetune_setup("whole"), show_progress=False)
    config = finetune_setup("stopped")
    proc = run_cli_child("finetune", signame, 7, ["finetune", write_yaml(tmp_path / "c.yaml", config), "--show-examples", "0"])
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "stopped at step 7; resume with --resume" in proc.stderr
    assert "Traceback" not in proc.stderr
    out = Path(config["output"])
    assert latest_checkpoint(out / "checkpoints").name == "step-7"  # saved at the signal, not at save_steps (10)
    assert not (out / runfolder.LOCK_FILE).exists()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1] == {**log[-1], "event": "stopped", "step": 7, "signal": signame}

    resumed = bertx.finetune(config, resume=True, show_progress=False)
    assert resumed["accuracy"] == reference["accuracy"] and resumed["best_step"] == reference["best_step"]
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "whole/model.safetensors").read_bytes()


def test_sigterm_stops_pretraining_too(pretrain_setup, tmp_path):
    config = pretrain_setup("pt")
    proc = run_cli_child("pretrain", "SIGTERM", 13, ["pretrain", write_yaml(tmp_path / "p.yaml", config)])
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "stopped at step 13" in proc.stderr
    assert latest_checkpoint(Path(config["output"]) / "checkpoints").name == "step-13"


def test_a_second_ctrl_c_stops_at_once_and_a_signal_before_training_stops_cleanly(tmp_path):
    from bertx.errors import RunStopped
    from bertx.training.run import _StopSignals

    signals = _StopSignals(tmp_path)
    with pytest.raises(RunStopped, match="before training began"):  # before the loop: no step to save
        signals._handle(signal.SIGTERM, None)
    signals.deferred = True
    signals._handle(signal.SIGINT, None)  # the first is noted, and saved at the step's end
    assert signals.received == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        signals._handle(signal.SIGINT, None)


@pytest.mark.parametrize("recipe", ["finetune", "pretrain"])
def test_sigkill_at_random_steps_then_resume_equals_uninterrupted(finetune_setup, pretrain_setup, tmp_path, recipe):
    setup = finetune_setup if recipe == "finetune" else pretrain_setup
    run = getattr(bertx, recipe)
    run(setup("whole", save_steps=3), show_progress=False)
    weights = "model.safetensors"
    for seed in (1, 2):
        config = setup(f"killed-{seed}", save_steps=3)
        kill_after_step(recipe, config, random.Random(seed).randint(4, 26))
        run(config, resume=True, show_progress=False)
        assert (Path(config["output"]) / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes(), seed


@pytest.mark.parametrize("recipe", ["finetune", "pretrain"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(finetune_setup, pretrain_setup, tmp_path, capsys, recipe):
    setup = finetune_setup if recipe == "finetune" else pretrain_setup
    run = getattr(bertx, recipe)
    run(setup("whole", save_steps=5), show_progress=False)
    config = setup("damaged", save_steps=5, keep_checkpoints=3)
    kill_after_step(recipe, config, 22)
    root = Path(config["output"]) / "checkpoints"
    assert [p.name for p in checkpoints_in(root)] == ["step-10", "step-15", "step-20"]  # keep_checkpoints: 3
    state = root / "step-20" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])  # truncated
    assert "has 1000 bytes" in verify(root / "step-20")
    (root / "step-15" / "rng-0.pt").unlink()  # a file deleted
    run(config, resume=True, show_progress=False)
    err = capsys.readouterr().err
    assert "checkpoint step-20 is damaged" in err and "resuming from step-10" in err
    assert (Path(config["output"]) / "model.safetensors").read_bytes() == (tmp_path / "whole/model.safetensors").read_bytes()


def test_no_intact_checkpoint_is_one_clear_line(finetune_setup):
    config = finetune_setup("bad", save_steps=5)
    kill_after_step("finetune", config, 7)
    state = Path(config["output"]) / "checkpoints" / "step-5" / "state.pt"
    state.write_bytes(b"x" * state.stat().st_size)  # same size, wrong bytes
    with pytest.raises(BertxError, match=r"no intact checkpoint to resume from \(step-5: state.pt does not match its checksum\)"):
        bertx.finetune(config, resume=True, show_progress=False)


def test_checkpoints_load_without_pickle(finetune_setup):
    """A checkpoint holding an arbitrary object is refused, not executed."""
    import torch

    config = finetune_setup("evil", save_steps=5)
    kill_after_step("finetune", config, 6)
    folder = Path(config["output"]) / "checkpoints" / "step-5"
    torch.save({"model": {}, "progress": {}, "payload": os.system}, folder / "state.pt")  # a pickled callable
    from bertx.training.checkpoint import load_checkpoint

    with pytest.raises(BertxError, match="cannot read checkpoint"):
        load_checkpoint(folder, 0)


@pytest.mark.parametrize("recipe", ["finetune", "pretrain"])
def test_a_second_run_on_the_same_folder_is_refused_and_a_dead_owners_lock_is_taken_over(finetune_setup, pretrain_setup, capsys, recipe):
    config = (finetune_setup if recipe == "finetune" else pretrain_setup)("locked", save_steps=None)
    run = getattr(bertx, recipe)
    out = Path(config["output"])
    out.mkdir(parents=True)
    # A live owner: this test's own process.
    (out / runfolder.LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "now"}))
    with pytest.raises(BertxError, match=rf"another bertx run \(pid {os.getpid()} .*\) is using this folder"):
        run(config, show_progress=False)
    assert [p.name for p in out.iterdir()] == [runfolder.LOCK_FILE]  # the first run's folder is untouched

    # A live PID that now belongs to another process than the one that took the lock (PID reuse) is stale too.
    (out / runfolder.LOCK_FILE).write_text(
        json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "before", "process_start": process_start(os.getpid()) + 1})
    )
    run(config, show_progress=False)
    assert "no longer alive" in capsys.readouterr().err
    for item in list(out.iterdir()):
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / runfolder.LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "started": "then"}))
    run(config, show_progress=False)
    assert "no longer alive" in capsys.readouterr().err
    assert not (out / runfolder.LOCK_FILE).exists() and (out / "model.safetensors").is_file()


def test_two_concurrent_commands_on_one_folder(finetune_setup, tmp_path):
    """A real race: the second `bertx finetune` on a folder in use exits 2 and the first finishes whole."""
    config = finetune_setup("race", save_steps=None)
    path = write_yaml(tmp_path / "race.yaml", config)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, "-m", "bertx.cli", "finetune", path, "--show-examples", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = Path(config["output"]) / runfolder.LOCK_FILE
    for _ in range(600):
        if lock.exists() or first.poll() is not None:
            break
        __import__("time").sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-m", "bertx.cli", "finetune", path, "--overwrite", "--show-examples", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 2 and "is using this folder" in second.stderr and "Traceback" not in second.stderr
    metrics = json.loads((Path(config["output"]) / "metrics.json").read_text())
    assert metrics["steps"] == 45


def _tmpfs(mount_point: Path, size: str, read_only: bool = False) -> None:
    mount_point.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'mount failed'}); the full-disk test needs one")


def test_a_full_disk_stops_with_one_line_and_keeps_the_previous_checkpoint(finetune_setup, tmp_path):
    disk = tmp_path / "disk"
    _tmpfs(disk, "64m")
    try:
        config = finetune_setup("unused", save_steps=4, eval_steps=None)
        config["output"] = str(disk / "run")
        args = ["finetune", write_yaml(tmp_path / "d.yaml", config), "--show-examples", "0"]
        proc = run_cli_child("finetune", "fill", 5, args, env={"FILLER": str(disk / "filler")})
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [line[line.index("error:") :] for line in proc.stderr.splitlines() if "error:" in line]
        assert len(lines) == 1 and "could not write the checkpoint of step 8" in lines[0], proc.stderr[-2000:]
        assert "no space left on device" in lines[0] and "step-4) is intact" in lines[0]
        assert "Traceback" not in proc.stderr
        root = disk / "run" / "checkpoints"
        assert [p.name for p in root.iterdir() if p.name != "latest"] == ["step-4"] and verify(root / "step-4") is None
        (disk / "filler").unlink()  # space again: the run resumes from step 4 and finishes
        assert bertx.finetune(config, resume=True, show_progress=False)["steps"] == 45
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_read_only_output_is_one_line(finetune_setup, tmp_path):
    disk = tmp_path / "ro"
    _tmpfs(disk, "1m", read_only=True)
    try:
        config = finetune_setup("unused")
        config["output"] = str(disk / "run")
        with pytest.raises(BertxError, match=r"cannot create the --output folder \(read-only file system\)"):
            bertx.finetune(config, show_progress=False)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_stop_inside_a_matrix_says_how_to_continue(tmp_path):
    from bertx.errors import RunStopped

    with pytest.raises(RunStopped) as stopped:
        with outputs.claimed_folder(tmp_path / "matrix", {"matrix": True}, overwrite=False):
            raise RunStopped(signal.SIGTERM, 12, tmp_path / "matrix" / "inner")
    stop = stopped.value
    assert str(stop) == "stopped at step 12; run the same command again to continue (finished runs are reused)"
    assert stop.exit_code == 143 and stop.output == tmp_path / "matrix"
    assert not (tmp_path / "matrix" / runfolder.LOCK_FILE).exists()
