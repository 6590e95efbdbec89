"""The one writer for what a user names with `--output`: a file (predictions, an HTML report) or a folder
(an export, a merge, a tokenizer, an extended vocabulary, a rank report, a standalone task model).

What every target gets, whichever command writes it:
- it is never something the command reads (a model file, the data, the run folder itself, or a
  folder holding any of them);
- it is written under a unique temporary name beside it (`mkstemp` / `mkdtemp`) and published whole at
  the end; the temporary is removed on every exit, SIGTERM included (the CLI turns SIGTERM into an
  exception, so `finally` runs);
- a symlink is written through (its target is updated, the link stays a link); a FIFO, a character or
  block device or a socket is written to as a stream (`--output /dev/null` keeps working and the
  device stays a device);
- `--overwrite` replaces only a folder of the same kind (an export over an export, never a training
  run from a non-training command), never the working directory or a folder above it;
- a published folder is locked while it is written (`lock.py`, the lock training runs take), and gets
  the permissions of the umask.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

from bertx.errors import BertxError
from bertx.runfolder.files import LOCK_FILE, RUN_FILE, published_mode, read_run_config, write_run_config, write_text
from bertx.runfolder.lock import FolderLock


def _lower(err: OSError) -> str:
    return (err.strerror or str(err)).lower()


def check_writable_target(out: Path, what: str = "--output") -> None:
    """One clear line when `out` cannot be a folder: an existing file, or a parent that is a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BertxError(f"{out}: {what} is an existing file, not a folder; choose a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BertxError(f"{parent}: is a file, so {what} {out} cannot be created inside it")
            break


def make_folder(out: Path, what: str = "--output") -> None:
    out = Path(out)
    check_writable_target(out, what)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BertxError(f"{out}: cannot create the {what} folder ({_lower(err)})") from None
    if not os.access(out, os.W_OK):
        raise BertxError(f"{out}: the {what} folder is not writable")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_not_read(target: Path, reads: Iterable, what: str = "--output") -> None:
    """Refuse a target that is, holds, or lies inside something the command reads."""
    resolved = Path(target).resolve()
    for item in reads:
        if not item:
            continue
        read = Path(item).resolve()
        if _inside(resolved, read) or _inside(read, resolved):
            raise BertxError(f"{target}: {what} would replace {item}, which this command reads; choose another {what}")


def folder_kind(folder: Path) -> str | None:
    """What a folder holds, as far as bertx can tell: None (absent or empty), 'export', 'merge',
    'task export', 'vocabulary', 'tokenizer', 'rank', 'plan', 'matrix' (a folder of many runs: transfer
    matrices, source caches, selected multi-task), 'corpus', 'run' (a training run) or 'foreign'.
    Folders record their kind (`written_as`); older ones are told by their files."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    contents = [p.name for p in folder.iterdir() if p.name != LOCK_FILE]
    if not contents:
        return None
    if (folder / "export_report.json").is_file():
        return "export"
    if (folder / "rank.json").is_file() and not (folder / RUN_FILE).is_file():
        return "rank"
    if (folder / RUN_FILE).is_file():
        try:
            run = read_run_config(folder) or {}
        except BertxError:
            return "run"
        written_as = run.get("written_as")
        if written_as:
            return str(written_as)
        for key, kind in (
            ("export", "export"),
            ("merged_from", "merge"),
            ("exported_from", "task export"),
            ("vocab_extend", "vocabulary"),
            ("budget", "plan"),
        ):
            if key in run:
                return kind
        if (folder / "plan.json").is_file():
            return "plan"
        return "run"
    if (folder / "tokenizer_config.json").is_file() and not (folder / "config.json").is_file():
        return "tokenizer"
    return "foreign"


def check_deletable(out: Path, protected: Iterable = (), kind: str | None = None) -> None:
    """Refuse to replace `out` when it is not bertx's to delete (or not of `kind`, when given).

    Raises:
        BertxError: `out` is the working directory or above it, holds something the command reads,
            holds no bertx output while not empty, or holds another kind of bertx output.
    """
    out = Path(out)
    resolved = out.resolve()
    if _inside(Path.cwd().resolve(), resolved):
        raise BertxError(f"{out}: --overwrite would delete the working directory (or a folder above it); choose another --output")
    for item in protected:
        if item and _inside(Path(item).resolve(), resolved):
            raise BertxError(f"{out}: --overwrite would delete {item}, which this run reads; choose another --output")
    found = folder_kind(out)
    if found is None:
        return
    if found == "foreign":
        raise BertxError(f"{out}: not a bertx run folder (no {RUN_FILE}) and not empty; --overwrite deletes only bertx runs; choose another --output")
    if kind is not None and found != kind:
        raise BertxError(f"{out}: holds a bertx {found} folder; --overwrite here replaces only an earlier {kind} folder; choose another --output")


def empty_folder(out: Path) -> None:
    """Delete everything in `out` but the lock (checked by `check_deletable` first)."""
    for item in Path(out).iterdir():
        if item.name == LOCK_FILE:
            continue
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def _is_stream(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)


def check_output_file(target: str | Path, reads: Iterable = (), what: str = "--output") -> Path:
    """The checks of `output_file`, for a command to run before its work starts; returns the path that
    will be written (a symlink followed)."""
    target = Path(target)
    check_not_read(target, reads, what)
    resolved = Path(os.path.realpath(target))  # a symlink, followed: its target is what gets written
    if resolved.is_dir():
        raise BertxError(f"{target}: {what} is a folder; give a file name")
    if _is_stream(resolved):
        return resolved  # written in place: its folder need not be writable (/dev/null)
    if not resolved.parent.is_dir():
        raise BertxError(f"{target}: {what} folder {target.parent} does not exist")
    if not os.access(resolved.parent, os.W_OK):  # the temporary beside it needs the folder
        raise BertxError(f"{target}: {what} folder {target.parent} is not writable")
    return resolved


@contextmanager
def output_file(target: str | Path, reads: Iterable = (), what: str = "--output", binary: bool = False) -> Iterator[IO]:
    """A handle whose contents become `target` when the block ends without an error.

    A regular target (or a new one) is replaced atomically and keeps its permissions; a symlink is
    written through; a FIFO or device is opened and written directly.
    """
    target = Path(target)
    resolved = check_output_file(target, reads, what)
    mode = "wb" if binary else "w"
    text_options = {} if binary else {"encoding": "utf-8", "newline": "\n"}
    if _is_stream(resolved):
        try:
            with open(resolved, mode, **text_options) as handle:
                yield handle
        except OSError as err:
            raise BertxError(f"{target}: cannot write ({_lower(err)})") from None
        return
    parent = resolved.parent
    keep_mode = stat.S_IMODE(resolved.stat().st_mode) if resolved.is_file() else published_mode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{resolved.name}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise BertxError(f"{target}: cannot write ({_lower(err)})") from None
    try:
        with os.fdopen(fd, mode, **text_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, keep_mode)
        os.replace(tmp, resolved)
    except OSError as err:
        raise BertxError(f"{target}: cannot write ({_lower(err)}); nothing was replaced") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_output_folder(target: Path, kind: str, overwrite: bool, reads: Iterable = (), what: str = "--output") -> str | None:
    """The checks of `output_folder`, for a command to run before its work starts; returns what is there now."""
    target = Path(target)
    reads = [r for r in reads if r]
    check_writable_target(target, what)
    check_not_read(target, reads, what)
    found = folder_kind(target)
    if found is not None:
        if not overwrite:
            raise BertxError(f"{target}: {what} folder is not empty; choose another or pass --overwrite")
        check_deletable(target, reads, kind)
    return found


@contextmanager
def output_folder(target: str | Path, kind: str, overwrite: bool, reads: Iterable = (), what: str = "--output") -> Iterator[Path]:
    """A fresh temporary folder that becomes `target` when the block ends without an error.

    Args:
        target: the folder the user named.
        kind: what this command writes ('export', 'merge', ...): `--overwrite` replaces only that.
        overwrite: the user allowed replacing an earlier output of this kind.
        reads: files and folders the command reads: never the target, never inside it.

    Raises:
        BertxError: the target cannot be this command's output (see the module docstring).
    """
    target = Path(target)
    found = check_output_folder(target, kind, overwrite, reads, what)
    created = not target.exists()
    make_folder(target, what)
    lock = FolderLock(target).acquire()
    tmp = None
    try:
        if folder_kind(target) != found:  # another process wrote there between the check and the lock
            raise BertxError(f"{target}: changed while bertx was checking it; run the command again")
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        except OSError as err:
            raise BertxError(f"{target.parent}: cannot write ({_lower(err)})") from None
        os.chmod(tmp, published_mode(folder=True))
        yield tmp
        _swap_in(tmp, target, lock)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
        if created and target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # a failed first write leaves nothing behind


def _swap_in(tmp: Path, target: Path, lock: FolderLock) -> None:
    """Replace `target` by the complete `tmp`: the old folder is renamed into a fresh graveyard folder
    (a unique name), the new one renamed into place, then the graveyard removed. The new folder carries
    the lock until the caller releases it."""
    shutil.copy2(lock.path, tmp / LOCK_FILE)
    graveyard = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old = graveyard / "old"
    try:
        os.rename(target, old)
        os.rename(tmp, target)
    except OSError as err:
        if old.exists() and not target.exists():
            os.rename(old, target)  # put the old folder back
        if not old.exists():
            graveyard.rmdir()  # empty: the old folder is back in place (or never left)
        raise BertxError(f"{target}: cannot publish ({_lower(err)}); the previous contents are intact") from None
    # Only now, with the new folder in place, does the old one go.
    shutil.rmtree(graveyard, ignore_errors=True)


def write_model_folder(
    output: str | Path, model, tokenizer, run_info: dict, overwrite: bool, reads: list[Path], kind: str, extra_files: dict[str, str] | None = None
) -> Path:
    """Write a standalone model folder (weights, tokenizer, bertx_run.yaml) derived from other folders
    (`reads`, never replaced) through the one folder writer: complete or not at all, and on --overwrite
    only over an earlier folder of the same `kind` ('merge', 'task export', 'vocabulary')."""
    with output_folder(output, kind, overwrite, reads) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_run_config(tmp, {**run_info, "written_as": kind})
        for name, text in (extra_files or {}).items():  # reports published with the model, never after it
            write_text(tmp / name, text)
    return Path(output)
