"""Task samplers: each strategy's probabilities by hand, deterministic draws, and what they refuse."""

import numpy as np
import pytest

from bertx.data.task_sampling import TaskSampler
from bertx.errors import BertxError

SIZES = [100, 400, 1500]


def test_probabilities_of_each_strategy():
    sizes = np.array(SIZES, dtype=float)
    assert TaskSampler(SIZES, "proportional").probabilities() == pytest.approx(sizes / sizes.sum())
    root = np.sqrt(sizes)
    assert TaskSampler(SIZES, "temperature", temperature=2).probabilities() == pytest.approx(root / root.sum())
    assert TaskSampler(SIZES, "temperature", temperature=1).probabilities() == pytest.approx(sizes / sizes.sum())
    assert TaskSampler(SIZES, "uniform").probabilities() == pytest.approx([1 / 3] * 3)
    annealed = TaskSampler(SIZES, "annealed")
    assert annealed.probabilities(0.0) == pytest.approx(sizes / sizes.sum())
    assert annealed.probabilities(1.0) == pytest.approx(sizes**0.2 / (sizes**0.2).sum())
    # Annealing lifts the smallest task monotonically.
    smallest = [annealed.probabilities(f)[0] for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert smallest == sorted(smallest) and smallest[0] < smallest[-1]


def test_draws_follow_the_probabilities_and_repeat_exactly():
    sampler = TaskSampler(SIZES, "temperature", temperature=2, seed=3)
    draws = [sampler.pick(i) for i in range(6000)]
    assert draws == [TaskSampler(SIZES, "temperature", temperature=2, seed=3).pick(i) for i in range(6000)]
    frequencies = np.bincount(draws, minlength=3) / len(draws)
    assert frequencies == pytest.approx(sampler.probabilities(), abs=0.02)
    assert draws != [TaskSampler(SIZES, "temperature", temperature=2, seed=4).pick(i) for i in range(6000)]


def test_round_robin_takes_tasks_in_turn():
    sampler = TaskSampler(SIZES, "round-robin")
    assert [sampler.pick(i) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_bad_settings_are_refused():
    with pytest.raises(BertxError, match="unknown task sampling strategy 'sometimes'"):
        TaskSampler(SIZES, "sometimes")
    with pytest.raises(BertxError, match="temperature must be > 0"):
        TaskSampler(SIZES, "temperature", temperature=0)
    with pytest.raises(BertxError, match="needs training examples"):
        TaskSampler([10, 0])
