"""The one training loop's rules, on a run that only counts: when it evaluates, how epochs roll over, and
what ends it. The recipes' own tests run it for real (fine-tuning, distillation, pretraining, few-shot,
multi-task)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bertx.training.fit import Loop, Step, fit


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    examples_seen: int = 0
    tokens_seen: int = 0
    last_eval_step: int = -1
    stopped_early: bool = False


class CountingRun:
    def __init__(self, eval_steps: int, stop_after_evals: int | None = None):
        self.state, self.eval_steps, self.stop_after = Progress(), eval_steps, stop_after_evals
        self.evaluated: list[int] = []

    def end_step(self, model, optimizer, scheduler, bar, loss, examples, tokens=0, shown=None, logged=None) -> bool:
        self.state.step += 1
        self.state.batch_in_epoch += 1
        self.state.examples_seen += examples
        return self.state.step % self.eval_steps == 0

    def after_step(self) -> None:
        pass

    def record(self, metrics: dict) -> None:
        self.evaluated.append(self.state.step)
        self.state.last_eval_step = self.state.step
        if self.stop_after is not None and len(self.evaluated) >= self.stop_after:
            self.state.stopped_early = True


class Model:
    def train(self):
        return self


def loop_for(run: CountingRun, total_steps: int, per_epoch: int, **options) -> Loop:
    return Loop(
        Model(),
        None,
        None,
        total_steps,
        epoch_batches=lambda epoch: [[epoch, b] for b in range(per_epoch)],
        step=lambda batch: Step(loss=0.5, examples=4),
        evaluate=lambda: {"accuracy": 0.5},
        record=run.record,
        **options,
    )


@pytest.mark.parametrize(
    "total, per_epoch, eval_steps, expected",
    [
        (10, 4, 3, [3, 4, 6, 8, 9, 10]),  # due steps, each epoch's end, and the mid-epoch end; 9 is due, 8 an epoch end
        (8, 4, 4, [4, 8]),  # an epoch end that is also due: one evaluation, not two
        (6, 4, 100, [4, 6]),  # no due step: the epoch end, then the run's end mid-epoch
    ],
)
def test_a_run_is_evaluated_when_due_at_each_epoch_end_and_once_at_its_end(total, per_epoch, eval_steps, expected):
    run = CountingRun(eval_steps)
    fitted = fit(run, loop_for(run, total, per_epoch))
    assert run.evaluated == expected
    assert run.state.step == total and fitted.examples == 4 * total


def test_a_loop_without_epoch_evaluations_evaluates_when_due_and_at_its_end():
    run = CountingRun(eval_steps=5)
    fit(run, loop_for(run, 12, 4, evaluate_each_epoch=False))
    assert run.evaluated == [5, 10, 12]


def test_early_stopping_ends_the_loop_and_skips_the_final_evaluation():
    run = CountingRun(eval_steps=2, stop_after_evals=2)
    fit(run, loop_for(run, 20, 4))
    assert run.evaluated == [2, 4] and run.state.step == 4


def test_a_resumed_run_continues_mid_epoch_with_the_same_batches():
    seen: list = []
    run = CountingRun(eval_steps=100)
    run.state.step, run.state.epoch, run.state.batch_in_epoch = 5, 1, 1  # resumed after 4 + 1 batches of 4
    loop = loop_for(run, 9, 4)
    loop.step = lambda batch: seen.append(tuple(batch)) or Step(loss=0.5, examples=4)
    fit(run, loop)
    assert seen == [(1, 1), (1, 2), (1, 3), (2, 0)] and run.state.epoch == 2
