"""Augmented transfer sets for distillation (Tang et al., 2019): variants of each training text that the
teacher then labels, so a small student sees many more of the teacher's decisions than there are labels.

Per variant, word by word: with probability `p_mask` the word becomes the mask token; else with
probability `p_replace` it is replaced. Tang et al. replace a word by a random word of the same part of
speech. With no tagger here, there are two rules:
- `shape`: a random training-vocabulary word of the same shape (lower-case, capitalised, upper-case,
  digits or punctuation);
- `neighbours`: one of the word's nearest neighbours among the training vocabulary in the teacher's own
  word-embedding space (`neighbours()`), which keeps most of a word's part of speech and sense; words
  without neighbours (several word pieces) fall back to `shape`.
Then, with probability `p_ngram`, only an n-gram of the result is kept (n uniform in 1..5). Everything is a
pure function of (seed, example index, variant), so a resumed or repeated run sees the same transfer set.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

import numpy as np


def shape(word: str) -> str:
    if word.isdigit():
        return "digits"
    if not any(c.isalnum() for c in word):
        return "punct"
    if word.isupper() and len(word) > 1:
        return "upper"
    return "capitalised" if word[:1].isupper() else "lower"


def word_classes(texts: Sequence[str]) -> dict[str, list[str]]:
    """The training vocabulary grouped by word shape (sorted, so the grouping is deterministic)."""
    classes: dict[str, set[str]] = {}
    for text in texts:
        for word in text.split():
            classes.setdefault(shape(word), set()).add(word)
    return {name: sorted(words) for name, words in classes.items()}


def neighbours(texts: Sequence[str], tokenizer, embeddings: np.ndarray, k: int = 8, block: int = 2048) -> dict[str, list[str]]:
    """For each training word that is one piece of the teacher's vocabulary: its `k` nearest training words
    (also single pieces) by cosine similarity of the teacher's input embeddings (`embeddings`: V x d).
    Sorted inputs and a stable top-k make the table deterministic."""
    lower = bool(getattr(tokenizer, "do_lower_case", False) or tokenizer.init_kwargs.get("do_lower_case", False))
    vocab = tokenizer.get_vocab()
    words = sorted({w for text in texts for w in text.split()})
    ids, kept = [], []
    for word in words:
        piece = word.lower() if lower else word
        if piece in vocab and any(c.isalpha() for c in word):
            ids.append(vocab[piece])
            kept.append(word)
    if len(kept) < 2:
        return {}
    vectors = np.asarray(embeddings, dtype=np.float32)[ids]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
    k = min(k, len(kept) - 1)
    table = {}
    for start in range(0, len(kept), block):
        scores = vectors[start : start + block] @ vectors.T  # (B, W)
        rows = np.arange(scores.shape[0])
        scores[rows, start + rows] = -np.inf  # never the word itself
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # the k best, unordered
        for row, choice in enumerate(top):
            ranked = sorted(choice.tolist(), key=lambda j: (-scores[row, j], j))  # ties broken by index: deterministic
            table[kept[start + row]] = [kept[j] for j in ranked]
    return table


def variant(
    words: list[str],
    rng: random.Random,
    classes: dict[str, list[str]],
    mask_token: str,
    p_mask: float,
    p_replace: float,
    p_ngram: float,
    max_ngram: int = 5,
    near: Optional[dict[str, list[str]]] = None,
) -> list[str]:
    out = []
    for word in words:
        roll = rng.random()
        if roll < p_mask:
            out.append(mask_token)
        elif roll < p_mask + p_replace and near and near.get(word):
            out.append(rng.choice(near[word]))
        elif roll < p_mask + p_replace and classes.get(shape(word)):
            out.append(rng.choice(classes[shape(word)]))
        else:
            out.append(word)
    if len(out) > 1 and rng.random() < p_ngram:
        n = rng.randint(1, min(max_ngram, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start : start + n]
    return out


def augment(
    texts: Sequence[str],
    pairs: Optional[Sequence[Optional[str]]],
    n: int,
    seed: int,
    mask_token: str,
    p_mask: float = 0.1,
    p_replace: float = 0.1,
    p_ngram: float = 0.25,
    near: Optional[dict[str, list[str]]] = None,
) -> tuple[list[str], Optional[list[str]]]:
    """`n` variants of every text (and of its pair, independently), in example order; `near`: the
    `neighbours()` table, for the neighbour replacement rule (None: the shape rule).

    Returns:
        (texts, pairs or None), `n * len(texts)` of each.
    """
    classes = word_classes(list(texts) + [p for p in (pairs or []) if p])
    new_texts: list[str] = []
    new_pairs: Optional[list[str]] = [] if pairs is not None else None
    for i, text in enumerate(texts):
        for k in range(n):
            rng = random.Random(f"{seed}:{i}:{k}")  # one stream per (example, variant): order-independent
            new_texts.append(" ".join(variant(text.split(), rng, classes, mask_token, p_mask, p_replace, p_ngram, near=near)) or text)
            if new_pairs is not None:
                pair = pairs[i] or ""
                new_pairs.append(" ".join(variant(pair.split(), rng, classes, mask_token, p_mask, p_replace, p_ngram, near=near)) or pair)
    return new_texts, new_pairs
