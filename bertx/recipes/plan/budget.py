"""Spending a plan's budget: which optional stages run, and how long, chosen together.

Each optional stage offers options (run in full, run cheaper, skip), each with its estimated seconds and the
points it is expected to add to the shipped score. The plan takes the combination worth most that fits the
budget left beside the stages every plan needs, so dropping one stage frees its time for another (a greedy
trim in a fixed order never re-admits what it dropped: on a cold machine it once skipped both the sources
and the adaptation while its own total was 26 of 45 minutes).

The values are priors from the measured plans (docs/plan.md, "What each stage gained"): a teacher trained
with helpful sources gained 1-2 points, domain-adaptive masked LM about 1, a teacher shortened to half its
epochs lost about a third of its gain, and without the compress stage no model meets a latency target.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    """One way to run (or skip) a stage."""

    label: str
    seconds: float
    value: float
    settings: dict = field(default_factory=dict, hash=False, compare=False)
    runs: bool = True


def skipped(reason: str) -> Option:
    return Option("skip", 0.0, 0.0, {"reason": reason}, runs=False)


def best_schedule(choices: dict[str, list[Option]], fixed_s: float, budget_s: float) -> dict[str, Option]:
    """The option of each stage whose combination is worth most (ties: the cheaper) within `budget_s`, once
    `fixed_s` (the stages every plan runs) is reserved; when nothing fits, the cheapest combination."""
    names = list(choices)
    combos = [dict(zip(names, picked)) for picked in itertools.product(*(choices[n] for n in names))]
    cost = lambda combo: fixed_s + sum(o.seconds for o in combo.values())  # noqa: E731
    fitting = [c for c in combos if cost(c) <= budget_s]
    if not fitting:
        return min(combos, key=cost)
    return max(fitting, key=lambda c: (round(sum(o.value for o in c.values()), 6), -cost(c)))


def fractions_of(seconds_at, full: float, fractions=(1.0, 0.5, 0.25), floor: float = 0.0) -> list[tuple[float, float]]:
    """(amount, seconds) at each fraction of `full` (an amount of epochs or steps) not below `floor`."""
    found = []
    for fraction in fractions:
        amount = max(floor, full * fraction)
        if all(abs(amount - a) > 1e-9 for a, _ in found):
            found.append((amount, seconds_at(amount)))
    return found
