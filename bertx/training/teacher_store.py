"""The teacher's outputs kept on disk by content, so a transfer set is labelled once for every student.

    key = sha256(the teacher's weights and config, how it ran (fp32, bf16, an export), the head's kind,
                 every example's token ids)
    -> BERTX_CACHE/teacher-outputs/KEY.npz: `rows` (N, C) for sequence heads; per-token heads: each
       output concatenated over the examples, plus `lengths`

Another student kind, a rerun, or `bertx plan` trying a second student on the same transfer set finds the
outputs instead of running the teacher again. A changed teacher or a changed text is a new key, never a
stale hit. Files are written atomically and carry a digest of their arrays; on reading, a file whose
digest, shape (one output per example, as many token rows as the example has tokens) or values (all
finite) do not hold is damaged: it is ignored, labelled again and replaced, with a note.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from bertx.data.features import Features
from bertx.runfolder import cache_folder, file_digest, write_bytes

WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".bin")


def store_root() -> Path:
    return cache_folder("teacher-outputs")


def teacher_digest(folder: str | Path) -> str:
    """The teacher's identity: its config and weight files (top level of the folder), by content."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.name in ("config.json", "student.json")):
            digest.update(f"{path.name}:{file_digest(path)}\n".encode())
    return digest.hexdigest()


def features_digest(features: Features) -> str:
    digest = hashlib.sha256(np.asarray(features.lengths, dtype=np.int64).tobytes())
    for rows in (features.input_ids, features.token_type_ids or []):
        for row in rows:
            digest.update(np.asarray(row, dtype=np.int32).tobytes())
    return digest.hexdigest()


def key(teacher: str, how: str, label_kind: str, features: Features) -> str:
    return hashlib.sha256(f"{teacher}|{how}|{label_kind}|{features_digest(features)}".encode()).hexdigest()[:32]


def _arrays_digest(arrays: dict[str, np.ndarray]) -> np.ndarray:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def pack(outputs, per_token_keys: Optional[tuple], lengths: list[int]) -> bytes:
    """Outputs as NumPy bytes (no pickle): `rows` (N, C), or per-token arrays concatenated plus `lengths`,
    and the arrays' digest."""
    if per_token_keys is None:
        arrays = {"rows": np.asarray(outputs)}
    else:
        arrays = {"lengths": np.asarray(lengths), **{k: np.concatenate(outputs[k]) for k in per_token_keys}}
    buffer = io.BytesIO()
    np.savez(buffer, digest=_arrays_digest(arrays), **arrays)
    return buffer.getvalue()


def unpack(data, per_token_keys: Optional[tuple]):
    """`pack`'s outputs back: the (N, C) array, or per key one (T_i, ...) array per example.
    ValueError when the digest does not match the arrays (a file changed after it was written)."""
    with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as stored:
        names = ("rows",) if per_token_keys is None else ("lengths", *per_token_keys)
        arrays = {name: stored[name] for name in names}
        if "digest" in stored.files and not np.array_equal(stored["digest"], _arrays_digest(arrays)):
            raise ValueError("its digest does not match its contents")
    if per_token_keys is None:
        return arrays["rows"]
    ends = np.cumsum(arrays["lengths"])[:-1]
    return {k: list(np.split(arrays[k], ends)) for k in per_token_keys}


def check(outputs, per_token_keys: Optional[tuple], lengths: list[int]) -> Optional[str]:
    """What is wrong with outputs for examples of these token lengths, or None: one output per example,
    one row per token, only finite values."""
    if per_token_keys is None:
        if outputs.ndim != 2 or len(outputs) != len(lengths):
            return f"shape {tuple(outputs.shape)} for {len(lengths)} examples"
        bad = int((~np.isfinite(outputs)).any(axis=1).sum())
    else:
        bad = 0
        for k in per_token_keys:
            rows = outputs[k]
            if len(rows) != len(lengths) or any(len(r) != n for r, n in zip(rows, lengths)):
                return f"`{k}` does not have one row per token of the {len(lengths)} examples"
            bad = max(bad, sum(not np.isfinite(r).all() for r in rows))
    return f"NaN or infinite values for {bad} of {len(lengths)} examples" if bad else None


def load(name: str, per_token_keys: Optional[tuple], lengths: list[int], log: Callable[[str], None] = lambda _: None):
    """The stored outputs for examples of these lengths, or None when absent or damaged (then a note)."""
    path = store_root() / f"{name}.npz"
    if not path.is_file():
        return None
    try:
        found = unpack(path, per_token_keys)
        problem = check(found, per_token_keys, lengths)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        problem = f"unreadable ({type(err).__name__}: {err})"
    if problem is None:
        return found
    log(f"note: stored teacher outputs {path} are damaged ({problem}): labelling again and replacing them")
    return None


def save(name: str, outputs, per_token_keys: Optional[tuple], lengths: list[int]) -> None:
    root = store_root()
    root.mkdir(parents=True, exist_ok=True)
    write_bytes(root / f"{name}.npz", pack(outputs, per_token_keys, lengths))
