"""Data parallelism: 2 CPU processes under torchrun (gloo) train the same model as 1 process with the
same global batch, with no code change."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def cli(args, nproc: int):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "bertx.cli", *args]
    else:
        torchrun = shutil.which("torchrun") or pytest.skip("torchrun not on PATH")
        cmd = [torchrun, "--nproc_per_node", str(nproc), "--master_port", "29533", "-m", "bertx.cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_processes_match_one(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    # No dropout: with it, each process draws its own masks and the runs differ by design.
    common = [
        "finetune",
        "--task",
        "classification",
        "--train",
        train,
        "--dev",
        dev,
        "--model",
        tiny_bert,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--seed",
        "7",
        "--show-examples",
        "0",
        "model.dropout=0.0",
        "model.freeze_word_embeddings=false",
    ]
    cli([*common, "--output", str(tmp_path / "one")], 1)
    two = cli([*common, "--output", str(tmp_path / "two")], 2)
    assert two.stdout.count("model saved to") == 1  # only the main process reports

    start = json.loads((tmp_path / "two/log.jsonl").read_text().splitlines()[0])
    assert start["processes"] == 2
    m1 = json.loads((tmp_path / "one/metrics.json").read_text())
    m2 = json.loads((tmp_path / "two/metrics.json").read_text())
    assert m1["steps"] == m2["steps"] == 30
    assert abs(m1["accuracy"] - m2["accuracy"]) <= 0.02
    w1, w2 = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    worst = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert worst < 1e-3, f"weights differ by {worst}"
    base = load_file(Path(tiny_bert) / "model.safetensors")
    moved = max((w1[f"bert.{k}"] - base[k]).abs().max().item() for k in base if f"bert.{k}" in w1)
    assert moved > 1e-2  # and training did move the encoder


def test_pretraining_on_two_processes_matches_one(tiny_bert, tmp_path):
    from tests.recipes.test_pretrain import write_patterned_text

    text = write_patterned_text(tmp_path / "corpus.txt")
    # Masks are drawn for the whole global batch from (seed, step): both runs see the same ones.
    common = [
        "pretrain",
        "--train",
        text,
        "--tokenizer",
        tiny_bert,
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--max-steps",
        "6",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--sentence-task",
        "sop",
        "--max-length",
        "32",
        "model.dropout=0.0",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    cli([*common, "--output", str(tmp_path / "one")], 1)
    cli([*common, "--output", str(tmp_path / "two")], 2)
    w1, w2 = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    worst = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert worst < 1e-4, f"weights differ by {worst}"
    assert json.loads((tmp_path / "two/log.jsonl").read_text().splitlines()[0])["processes"] == 2


def test_multitask_on_two_processes_matches_one(tiny_bert, tmp_path):
    import yaml

    from tests.recipes.test_multitask import mt_config

    # Each step trains one task's head; the other heads get no gradient, which data parallelism must accept.
    config = mt_config(tiny_bert, tmp_path, "unused", epochs=2)
    config["tasks"] = config["tasks"][:2]
    config["sampling"]["tasks_per_step"] = 2
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(config))
    for name, nproc in (("one", 1), ("two", 2)):
        cli(["multitask", str(tmp_path / "mt.yaml"), "--output", str(tmp_path / name)], nproc)
    m1 = json.loads((tmp_path / "one/metrics.json").read_text())
    m2 = json.loads((tmp_path / "two/metrics.json").read_text())
    assert json.loads((tmp_path / "two/log.jsonl").read_text().splitlines()[0])["processes"] == 2
    assert m1["steps"] == m2["steps"] and m1["batches_per_task"] == m2["batches_per_task"]
    for file in ("model.safetensors", "heads/sent/head.safetensors", "heads/pair/head.safetensors"):
        w1, w2 = load_file(tmp_path / "one" / file), load_file(tmp_path / "two" / file)
        worst = max((w1[k] - w2[k]).abs().max().item() for k in w1)
        assert worst < 1e-3, f"{file}: weights differ by {worst}"


STOP_ONE_PROCESS = r"""
import os, signal, sys
from bertx.training import run as lifecycle
original = lifecycle.Run.after_step
def after_step(self):
    # SIGTERM reaches process 1 only (a preempted worker): every process must checkpoint the same step and stop.
    if self.accelerator.process_index == 1 and self.state.step == 5:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self)
lifecycle.Run.after_step = after_step
from bertx.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_signal_to_one_process_stops_all_at_the_same_step_and_resumes(tiny_bert, toy_data, tmp_path):
    torchrun = shutil.which("torchrun") or pytest.skip("torchrun not on PATH")
    train, dev = toy_data
    common = [
        "finetune",
        "--task",
        "classification",
        "--train",
        train,
        "--dev",
        dev,
        "--model",
        tiny_bert,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--seed",
        "7",
        "--show-examples",
        "0",
        "--save-steps",
        "100",
        "model.dropout=0.0",
        "model.freeze_word_embeddings=false",
    ]
    cli([*common, "--output", str(tmp_path / "whole")], 2)
    script = tmp_path / "stop_one.py"
    script.write_text(STOP_ONE_PROCESS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    stopped = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29534", str(script), *common, "--output", str(tmp_path / "stopped")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert stopped.returncode != 0 and "stopped at step 5; resume with --resume" in stopped.stderr, stopped.stderr[-3000:]
    checkpoint = tmp_path / "stopped/checkpoints/step-5"
    assert (checkpoint / "rng-0.pt").is_file() and (checkpoint / "rng-1.pt").is_file()
    cli([*common, "--output", str(tmp_path / "stopped"), "--resume"], 2)
    assert (tmp_path / "stopped/model.safetensors").read_bytes() == (tmp_path / "whole/model.safetensors").read_bytes()


def test_two_nodes_train_what_two_processes_on_one_node_train(tiny_bert, toy_data, tmp_path):
    """Multi-node training: two torchrun "nodes" (one process each, c10d rendezvous on localhost) train
    bit for bit what one node with two processes trains. A real cluster only changes the endpoint's host."""
    torchrun = shutil.which("torchrun") or pytest.skip("torchrun not on PATH")
    train, dev = toy_data
    common = [
        "finetune",
        "--task",
        "classification",
        "--train",
        train,
        "--dev",
        dev,
        "--model",
        tiny_bert,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--seed",
        "7",
        "--show-examples",
        "0",
        "model.dropout=0.0",
        "model.freeze_word_embeddings=false",
    ]
    cli([*common, "--output", str(tmp_path / "one-node")], 2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [
                torchrun,
                "--nnodes",
                "2",
                "--nproc_per_node",
                "1",
                "--node_rank",
                str(rank),
                "--rdzv_backend",
                "c10d",
                "--rdzv_endpoint",
                "localhost:29536",
                "--rdzv_id",
                "bertx-two-nodes",
                "-m",
                "bertx.cli",
                *common,
                "--output",
                str(tmp_path / "two-nodes"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in outputs]
    start = json.loads((tmp_path / "two-nodes/log.jsonl").read_text().splitlines()[0])
    assert start["processes"] == 2
    assert (tmp_path / "two-nodes/model.safetensors").read_bytes() == (tmp_path / "one-node/model.safetensors").read_bytes()
