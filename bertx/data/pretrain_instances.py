"""Pretraining sequences from a token cache: packed blocks (MLM alone) or sentence pairs (MLM + NSP/SOP).

An instance is one row `(a_start, a_end, b_start, b_end, label)` of token offsets into the cache;
segment B is empty (`b_start == b_end`) and `label == -100` for MLM alone. Rows are tiny, so an
epoch's instances fit in memory for corpora of billions of tokens, while the tokens stay on disk.

- MLM alone: the token stream is cut into full blocks of `max_length - 2` tokens (no padding at all),
  starting at a random offset each epoch so block boundaries move between epochs.
- Pairs (BERT's recipe): sentences of a document are gathered until a target length (shorter with
  probability `short_seq_prob`, so the model also sees short inputs), split at a random sentence
  boundary into A and B. NSP: half the time B is replaced by text from another document (label 1,
  "random"), and the unused sentences go back into the pool. SOP: half the time A and B swap (label 1).
  A sentence longer than the window is cut into window-sized pieces and counted.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bertx.data.token_cache import TokenCache

SentenceTask = Literal["none", "nsp", "sop"]
FIELDS = 5  # a_start, a_end, b_start, b_end, label


def packed_blocks(start: int, end: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Full blocks of `block` tokens covering [start, end), from a random offset, in random order."""
    if end - start <= block:
        return np.array([[start, end, end, end, -100]], dtype=np.int64)
    offset = int(rng.integers(0, block)) if end - start >= 2 * block else 0
    starts = np.arange(start + offset, end - block + 1, block, dtype=np.int64)
    rng.shuffle(starts)
    rows = np.empty((len(starts), FIELDS), dtype=np.int64)
    rows[:, 0], rows[:, 1] = starts, starts + block
    rows[:, 2] = rows[:, 3] = starts + block
    rows[:, 4] = -100
    return rows


def _trim(a: list[int], b: list[int], target: int, rng: np.random.Generator) -> None:
    """Shorten the longer segment (from a random side) until the pair fits `target` tokens."""
    while (a[1] - a[0]) + (b[1] - b[0]) > target:
        longer = a if a[1] - a[0] >= b[1] - b[0] else b
        excess = (a[1] - a[0]) + (b[1] - b[0]) - target
        cut = max(1, min(excess, (longer[1] - longer[0]) // 2))
        if rng.random() < 0.5:
            longer[0] += cut
        else:
            longer[1] -= cut


def sentence_pairs(
    cache: TokenCache, first_doc: int, end_doc: int, target: int, task: SentenceTask, short_seq_prob: float, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Sentence-pair instances of documents first_doc..end_doc-1.

    Args:
        cache: the tokenised corpus.
        first_doc, end_doc: document range to draw from.
        target: most tokens of A + B (the window minus [CLS] and two [SEP]).
        task: "nsp" or "sop".
        short_seq_prob: chance that an instance aims at a random shorter length.
        rng: the epoch's generator.

    Returns:
        (instances, number of sentences longer than `target` that were cut into pieces).
    """
    rows: list[list[int]] = []
    long_sentences = 0
    n_docs = end_doc - first_doc
    for doc in range(first_doc, end_doc):
        offsets = cache.sentences[cache.documents[doc] : cache.documents[doc + 1] + 1].tolist()
        segments: list[tuple[int, int]] = []
        for start, end in zip(offsets[:-1], offsets[1:]):
            if end - start > target:
                long_sentences += 1
            while end - start > target:
                segments.append((start, start + target))
                start += target
            segments.append((start, end))

        def new_target() -> int:
            return target if rng.random() >= short_seq_prob else int(rng.integers(2, target + 1))

        goal, chunk, length, i = new_target(), [], 0, 0
        while i < len(segments):
            chunk.append(segments[i])
            length += segments[i][1] - segments[i][0]
            if i == len(segments) - 1 or length >= goal:
                if len(chunk) >= 2:
                    k = int(rng.integers(1, len(chunk)))
                    a, b = [chunk[0][0], chunk[k - 1][1]], [chunk[k][0], chunk[-1][1]]
                elif length >= 2:  # one sentence: cut it in two
                    cut = chunk[0][0] + int(rng.integers(1, length))
                    a, b, k = [chunk[0][0], cut], [cut, chunk[0][1]], 1
                else:
                    a = None
                if a is not None:
                    label = 0
                    if task == "nsp" and n_docs > 1 and rng.random() < 0.5:
                        other = first_doc + int(rng.integers(0, n_docs - 1))
                        other += other >= doc  # any document but this one
                        s_first, s_end = int(cache.documents[other]), int(cache.documents[other + 1])
                        start = int(cache.sentences[int(rng.integers(s_first, s_end))])
                        doc_end = int(cache.sentences[s_end])
                        want = max(1, target - (a[1] - a[0]))
                        b, label = [start, min(doc_end, start + want)], 1
                        i -= len(chunk) - k  # the sentences B would have used go back into the pool
                    elif task == "sop" and rng.random() < 0.5:
                        a, b, label = b, a, 1
                    _trim(a, b, target, rng)
                    rows.append([a[0], a[1], b[0], b[1], label])
                goal, chunk, length = new_target(), [], 0
            i += 1
    instances = np.asarray(rows, dtype=np.int64).reshape(-1, FIELDS)
    rng.shuffle(instances)
    return instances, long_sentences


def build_instances(
    cache: TokenCache, first_doc: int, end_doc: int, max_length: int, task: SentenceTask, seed: int, epoch: int, short_seq_prob: float = 0.1
) -> tuple[np.ndarray, int]:
    """One epoch's instances; a pure function of (seed, epoch), so a resumed run sees the same ones."""
    rng = np.random.default_rng([seed, epoch])
    if task == "none":
        start, end = cache.document_tokens(first_doc, end_doc)
        return packed_blocks(start, end, max_length - 2, rng), 0
    return sentence_pairs(cache, first_doc, end_doc, max_length - 3, task, short_seq_prob, rng)


def mixed_instances(
    cache: TokenCache,
    ranges: list[tuple[int, int]],
    weights: list[float],
    max_length: int,
    task: SentenceTask,
    seed: int,
    epoch: int,
    short_seq_prob: float = 0.1,
) -> tuple[np.ndarray, int, list[int]]:
    """One epoch's instances from several document ranges (one per file or language), each range's share
    scaled by its weight: 2 repeats every instance, 0.5 keeps a seeded half. Instances never cross
    ranges, so a block is one language. One range of weight 1 gives `build_instances` unchanged.

    Returns:
        (instances shuffled together, sentences cut for length, instances drawn per range).
    """
    if len(ranges) == 1 and weights[0] == 1.0:
        instances, cut = build_instances(cache, *ranges[0], max_length, task, seed, epoch, short_seq_prob)
        return instances, cut, [len(instances)]
    rng = np.random.default_rng([seed, epoch, len(ranges)])
    parts, cut, counts = [], 0, []
    for index, ((first, end), weight) in enumerate(zip(ranges, weights)):
        if end <= first:
            counts.append(0)
            continue
        found, long_ = build_instances(cache, first, end, max_length, task, seed + 7919 * index, epoch, short_seq_prob)
        cut += long_
        whole, fraction = int(weight), weight - int(weight)
        chosen = [found] * whole
        if fraction > 0 and len(found):
            chosen.append(found[np.sort(rng.choice(len(found), int(round(fraction * len(found))), replace=False))])
        taken = np.concatenate(chosen) if chosen else found[:0]
        counts.append(len(taken))
        parts.append(taken)
    instances = np.concatenate(parts) if parts else np.zeros((0, 5), dtype=np.int64)
    return instances[rng.permutation(len(instances))], cut, counts
