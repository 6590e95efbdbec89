"""Few-shot data: K examples per class drawn with the seed, and the sentence pairs the contrastive stage
learns from (SetFit's recipe: for every example, in each of R rounds, one partner of its own class, a
positive pair, and one of another class, a negative pair).

Everything here is a function of (labels, K, rounds, seed): the same command draws the same examples
and the same pairs, which is what lets a K x seed study be one command per cell.
"""

from __future__ import annotations

import random
from collections import defaultdict

from bertx.errors import BertxError


def by_class(labels: list[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[label].append(i)
    return dict(sorted(groups.items()))


def sample_per_class(labels: list[int], shots: int, seed: int, names: list[str], source: str) -> list[int]:
    """`shots` indices of each class, drawn without replacement with `seed`, in file order."""
    rng = random.Random(seed)
    chosen = []
    for label, members in by_class(labels).items():
        if len(members) < shots:
            raise BertxError(f"{source}: --shots {shots} but class {names[label]!r} has only {len(members)} examples")
        chosen += rng.sample(members, shots)
    return sorted(chosen)


def contrastive_pairs(labels: list[int], rounds: int, seed: int, names: list[str], source: str) -> list[tuple[int, int, float]]:
    """(i, j, target) pairs: target 1.0 for the same class, 0.0 for different classes; never (i, i)."""
    groups = by_class(labels)
    if len(groups) < 2:
        raise BertxError(f"{source}: few-shot training needs at least two classes (found {len(groups)})")
    for label, members in groups.items():
        if len(members) < 2:
            raise BertxError(f"{source}: class {names[label]!r} has one example; a positive pair needs two per class")
    rng = random.Random(seed)
    pairs = []
    for _ in range(rounds):
        for i, label in enumerate(labels):
            same = groups[label]
            j = i
            while j == i:
                j = rng.choice(same)
            other = rng.choice([c for c in groups if c != label])
            pairs.append((i, j, 1.0))
            pairs.append((i, rng.choice(groups[other]), 0.0))
    rng.shuffle(pairs)
    return pairs
