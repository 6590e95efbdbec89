"""A tokenised corpus on disk, memory-mapped: text is tokenised once, then streamed at any size.

Layout of a cache folder (all little-endian, no special tokens stored):
    tokens.bin      every sentence's token ids, concatenated (uint16 when the vocabulary fits, else uint32)
    sentences.bin   int64 start offset of each sentence in tokens.bin, then the total (n_sentences + 1)
    documents.bin   int64 index of each document's first sentence, then n_sentences (n_documents + 1)
    meta.json       sources, tokenizer fingerprint, counts; written last, so a half-built cache is never used

Building appends fixed-size chunks to the files, and reading maps them (`np.memmap`): memory stays
flat however large the corpus. The folder name is a hash of the files (path, size, mtime), the
document mode and the tokenizer, so a changed file or tokenizer builds a new cache and an unchanged
one is reused across runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertx.data.text_corpus import DocumentMode, read_documents
from bertx.errors import BertxError
from bertx.runfolder import cache_folder
from bertx.console import say

FORMAT = 1
CHUNK_SENTENCES = 4096
REPORT_EVERY = 10_000_000  # tokens between progress lines while tokenising


def default_cache_root() -> Path:
    return cache_folder("corpus")


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the full tokenizer pipeline (normaliser, pre-tokeniser, vocabulary)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()[:16]


def cache_key(paths: list[str], mode: str | list[str], tokenizer) -> str:
    modes = [mode] * len(paths) if isinstance(mode, str) else list(mode)
    # One file, or several read alike, keeps the key caches were built under before per-file modes.
    shown = modes[0] if len(set(modes)) <= 1 and len(paths) <= 1 else "per-file:" + ",".join(modes)
    parts = [f"format={FORMAT}", f"mode={shown}", f"tokenizer={tokenizer_fingerprint(tokenizer)}"]
    for path in paths:
        stat = Path(path).stat()
        parts.append(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:20]


@dataclass
class TokenCache:
    """Read-only views of a built cache."""

    folder: Path
    tokens: np.ndarray  # (n_tokens,) uint16/uint32 memmap
    sentences: np.ndarray  # (n_sentences + 1,) int64 memmap: sentence i is tokens[sentences[i]:sentences[i+1]]
    documents: np.ndarray  # (n_documents + 1,) int64 memmap: document d is sentences documents[d]..documents[d+1]
    meta: dict

    @property
    def n_documents(self) -> int:
        return len(self.documents) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.sentences[-1])

    def file_ranges(self) -> list[tuple[int, int]]:
        """[first, end) document range of each source file, in order."""
        ends = self.meta.get("file_documents", [self.n_documents])
        return [(start, end) for start, end in zip([0, *ends[:-1]], ends)]

    def document_tokens(self, first_doc: int, end_doc: int) -> tuple[int, int]:
        """Token range [start, end) covered by documents first_doc..end_doc-1."""
        return int(self.sentences[self.documents[first_doc]]), int(self.sentences[self.documents[end_doc]])


def open_cache(folder: Path) -> TokenCache:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    dtype = np.dtype(meta["dtype"])

    def view(name: str, kind) -> np.ndarray:
        path = folder / name
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=kind)
        return np.memmap(path, dtype=kind, mode="r")

    return TokenCache(folder, view("tokens.bin", dtype), view("sentences.bin", np.int64), view("documents.bin", np.int64), meta)


def build_cache(
    paths: list[str], tokenizer, mode: DocumentMode | list[DocumentMode] = "blank", root: str | Path | None = None, show_progress: bool = True
) -> TokenCache:
    """Tokenise text files into a memory-mapped cache, or reuse the one already built for them.

    Args:
        paths: plain-text files, read in order.
        tokenizer: a fast HF tokenizer (the model's).
        mode: how documents are delimited (see `bertx.data.text_corpus`), for all files or one per file.
        root: folder that holds caches; default `$BERTX_CACHE/corpus` or `~/.cache/bertx/corpus`.
        show_progress: print a progress line per chunk on big corpora.

    Returns:
        The opened cache.
    """
    for path in paths:
        if not Path(path).is_file():
            raise BertxError(f"{path}: text file not found")
    root = Path(root) if root else default_cache_root()
    folder = root / cache_key(paths, mode, tokenizer)
    if (folder / "meta.json").is_file():
        return open_cache(folder)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.uint32
    n_tokens = n_sentences = n_documents = 0
    next_report = REPORT_EVERY
    with open(tmp / "tokens.bin", "wb") as tokens, open(tmp / "sentences.bin", "wb") as sentences, open(tmp / "documents.bin", "wb") as documents:
        pending: list[str] = []  # sentences waiting to be tokenised in one batch
        pending_docs: list[int] = []  # how many of them each pending document has

        def flush() -> None:
            nonlocal n_tokens, n_sentences, n_documents, next_report
            if not pending:
                return
            ids = tokenizer(pending, add_special_tokens=False)["input_ids"]
            cursor = 0
            starts, doc_starts, flat = [], [], []
            for count in pending_docs:
                kept = [s for s in ids[cursor : cursor + count] if s]  # a sentence that tokenises to nothing is dropped
                cursor += count
                if not kept:
                    continue
                doc_starts.append(n_sentences)
                for sentence in kept:
                    starts.append(n_tokens)
                    flat.extend(sentence)
                    n_tokens += len(sentence)
                    n_sentences += 1
                n_documents += 1
            tokens.write(np.asarray(flat, dtype=dtype).tobytes())
            sentences.write(np.asarray(starts, dtype=np.int64).tobytes())
            documents.write(np.asarray(doc_starts, dtype=np.int64).tobytes())
            pending.clear()
            pending_docs.clear()
            if show_progress and n_tokens >= next_report:
                say(f"tokenising {', '.join(paths)}: {n_tokens:,} tokens so far")
                next_report += REPORT_EVERY

        file_documents = []  # documents after each file: the files' ranges (bilingual sampling, per-language eval)
        for path, file_mode in zip(paths, [mode] * len(paths) if isinstance(mode, str) else mode):
            for document in read_documents([path], file_mode):
                pending.extend(document)
                pending_docs.append(len(document))
                if len(pending) >= CHUNK_SENTENCES:
                    flush()
            flush()
            file_documents.append(n_documents)
        sentences.write(np.asarray([n_tokens], dtype=np.int64).tobytes())
        documents.write(np.asarray([n_sentences], dtype=np.int64).tobytes())
    meta = {
        "format": FORMAT,
        "sources": [str(Path(p).resolve()) for p in paths],
        "mode": mode,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "dtype": np.dtype(dtype).name,
        "tokens": n_tokens,
        "sentences": n_sentences,
        "documents": n_documents,
        "file_documents": file_documents,
    }
    if n_tokens == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BertxError(f"{', '.join(paths)}: no tokens after tokenisation")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    if folder.exists():  # another process finished the same cache meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return open_cache(folder)
