"""Resumable checkpoints: written atomically, checked on the way back in, loaded without pickle.

A checkpoint is a folder `checkpoints/step-N` holding the model and optimiser state, the scheduler,
every process's RNG state, the position in the data and `manifest.json` (each file's size and
SHA-256). It is written under a temporary name and renamed into place, and `checkpoints/latest` (a
one-line file, itself replaced atomically) names it only afterwards: a kill at any moment leaves the
previous checkpoint whole and pointed to.

On resume the manifest is verified. A damaged checkpoint (truncated, a file deleted, a checksum that
does not match) is skipped for the newest intact one, with a warning naming both. Files are read
with `torch.load(weights_only=True)`: a checkpoint folder from someone else cannot run code.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertx.errors import BertxError
from bertx.runfolder import file_digest
from bertx.console import say

LATEST = "latest"
MANIFEST = "manifest.json"


def rng_state() -> dict:
    """Every RNG a step draws from, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_atomic(path: Path, text: str) -> None:
    """Write a small text file so that readers see the old content or the new, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def step_of(folder: Path) -> int:
    return int(folder.name.split("-")[1])


def checkpoints_in(root: Path) -> list[Path]:
    """Complete checkpoint folders (renamed into place), oldest first."""
    found = [p for p in root.glob("step-*") if p.is_dir() and p.name.split("-")[1].isdigit()] if root.is_dir() else []
    return sorted(found, key=step_of)


def save_checkpoint(root: Path, step: int, accelerator, payload: dict[str, Any], keep: int = 1) -> Path:
    """Write the training state of every process; only the main process writes shared parts.

    Args:
        root: the run's `checkpoints/` folder.
        step: optimizer step the state belongs to.
        accelerator: gives the process rank and the barriers.
        payload: model/optimizer/scheduler state and progress counters (main process's copy is kept).
        keep: how many complete checkpoints to keep (older ones are deleted once this one is in place).

    Raises:
        BertxError: the disk is full, a file-size limit was hit or the folder is not writable; the
            partial checkpoint is removed and the previous one stays whole and pointed to.
    """
    tmp = root / f".tmp-step-{step}"
    final = root / f"step-{step}"
    try:
        if accelerator.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        accelerator.wait_for_everyone()
        torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            torch.save(payload, tmp / "state.pt")
            manifest = {}
            for file in sorted(tmp.iterdir()):
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
                manifest[file.name] = {"bytes": file.stat().st_size, "sha256": file_digest(file)}
            write_atomic(tmp / MANIFEST, json.dumps({"step": step, "files": manifest}, indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            write_atomic(root / LATEST, final.name + "\n")
            for old in checkpoints_in(root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        previous = checkpoints_in(root)
        kept = f"the previous checkpoint ({previous[-1].name}) is intact" if previous else "no earlier checkpoint exists"
        raise BertxError(
            f"{tmp}: could not write the checkpoint of step {step} ({describe_os_error(err, root)}); {kept}; free space and resume with --resume"
        ) from None
    accelerator.wait_for_everyone()
    return final


def describe_os_error(err: BaseException, folder: Path | None = None) -> str:
    """A short reason for a failed write. torch reports a full disk as an opaque RuntimeError
    ("unexpected pos 64 vs 0"), so the disk and the file-size limit are checked to name the cause."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    if folder is not None:
        probe = next((p for p in [folder, *folder.parents] if p.exists()), None)
        if probe is not None and shutil.disk_usage(probe).free < 1 << 20:
            return "no space left on device"
        import resource

        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return "file size limit exceeded"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def verify(folder: Path) -> str | None:
    """What is wrong with a checkpoint folder, or None when its manifest matches every file."""
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        return f"no {MANIFEST}"
    try:
        files = json.loads(manifest_file.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return f"{MANIFEST} is unreadable"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {expected['bytes']}"
        if file_digest(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    return None


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint `latest` points to, if it exists (not verified)."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text(encoding="utf-8").strip()
    return folder if (folder / "state.pt").is_file() else None


def intact_checkpoint(root: Path) -> Path:
    """The newest checkpoint that passes its manifest, warning about each damaged one skipped.

    Raises:
        BertxError: there is no checkpoint, or none is intact.
    """
    candidates = checkpoints_in(root)[::-1]
    pointed = latest_checkpoint(root)
    if pointed is not None and pointed in candidates:  # the pointer is the authority on which is newest
        candidates.remove(pointed)
        candidates.insert(0, pointed)
    if not candidates:
        raise BertxError(f"{root}: no complete checkpoint to resume from")
    damaged = []
    for folder in candidates:
        problem = verify(folder)
        if problem is None:
            if damaged:
                say(f"warning: checkpoint {damaged[0][0]} is damaged ({damaged[0][1]}); resuming from {folder.name} instead", err=True)
            return folder
        damaged.append((folder.name, problem))
    listed = "; ".join(f"{name}: {problem}" for name, problem in damaged)
    raise BertxError(f"{root}: no intact checkpoint to resume from ({listed}); start again with --overwrite")


def load_checkpoint(folder: Path, process_index: int) -> tuple[dict, dict]:
    """Read a checkpoint: the shared payload and this process's RNG state (tensors and plain data only)."""
    rng_file = folder / f"rng-{process_index}.pt"
    if not rng_file.is_file():
        raise BertxError(f"{folder}: no RNG state for process {process_index}; resume with the same number of processes")
    loaded = []
    for path in (folder / "state.pt", rng_file):
        try:
            loaded.append(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # a truncated file, or one holding more than tensors and plain data
            raise BertxError(f"{path}: cannot read checkpoint ({describe_os_error(err)})") from None
    return loaded[0], loaded[1]


def restore_training_state(root: Path, model, optimizer, scheduler, process_index: int) -> tuple[dict, Path]:
    """Load the newest intact checkpoint under `root` into model, optimizer, scheduler and the RNGs.

    Returns:
        (the recipe's progress counters as saved, the checkpoint folder).

    Raises:
        BertxError: no intact checkpoint, or one whose weights do not fit this model.
    """
    folder = intact_checkpoint(root)
    payload, rng = load_checkpoint(folder, process_index)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise BertxError(f"{folder}: checkpoint is from another model ({str(err).strip().splitlines()[0]})") from None
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    set_rng_state(rng)
    return payload["progress"], folder
