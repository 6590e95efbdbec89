"""The run folder and everything bertx writes: its format, reading it, locking it, publishing into it.

    files.py     the run config (`bertx_run.yaml`, paths stored absolute so a folder works from any
                 directory) and the atomic file writer every module uses
    lock.py      one process per output folder (`.bertx.lock` with PID, host and process start)
    targets.py   the one writer for what a user names: `output_file` (predictions, reports) and
                 `output_folder` (exports, merges, tokenizers, ...), with the checks that keep a
                 careless flag from replacing data, a device or another kind of folder

This floor sits just above `errors`: data, models, training, inference, deploy and the CLI all write
through it, and it imports nothing of bertx but `errors`.
"""

from bertx.runfolder.files import (
    LOCK_FILE,
    RUN_FILE,
    absolute_paths,
    cache_folder,
    file_digest,
    published_mode,
    read_run_config,
    write_bytes,
    write_json,
    write_run_config,
    write_text,
)
from bertx.runfolder.lock import FolderLock
from bertx.runfolder.targets import (
    check_deletable,
    check_not_read,
    check_output_file,
    check_output_folder,
    check_writable_target,
    empty_folder,
    folder_kind,
    make_folder,
    output_file,
    output_folder,
    write_model_folder,
)

__all__ = [
    "LOCK_FILE",
    "RUN_FILE",
    "FolderLock",
    "absolute_paths",
    "cache_folder",
    "check_deletable",
    "check_not_read",
    "check_output_file",
    "check_output_folder",
    "check_writable_target",
    "empty_folder",
    "file_digest",
    "folder_kind",
    "make_folder",
    "output_file",
    "output_folder",
    "published_mode",
    "read_run_config",
    "write_bytes",
    "write_json",
    "write_model_folder",
    "write_run_config",
    "write_text",
]
