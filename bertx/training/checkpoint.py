"""Resumable checkpoints, written atomically.

A checkpoint is a folder `checkpoints/step-N` holding the model and optimiser state, the scheduler,
every process's RNG state and the position in the data. It is written under a temporary name and
renamed into place, and `checkpoints/latest` (a one-line file, itself replaced atomically) names it
only afterwards: a kill at any moment leaves the previous checkpoint whole and pointed to.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertx.errors import BertxError

LATEST = "latest"


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(root: Path, step: int, accelerator, payload: dict[str, Any], keep: int = 1) -> Path:
    """Write the training state of every process; only the main process writes shared parts.

    Args:
        root: the run's `checkpoints/` folder.
        step: optimizer step the state belongs to.
        accelerator: gives the process rank and the barriers.
        payload: model/optimizer/scheduler state and progress counters (main process's copy is kept).
        keep: how many complete checkpoints to keep.
    """
    tmp = root / f".tmp-step-{step}"
    final = root / f"step-{step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(payload, tmp / "state.pt")
        for file in tmp.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _write_atomic(root / LATEST, final.name + "\n")
        for old in sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text(encoding="utf-8").strip()
    return folder if (folder / "state.pt").is_file() else None


def load_checkpoint(folder: Path, process_index: int) -> tuple[dict, dict]:
    """Read a checkpoint: the shared payload and this process's RNG state."""
    try:
        payload = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise BertxError(f"{folder / 'state.pt'}: cannot read checkpoint ({err})") from None
    rng_file = folder / f"rng-{process_index}.pt"
    if not rng_file.is_file():
        raise BertxError(f"{folder}: no RNG state for process {process_index}; resume with the same number of processes")
    return payload, torch.load(rng_file, weights_only=False)


def restore_training_state(root: Path, model, optimizer, scheduler, process_index: int) -> tuple[dict, Path]:
    """Load the latest checkpoint under `root` into model, optimizer, scheduler and the RNGs.

    Returns:
        (the recipe's progress counters as saved, the checkpoint folder).

    Raises:
        BertxError: no complete checkpoint, or one whose weights do not fit this model.
    """
    folder = latest_checkpoint(root)
    if folder is None:
        raise BertxError(f"{root}: no complete checkpoint to resume from")
    payload, rng = load_checkpoint(folder, process_index)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise BertxError(f"{folder}: checkpoint is from another model ({str(err).strip().splitlines()[0]})") from None
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    set_rng_state(rng)
    return payload["progress"], folder
