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

import json
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from bertx.errors import BertxError, RunStopped

RUN_FILE = "bertx_run.yaml"
LOCK_FILE = ".bertx.lock"
# Fields a resumed run may change: they steer how long and how chattily it runs, not what it learns.
RESUMABLE_CHANGES = {"epochs", "max_steps", "early_stopping_patience", "eval_steps", "save_steps", "logging_steps",
                     "keep_checkpoints", "report_to"}
# Keys the run adds after reading its data (found columns, label names): not settings.
DERIVED = {"columns", "labels", "multitask", "distilled_from", "fewshot"}


def check_writable_target(out: Path, what: str = "--output") -> None:
    """One clear line when `out` cannot be a folder: an existing file, or a parent that is a file."""
    if out.exists() and not out.is_dir():
        raise BertxError(f"{out}: {what} is an existing file, not a folder; choose a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BertxError(f"{parent}: is a file, so {what} {out} cannot be created inside it")
            break


def make_folder(out: Path, what: str = "--output") -> None:
    check_writable_target(out, what)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BertxError(f"{out}: cannot create the {what} folder ({(err.strerror or str(err)).lower()})") from None
    if not os.access(out, os.W_OK):
        raise BertxError(f"{out}: the {what} folder is not writable")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_deletable(out: Path, protected: list[str | Path] = ()) -> None:
    """Refuse to empty `out` when it is not bertx's to delete.

    Raises:
        BertxError: `out` is the working directory or above it, holds no bertx run while not empty,
            or holds a file or folder the run reads (`protected`: its model, data, teacher).
    """
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if _inside(cwd, resolved):
        raise BertxError(f"{out}: --overwrite would delete the working directory (or a folder above it); choose another --output")
    for item in protected:
        if item and _inside(Path(item).resolve(), resolved):
            raise BertxError(f"{out}: --overwrite would delete {item}, which this run reads; choose another --output")
    contents = [p for p in out.iterdir() if p.name != LOCK_FILE] if out.is_dir() else []
    if contents and not (out / RUN_FILE).is_file():
        raise BertxError(f"{out}: not a bertx run folder (no {RUN_FILE}) and not empty; --overwrite deletes only bertx runs; "
                         "choose another --output")


def empty_folder(out: Path) -> None:
    """Delete everything in `out` but the lock (checked by `check_deletable` first)."""
    for item in out.iterdir():
        if item.name == LOCK_FILE:
            continue
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def prepare_output(out: Path, run: dict, resume: bool, overwrite: bool, protected: list[str | Path] = ()) -> None:
    """Check the output folder suits this run (create it; empty it on --overwrite). Call with the lock held.

    Raises:
        BertxError: the folder holds another run (and neither --resume nor --overwrite was given),
            --resume was given for a run with different settings, or --overwrite may not delete it.
    """
    run_file = out / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise BertxError(f"{out}: nothing to resume (no {RUN_FILE}); drop --resume to start a new run")
        previous = yaml.safe_load(run_file.read_text(encoding="utf-8"))
        differences = _differences(previous, run)
        if differences:
            raise BertxError(f"{run_file}: --resume with other settings than the saved run: {'; '.join(differences)}")
        return
    contents = [p for p in out.iterdir() if p.name != LOCK_FILE]
    if contents:
        if overwrite:
            check_deletable(out, protected)
            empty_folder(out)
        elif run_file.is_file():
            raise BertxError(
                f"{out}: holds another run ({RUN_FILE}); pass --resume to continue it, --overwrite to replace it, "
                "or choose another --output"
            )
        else:
            raise BertxError(f"{out}: output folder is not empty and holds no bertx run; choose another --output")


@contextmanager
def claimed_folder(out: Path, run_config: dict, overwrite: bool, protected: list[str | Path] = ()) -> Iterator[Path]:
    """A folder of many runs (a matrix): locked while in use, emptied on --overwrite only when it is
    bertx's, and marked with its run config so that a later --overwrite knows it is bertx's."""
    make_folder(out)
    lock = FolderLock(out).acquire()
    try:
        if any(p.name != LOCK_FILE for p in out.iterdir()):
            if overwrite:
                check_deletable(out, protected)
                empty_folder(out)
            elif not (out / RUN_FILE).is_file():
                raise BertxError(f"{out}: output folder is not empty and holds no bertx run; choose another --output")
        write_run_config(out, run_config)
        try:
            yield out
        except RunStopped as stop:  # an inner run was stopped: rerunning the matrix command continues it
            raise stop.in_matrix(out) from None
    finally:
        lock.release()


class FolderLock:
    """One run per output folder: `OUTPUT/.bertx.lock` holds the owner's PID, host and start time.

    A lock whose process is gone (same host, PID no longer alive) is stale: it is taken over and the
    run says so. A live owner's lock refuses the second run.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE
        self.held = False
        self.took_over: dict | None = None

    def acquire(self) -> "FolderLock":
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "process_start": process_start(os.getpid())}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise BertxError(
                        f"{self.path.parent}: another bertx run (pid {owner.get('pid')} on {owner.get('host')}, since "
                        f"{owner.get('started')}) is using this folder; wait for it or choose another --output"
                    ) from None
                self.took_over = owner or {}
                self.path.unlink(missing_ok=True)
                continue
            except OSError as err:
                raise BertxError(f"{self.path.parent}: cannot write in the output folder ({(err.strerror or str(err)).lower()})") from None
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(mine, handle)
            self.held = True
            return self
        raise BertxError(f"{self.path}: another run took the folder at the same moment; choose another --output")

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            return owner if isinstance(owner, dict) else None
        except (OSError, ValueError):
            return None  # unreadable or half-written: its writer died before finishing it

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, Linux), to tell it from a later one with its PID."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat; the split starts at field 3
    except (OSError, ValueError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked from here: assume it runs
    recorded = owner.get("process_start")
    if recorded is not None and isinstance(owner.get("pid"), int):
        current = process_start(owner["pid"])
        if current is not None and current != recorded:
            return False  # the PID now belongs to another process: the owner is gone
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except (KeyError, ValueError, TypeError):
        return False  # a malformed lock: no owner can be named, so none is waited for
    return True


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    found = []
    for key in sorted((set(old) | set(new)) - (DERIVED if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b and key not in RESUMABLE_CHANGES:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return found


def write_run_config(out: Path, run: dict) -> None:
    tmp = out / (RUN_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(run, sort_keys=False), encoding="utf-8")
    os.replace(tmp, out / RUN_FILE)


def read_run_config(model_dir: Path) -> dict | None:
    path = Path(model_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        run = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BertxError(f"{path}: unreadable run config ({str(err).splitlines()[0]})") from None
    return run if isinstance(run, dict) else None


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

        raise BertxError(f"{target}: could not save the model ({describe_os_error(err, target.parent)}); the model saved before is "
                         "intact; free space and resume with --resume") from None
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def write_model_folder(output: Path, model, tokenizer, run_info: dict, overwrite: bool, reads: list[Path]) -> Path:
    """Write a standalone model folder (weights, tokenizer, bertx_run.yaml) derived from other folders
    (`reads`, never deleted), all at once: a temporary folder swapped in at the end."""
    output = Path(output)
    check_writable_target(output)
    replacing = output.exists() and any(output.iterdir())
    if replacing:
        if not overwrite:
            raise BertxError(f"{output}: output folder is not empty; choose another or pass --overwrite")
        check_deletable(output, reads)
    output.parent.mkdir(parents=True, exist_ok=True)
    # A fresh, uniquely named folder beside the target: removing it can never touch anything else.
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / RUN_FILE).write_text(yaml.safe_dump(run_info, sort_keys=False), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Only now, with the new folder complete, does the one it replaces (checked above) go.
    if replacing:
        shutil.rmtree(output)
    elif output.exists():
        output.rmdir()
    os.replace(tmp, output)
    return output


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
        os.replace(tmp, target)


def write_metrics(out: Path, metrics: dict) -> None:
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "metrics.json")
