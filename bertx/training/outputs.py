"""The output folder: claim it safely, lock it, save the run config, publish the best model.

Layout of a finished run:
    OUTPUT/config.json, model.safetensors, tokenizer files   the best model, HF-compatible
    OUTPUT/bertx_run.yaml                                    the resolved run config
    OUTPUT/metrics.json                                      final dev metrics and run figures
    OUTPUT/log.jsonl                                         training and evaluation log
    OUTPUT/best/                                             the best model while training runs
    OUTPUT/checkpoints/                                      resumable state
    OUTPUT/.bertx.lock                                       while a run is using the folder

bertx deletes only what it wrote: `--overwrite` empties a folder only when it holds a bertx run (its
`bertx_run.yaml`) or nothing, never the working directory or a folder above it, and never a folder
that holds the model or data the run reads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from bertx.errors import BertxError, RunStopped
from bertx.runfolder import (
    LOCK_FILE,
    RUN_FILE,
    FolderLock,
    absolute_paths,
    check_deletable,
    empty_folder,
    folder_kind,
    make_folder,
    published_mode,
    read_run_config,
    write_json,
    write_run_config,
)

# Fields a resumed run may change: they steer how long and how chattily it runs, not what it learns.
RESUMABLE_CHANGES = {
    "epochs",
    "max_steps",
    "early_stopping_patience",
    "eval_steps",
    "save_steps",
    "logging_steps",
    "keep_checkpoints",
    "report_to",
    "output",
}  # a run folder may move: `--resume --output NEW_PLACE` continues it
# Keys the run adds after reading its data (found columns, label names): not settings.
DERIVED = {"columns", "labels", "multitask", "distilled_from", "fewshot", "written_as"}


def prepare_output(out: Path, run: dict, resume: bool, overwrite: bool, protected: list[str | Path] = ()) -> None:
    """Check the output folder suits this run (create it; empty it on --overwrite). Call with the lock held.

    Raises:
        BertxError: the folder holds another run (and neither --resume nor --overwrite was given),
            --resume was given for a run with different settings, or --overwrite may not delete it.
    """
    run_file = out / RUN_FILE
    found = folder_kind(out)
    if found not in (None, "run", "foreign"):  # a plan, a matrix, an export: never resumed into or replaced by a run
        raise BertxError(f"{out}: holds a bertx {found} folder, not a training run; choose another --output")
    if resume:
        if not run_file.is_file():
            raise BertxError(f"{out}: nothing to resume (no {RUN_FILE}); drop --resume to start a new run")
        previous = read_run_config(out) or {}
        differences = _differences(absolute_paths(previous), absolute_paths(run))
        if differences:
            raise BertxError(f"{run_file}: --resume with other settings than the saved run: {'; '.join(differences)}")
        return
    contents = [p for p in out.iterdir() if p.name != LOCK_FILE]
    if contents:
        if overwrite:
            check_deletable(out, protected, "run")
            empty_folder(out)
        elif run_file.is_file():
            raise BertxError(
                f"{out}: holds another run ({RUN_FILE}); pass --resume to continue it, --overwrite to replace it, or choose another --output"
            )
        else:
            raise BertxError(f"{out}: output folder is not empty and holds no bertx run; choose another --output")


@contextmanager
def claimed_folder(
    out: Path,
    run_config: dict,
    overwrite: bool,
    protected: list[str | Path] = (),
    kind: str = "matrix",
    check: Callable[[Path], object] | None = None,
) -> Iterator[Path]:
    """A folder of many runs (a matrix, a plan): locked while in use, emptied on --overwrite only when it
    holds the same kind, and marked with its run config and kind so that a later command knows it.

    `check(out)` runs after the folder's kind is checked and before anything is written: a command whose
    own checks fail (a plan rerun with other settings) leaves the folder as it found it."""
    created = not Path(out).exists()
    make_folder(out)
    lock = FolderLock(out).acquire()
    try:
        found = folder_kind(out)
        if found is not None:
            if overwrite:
                check_deletable(out, protected, None if _legacy_matrix(out, found, kind) else kind)
                empty_folder(out)
            elif found == "foreign":
                raise BertxError(f"{out}: output folder is not empty and holds no bertx output; choose another --output")
            elif found != kind and not _legacy_matrix(out, found, kind):
                raise BertxError(f"{out}: holds a bertx {found} folder, not a {kind}; choose another --output")
        if check is not None:
            check(out)
        write_run_config(out, {**run_config, "written_as": kind})
        try:
            yield out
        except RunStopped as stop:  # an inner run was stopped: rerunning the matrix command continues it
            raise stop.in_matrix(out) from None
    except BaseException:
        lock.release()
        if created:  # refused before writing: the folder this call made goes again, and only while it is empty
            with contextlib.suppress(OSError):
                Path(out).rmdir()
        raise
    else:
        lock.release()


def _legacy_matrix(out: Path, found: str, kind: str) -> bool:
    """A matrix written before folders recorded their kind reads as a 'run': one without a training
    run's own files at its root."""
    return kind == "matrix" and found == "run" and not any((out / name).exists() for name in ("log.jsonl", "config.json", "checkpoints"))


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    found = []
    for key in sorted((set(old) | set(new)) - (DERIVED if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b and key not in RESUMABLE_CHANGES:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return found


def save_model_atomic(model, tokenizer, target: Path) -> None:
    """save_pretrained into a temporary folder, then swap it in: never a half-written model.

    `model` is anything with `save_pretrained` (an HF model, or bertx's multi-task model)."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    except (OSError, RuntimeError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        from bertx.training.checkpoint import describe_os_error

        raise BertxError(
            f"{target}: could not save the model ({describe_os_error(err, target.parent)}); the model saved before is "
            "intact; free space and resume with --resume"
        ) from None
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def publish(best: Path, out: Path) -> None:
    """Copy the best model's files (and sub-folders, such as multi-task heads) into the output root,
    where `from_pretrained(OUTPUT)` finds them; each file lands under a temporary name first."""
    for item in best.iterdir():
        target = out / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
            continue
        tmp = out / (item.name + ".tmp")
        shutil.copy2(item, tmp)
        os.chmod(tmp, published_mode())  # the umask's permissions, whatever the library that wrote it chose
        os.replace(tmp, target)


def write_metrics(out: Path, metrics: dict) -> None:
    write_json(out / "metrics.json", metrics)
