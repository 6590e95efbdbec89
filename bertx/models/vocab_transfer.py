"""Vocabulary transfer: give an encoder word pieces of a new language, initialised from what it already knows.

    new-language text --the model's own tokenizer, retrained (same normaliser and pre-tokeniser)--> candidate pieces
    candidates the model lacks --ranked by tokens saved on the text: frequency x (old pieces - 1)--> the N most useful
    each new piece --split by the *old* vocabulary (greedy longest match, `##` kept)--> old pieces
    embedding of the new piece = mean of the old pieces' embeddings (`mean`, Fast Vocabulary Transfer,
    Gee et al. 2022), or a fresh draw (`random`, the control)

Old ids and pieces never change: new pieces get ids after the old ones, so English text the new pieces
do not match tokenises exactly as before, and every fine-tuned head or cached corpus of the old
vocabulary stays valid. The embedding matrix and a masked-LM decoder tied to it grow together.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

import torch

from bertx.errors import BertxError

PREFIX = "##"


def old_split(piece: str, vocab: dict[str, int], unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    """How the old vocabulary spells a new piece: WordPiece's greedy longest match, a `##` piece
    continuing a word (its parts are all `##` pieces), a word-initial piece starting one."""
    continuing = piece.startswith(PREFIX)
    text = piece[len(PREFIX) :] if continuing else piece
    if len(text) > max_chars:
        return [unk]
    parts, start = [], 0
    while start < len(text):
        end = len(text)
        while end > start:
            candidate = (PREFIX if continuing or start > 0 else "") + text[start:end]
            if candidate in vocab:
                parts.append(candidate)
                break
            end -= 1
        if end == start:
            return [unk]
        start = end
    return parts


def words_and_pieces(tokenizer, texts: Iterable[str], batch: int = 1000) -> tuple[int, int, Counter]:
    """Words, pieces and the count of every piece of `texts` under `tokenizer` (special tokens left out)."""
    words = pieces = 0
    counts: Counter = Counter()
    chunk: list[str] = []

    def flush() -> None:
        nonlocal words, pieces
        for encoding in tokenizer(chunk, add_special_tokens=False)._encodings:
            words += len({w for w in encoding.word_ids if w is not None})
            pieces += len(encoding.ids)
            counts.update(encoding.tokens)
        chunk.clear()

    for text in texts:
        chunk.append(text)
        if len(chunk) >= batch:
            flush()
    if chunk:
        flush()
    return words, pieces, counts


def useful_pieces(old_vocab: dict[str, int], counts: Counter, n: int, special: set[str]) -> list[tuple[str, int]]:
    """The `n` pieces absent from `old_vocab` that save the most tokens on the text whose piece `counts`
    (under the retrained tokenizer) are given: count x (old pieces needed - 1). (piece, tokens saved)."""
    saved = []
    for piece, count in counts.items():
        if piece in old_vocab or piece in special:
            continue
        gain = count * (len(old_split(piece, old_vocab)) - 1)
        if gain > 0:
            saved.append((piece, gain))
    saved.sort(key=lambda item: (-item[1], item[0]))
    return saved[:n]


def extended_tokenizer_json(tokenizer, pieces: list[str]) -> str:
    """The fast tokenizer's JSON with `pieces` appended to its WordPiece vocabulary (ids after the old ones)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    model = state.get("model", {})
    if model.get("type") != "WordPiece":
        raise BertxError(f"vocab extend works on WordPiece tokenizers; this one is {model.get('type', 'unknown')}")
    vocab = model["vocab"]
    size = max(vocab.values()) + 1
    for offset, piece in enumerate(pieces):
        vocab[piece] = size + offset
    return json.dumps(state, ensure_ascii=False)


@torch.no_grad()
def grow_embeddings(model, old_vocab: dict[str, int], pieces: list[str], init: str, seed: int = 0) -> dict:
    """Append one embedding row per new piece (and a bias entry to a tied MLM decoder), initialised by
    `init` (mean | random). Returns how many pieces were spelt by known old pieces."""
    old_size = model.get_input_embeddings().weight.shape[0]
    if old_size < max(old_vocab.values()) + 1:
        raise BertxError(f"the embedding matrix has {old_size} rows but the tokenizer {max(old_vocab.values()) + 1} pieces")
    model.resize_token_embeddings(old_size + len(pieces), mean_resizing=False)
    weight = model.get_input_embeddings().weight
    decoder = model.get_output_embeddings()
    bias = getattr(decoder, "bias", None) if decoder is not None else None
    generator = torch.Generator().manual_seed(seed)
    std = float(getattr(model.config, "initializer_range", 0.02))
    spelt = 0
    for offset, piece in enumerate(pieces):
        row = old_size + offset
        parts = [old_vocab[p] for p in old_split(piece, old_vocab) if p in old_vocab]
        if init == "mean" and parts:
            weight[row] = weight[parts].mean(0)
            if bias is not None and bias.shape[0] > row:
                bias[row] = bias[parts].mean()
            spelt += 1
        else:
            weight[row] = torch.randn(weight.shape[1], generator=generator) * std
            if bias is not None and bias.shape[0] > row:
                bias[row] = 0.0
    return {"added": len(pieces), "initialised_from_old_pieces": spelt}


def aligned_rows(
    source_ids: list[list[int]], target_ids: list[list[int]], new_ids: list[int], old_size: int, excluded: set[int], top_k: int = 10
) -> dict[int, tuple[list[int], list[float]]]:
    """For each new piece, the old pieces it is translated by, from row-aligned sentence pairs: the `top_k`
    old ids of the source-language side with the highest Dice coefficient 2 c(new, old) / (c(new) + c(old))
    over pairs (c: in how many pairs a piece occurs), with the coefficients as weights. New pieces that
    never occur are left out (they keep the `mean` initialisation)."""
    import numpy as np
    from scipy import sparse

    def presence(rows: list[list[int]], keep) -> sparse.csr_matrix:
        indptr, indices = [0], []
        for ids in rows:
            unique = sorted({i for i in ids if keep(i)})
            indices.extend(unique)
            indptr.append(len(indices))
        return sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr))

    width = old_size + len(new_ids)
    old = presence(source_ids, lambda i: i < old_size and i not in excluded)
    new = presence(target_ids, lambda i: i >= old_size)
    old.resize((len(source_ids), width))
    new.resize((len(target_ids), width))
    together = (new.T @ old).tocsr()  # (width, width): rows new ids, columns old ids
    old_count = np.asarray(old.sum(0)).ravel()
    new_count = np.asarray(new.sum(0)).ravel()
    found = {}
    for piece in new_ids:
        row = together.getrow(piece)
        if row.nnz == 0:
            continue
        dice = 2 * row.data / (new_count[piece] + old_count[row.indices])
        best = np.argsort(-dice)[:top_k]
        found[piece] = ([int(row.indices[i]) for i in best], [float(dice[i]) for i in best])
    return found


@torch.no_grad()
def align_embeddings(model, rows: dict[int, tuple[list[int], list[float]]]) -> int:
    """Set each new piece's embedding to the Dice-weighted mean of its translations' embeddings."""
    weight = model.get_input_embeddings().weight
    for piece, (ids, weights) in rows.items():
        w = torch.tensor(weights, dtype=weight.dtype)
        weight[piece] = (weight[ids] * (w / w.sum())[:, None]).sum(0)
    return len(rows)
