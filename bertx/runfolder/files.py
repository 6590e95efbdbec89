"""Files inside a folder bertx owns: written whole or not at all, with the permissions the user's umask gives.

Every file goes to a uniquely named temporary beside its target (`mkstemp`: never a name a user's file
could have), is flushed, then renamed over the target. `mkstemp` creates files readable by the owner
only; a published file gets `0666 & ~umask` instead, as `open()` would have given it, so a service
account can read a model that a training account wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bertx.errors import BertxError

RUN_FILE = "bertx_run.yaml"
LOCK_FILE = ".bertx.lock"

# Keys of a run config whose values are file or folder paths (at any depth): stored absolute, so that
# `export`, `report` and `evaluate` find the run's data from any working directory.
PATH_KEYS = {
    "train",
    "dev",
    "eval",
    "test",
    "name_or_path",
    "teacher",
    "unlabelled",
    "text",
    "output",
    "tokenizer",
    "documents_file",
    "rank_on",
    "model",
    "source",
    "from",
    "adapter",
    "multitask",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def published_mode(folder: bool = False) -> int:
    """The mode a new file (or folder) gets under the current umask."""
    return (0o777 if folder else 0o666) & ~_umask()


def cache_folder(name: str) -> Path:
    """`$BERTX_CACHE/NAME` (default `~/.cache/bertx/NAME`), the one place bertx keeps what it can rebuild:
    teacher outputs, tokenised corpora, materialised datasets. A cache root that is not a folder is one line."""
    root = Path(os.environ.get("BERTX_CACHE") or Path.home() / ".cache" / "bertx")
    for path in (root, root / name):
        if path.exists() and not path.is_dir():
            raise BertxError(f"{path}: the bertx cache must be a folder, this is a file (set BERTX_CACHE to a folder)")
    return root / name


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a temporary beside it, then a rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, published_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (checkpoint manifests; telling identical tokenizers apart)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, value: Any) -> Path:
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a path from undecodable bytes): JSON's own escapes keep it
        text = json.dumps(value, indent=2) + "\n"
    return write_text(path, text)


def _absolute(value: Any) -> Any:
    """A relative path that exists from here, made absolute; anything else (hf: references, names) as it is."""
    if isinstance(value, list):
        return [_absolute(v) for v in value]
    if not isinstance(value, str) or not value or os.path.isabs(value) or value.startswith("hf:") or "\n" in value:
        return value
    try:
        return str(Path(value).resolve()) if Path(value).exists() else value
    except (OSError, ValueError):
        return value


def absolute_paths(tree: Any, key: str = "") -> Any:
    """The run config with every existing relative path under a path key made absolute (a copy)."""
    if isinstance(tree, dict):
        return {k: absolute_paths(v, k) for k, v in tree.items()}
    if key in PATH_KEYS:
        return _absolute(tree)
    if isinstance(tree, list):
        return [absolute_paths(v, key) for v in tree]
    return tree


def write_run_config(out: str | Path, run: dict) -> None:
    """`bertx_run.yaml`: the resolved run config, paths absolute (see PATH_KEYS)."""
    # ASCII with YAML's escapes: any path (emoji, undecodable bytes) reads back exactly.
    write_text(Path(out) / RUN_FILE, yaml.safe_dump(absolute_paths(run), sort_keys=False))


def read_run_config(model_dir: str | Path) -> dict | None:
    """The folder's run config, or None when it has none (a plain HF folder)."""
    path = Path(model_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        run = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BertxError(f"{path}: unreadable run config ({str(err).splitlines()[0]})") from None
    return run if isinstance(run, dict) else None
