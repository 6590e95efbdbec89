"""Data by its usual name: a `datasets` dataset read like any labelled file.

    hf:NAME[:CONFIG]:SPLIT    `datasets.load_dataset(NAME, CONFIG, split=SPLIT)` (from the HF datasets cache
                              when HF_HUB_OFFLINE=1, downloaded otherwise)
    FOLDER                    a `Dataset.save_to_disk` folder (for a DatasetDict: its split's subfolder)
        -> one JSONL file (class ids written as their names, so labels read as in a TSV) in
           ~/.cache/bertx/datasets/, keyed by the dataset's fingerprint -> the ordinary file readers,
           with the same column rules as files

A dataset is written out once; a changed dataset has a new fingerprint and is written again.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from bertx.errors import BertxError
from bertx.runfolder import cache_folder

PREFIX = "hf:"


def is_dataset_reference(path: str) -> bool:
    folder = Path(path)
    saved = (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    return path.startswith(PREFIX) or (folder.is_dir() and (saved or (folder / "dataset_dict.json").is_file()))


def cache_root() -> Path:
    return cache_folder("datasets")


def load(reference: str):
    """The `datasets.Dataset` a reference names; one line when it cannot be had."""
    import datasets

    datasets.disable_progress_bars()
    if not reference.startswith(PREFIX):
        try:
            found = datasets.load_from_disk(reference)
        except Exception as err:
            raise BertxError(f"{reference}: not a readable saved dataset ({type(err).__name__}: {err})") from None
        if isinstance(found, datasets.DatasetDict):
            raise BertxError(f"{reference}: a DatasetDict; give one split's folder ({', '.join(f'{reference}/{s}' for s in found)})")
        return found
    parts = reference[len(PREFIX) :].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise BertxError(f"{reference}: write hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT (for example hf:glue:sst2:train)")
    name, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        hint = " (HF_HUB_OFFLINE=1: only datasets already in the HF datasets cache load)" if offline else ""
        raise BertxError(f"{reference}: cannot load the dataset{hint}: {detail}") from None


def local_file(path: str | None) -> str | None:
    """A path to read: a dataset reference becomes the JSONL file it is written to (once); anything else,
    None included, is returned as it is. Recipes call it where they resolve their inputs."""
    return materialise(path) if path is not None and is_dataset_reference(path) else path


def materialise(reference: str) -> str:
    """Write the dataset as JSONL (once) and return the file's path. A run resolves its data paths several
    times; the dataset is opened once per process and cache folder."""
    return _materialised(reference, str(cache_root()))


@lru_cache(maxsize=32)
def _materialised(reference: str, root: str) -> str:
    import datasets

    dataset = load(reference)
    key = hashlib.sha256(f"{reference}\n{dataset._fingerprint}".encode("utf-8")).hexdigest()[:20]
    target = Path(root) / f"{key}.jsonl"
    if target.is_file():
        return str(target)
    names = {}
    for column, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):
            names[column] = ("one", feature.names)
        elif isinstance(feature, (datasets.Sequence, datasets.List)) and isinstance(getattr(feature, "feature", None), datasets.ClassLabel):
            names[column] = ("many", feature.feature.names)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as out:
        for row in dataset:
            for column, (kind, labels) in names.items():
                value = row[column]
                row[column] = (
                    labels[value]
                    if kind == "one" and isinstance(value, int) and value >= 0
                    else ([labels[v] for v in value] if kind == "many" else value)
                )
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, target)
    return str(target)
