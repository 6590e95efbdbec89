"""Resume: a run killed with SIGKILL mid-epoch continues from its last checkpoint and ends exactly
where an uninterrupted run with the same seed ends; a kill while saving leaves the previous
checkpoint whole."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import bertx
from bertx.errors import BertxError
from bertx.training.checkpoint import latest_checkpoint
from tests.conftest import make_tiny_bert, tiny_config

REPO = Path(__file__).resolve().parents[2]

# Runs in a child process: trains, and kills itself with SIGKILL right after optimizer step N
# (kill_after="step") or in the middle of writing the checkpoint of step N (kill_after="save").
CHILD = r"""
import json, os, signal, sys
import bertx
from bertx.training import fit as recipe
from bertx.training import checkpoint as ckpt

config, kill_at, mode = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if mode == "step":
    class Bar(recipe.tqdm):  # the progress bar advances once per optimizer step
        def update(self, n=1):
            super().update(n)
            if self.n == kill_at:
                die()
    recipe.tqdm = Bar
else:
    save = ckpt.torch.save
    def torch_save(obj, path, *args, **kwargs):
        if str(path).endswith("state.pt") and f"step-{kill_at}" in str(path):
            with open(path, "wb") as handle:
                handle.write(b"half a checkpoint")
            die()
        return save(obj, path, *args, **kwargs)
    ckpt.torch.save = torch_save
bertx.finetune(config, show_progress=True)  # the bar must count steps
"""


def run_and_kill(config: dict, kill_at: int, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config), str(kill_at), mode], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.fixture
def resumable(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data  # 240 examples / batch 16 = 15 steps per epoch
    return lambda name: tiny_config(tiny_bert, train, dev, str(tmp_path / name), epochs=3, save_steps=4, eval_steps=5)


@pytest.mark.parametrize("mode,kill_at,expected_checkpoint", [("step", 22, "step-20"), ("save", 8, "step-4")])
def test_killed_run_resumes_to_the_same_result(resumable, tmp_path, mode, kill_at, expected_checkpoint):
    reference = bertx.finetune(resumable("whole"), show_progress=False)

    config = resumable("killed")
    run_and_kill(config, kill_at, mode)
    folder = latest_checkpoint(Path(config["output"]) / "checkpoints")
    assert folder is not None and folder.name == expected_checkpoint

    resumed = bertx.finetune(config, resume=True, show_progress=False)
    for key in ("accuracy", "mcc", "best_step", "steps"):
        assert resumed[key] == reference[key], key
    whole = (tmp_path / "whole/model.safetensors").read_bytes()
    assert (tmp_path / "killed/model.safetensors").read_bytes() == whole
    log = [json.loads(line) for line in (tmp_path / "killed/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "eval"] == sorted({r["step"] for r in log if r["event"] == "eval"})


def test_resume_refuses_other_settings_or_nothing(resumable, tmp_path):
    config = resumable("r")
    with pytest.raises(BertxError, match="nothing to resume"):
        bertx.finetune(config, resume=True, show_progress=False)
    run_and_kill(config, 6, "step")
    changed = {**config, "train": {**config["train"], "lr": 1e-3}}
    with pytest.raises(BertxError, match=r"other settings than the saved run: train.lr"):
        bertx.finetune(changed, resume=True, show_progress=False)
    other = make_tiny_bert(tmp_path / "other-bert")  # a checkpoint from another model is refused too
    with pytest.raises(BertxError, match=r"other settings than the saved run: model.name_or_path"):
        bertx.finetune({**config, "model": {**config["model"], "name_or_path": str(other)}}, resume=True, show_progress=False)
