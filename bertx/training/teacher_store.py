"""The teacher's outputs kept on disk by content, so a transfer set is labelled once for every student.

    key = sha256(the teacher's weights and config, how it ran (fp32, bf16, an export), the head's kind,
                 every example's token ids)
    -> BERTX_CACHE/teacher-outputs/KEY.npz: `rows` (N, C) for sequence heads; per-token heads: each
       output concatenated over the examples, plus `lengths`

Another student kind, a rerun, or `bertx plan` trying a second student on the same transfer set finds the
outputs instead of running the teacher again. A changed teacher or a changed text is a new key, never a
stale hit. Files are written atomically; a damaged one is ignored and written again.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Optional

import numpy as np

from bertx.data.features import Features
from bertx.runfolder import file_digest, write_bytes

WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".bin")


def store_root() -> Path:
    return Path(os.environ.get("BERTX_CACHE", Path.home() / ".cache" / "bertx")) / "teacher-outputs"


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


def pack(outputs, per_token_keys: Optional[tuple], lengths: list[int]) -> bytes:
    """Outputs as NumPy bytes (no pickle): `rows` (N, C), or per-token arrays concatenated plus `lengths`."""
    buffer = io.BytesIO()
    if per_token_keys is None:
        np.savez(buffer, rows=outputs)
    else:
        np.savez(buffer, lengths=np.asarray(lengths), **{k: np.concatenate(outputs[k]) for k in per_token_keys})
    return buffer.getvalue()


def unpack(data, per_token_keys: Optional[tuple]):
    """`pack`'s outputs back: the (N, C) array, or per key one (T_i, ...) array per example."""
    with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as stored:
        if per_token_keys is None:
            return stored["rows"]
        ends = np.cumsum(stored["lengths"])[:-1]
        return {k: list(np.split(stored[k], ends)) for k in per_token_keys}


def load(name: str, per_token_keys: Optional[tuple]):
    path = store_root() / f"{name}.npz"
    if not path.is_file():
        return None
    try:
        return unpack(path, per_token_keys)
    except (OSError, ValueError, KeyError):
        return None  # damaged or from another layout: label again, and replace it


def save(name: str, outputs, per_token_keys: Optional[tuple], lengths: list[int]) -> None:
    root = store_root()
    root.mkdir(parents=True, exist_ok=True)
    write_bytes(root / f"{name}.npz", pack(outputs, per_token_keys, lengths))
