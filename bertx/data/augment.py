"""Augmented transfer sets for distillation (Tang et al., 2019): variants of each training text that the
teacher then labels, so a small student sees many more of the teacher's decisions than there are labels.

Per variant, word by word: with probability `p_mask` the word becomes the mask token; else with
probability `p_replace` it becomes a random word of the same class from the training vocabulary (Tang et
al. use the same part of speech; with no tagger here, the class is the word's shape: lower-case,
capitalised, upper-case, digits or punctuation). Then, with probability `p_ngram`, only an n-gram of the
result is kept (n uniform in 1..5). Everything is a pure function of (seed, example index, variant), so a
resumed or repeated run sees the same transfer set.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence


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


def variant(words: list[str], rng: random.Random, classes: dict[str, list[str]], mask_token: str,
            p_mask: float, p_replace: float, p_ngram: float, max_ngram: int = 5) -> list[str]:
    out = []
    for word in words:
        roll = rng.random()
        if roll < p_mask:
            out.append(mask_token)
        elif roll < p_mask + p_replace and classes.get(shape(word)):
            out.append(rng.choice(classes[shape(word)]))
        else:
            out.append(word)
    if len(out) > 1 and rng.random() < p_ngram:
        n = rng.randint(1, min(max_ngram, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start:start + n]
    return out


def augment(texts: Sequence[str], pairs: Optional[Sequence[Optional[str]]], n: int, seed: int, mask_token: str,
            p_mask: float = 0.1, p_replace: float = 0.1, p_ngram: float = 0.25) -> tuple[list[str], Optional[list[str]]]:
    """`n` variants of every text (and of its pair, independently), in example order.

    Returns:
        (texts, pairs or None), `n * len(texts)` of each.
    """
    classes = word_classes(list(texts) + [p for p in (pairs or []) if p])
    new_texts: list[str] = []
    new_pairs: Optional[list[str]] = [] if pairs is not None else None
    for i, text in enumerate(texts):
        for k in range(n):
            rng = random.Random(f"{seed}:{i}:{k}")  # one stream per (example, variant): order-independent
            new_texts.append(" ".join(variant(text.split(), rng, classes, mask_token, p_mask, p_replace, p_ngram)) or text)
            if new_pairs is not None:
                pair = pairs[i] or ""
                new_pairs.append(" ".join(variant(pair.split(), rng, classes, mask_token, p_mask, p_replace, p_ngram)) or pair)
    return new_texts, new_pairs
