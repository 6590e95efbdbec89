"""Which task the next batch of a multi-task run comes from.

Each strategy is a rule for the probability of each task at a point of the run (`fraction` of the
steps done); the draw itself is a pure function of (seed, draw number), so a resumed run draws the same
tasks as an uninterrupted one and every process agrees without talking.

    proportional  p_t ∝ n_t                  every example is seen about equally often (big tasks dominate)
    temperature   p_t ∝ n_t^(1/T)            T > 1 flattens toward uniform, lifting small tasks
    uniform       p_t = 1/K                  small tasks are repeated many times
    annealed      p_t ∝ n_t^(1 - 0.8 f)      proportional at the start, nearly uniform at the end
                                             (Stickland & Murray, 2019)
    round-robin   tasks in turn, no randomness
"""

from __future__ import annotations

import numpy as np

from bertx.errors import BertxError

STRATEGIES = ("proportional", "temperature", "uniform", "round-robin", "annealed")


class TaskSampler:
    def __init__(self, sizes: list[int], strategy: str = "proportional", temperature: float = 2.0, seed: int = 0):
        if strategy not in STRATEGIES:
            raise BertxError(f"unknown task sampling strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if temperature <= 0:
            raise BertxError(f"sampling temperature must be > 0, got {temperature}")
        if not sizes or min(sizes) <= 0:
            raise BertxError(f"every task needs training examples (sizes: {sizes})")
        self.sizes = np.asarray(sizes, dtype=np.float64)
        self.strategy, self.temperature, self.seed = strategy, temperature, seed

    def probabilities(self, fraction: float = 0.0) -> np.ndarray:
        """Chance of each task for a batch drawn when `fraction` (0..1) of the run is done."""
        exponent = {
            "proportional": 1.0,
            "temperature": 1.0 / self.temperature,
            "uniform": 0.0,
            "round-robin": 0.0,  # in expectation
            "annealed": 1.0 - 0.8 * min(max(fraction, 0.0), 1.0),
        }[self.strategy]
        # Relative sizes first, so large tasks to a large power cannot overflow.
        weights = (self.sizes / self.sizes.max()) ** exponent
        return weights / weights.sum()

    def pick(self, draw: int, fraction: float = 0.0) -> int:
        """The task index of draw number `draw` (0, 1, 2, ... over the whole run)."""
        if self.strategy == "round-robin":
            return draw % len(self.sizes)
        rng = np.random.default_rng([self.seed, draw])
        return int(rng.choice(len(self.sizes), p=self.probabilities(fraction)))
