"""The one training loop every recipe runs: optimizer steps over epochs of batches, resumable at any step.

A recipe gives its phases as a `Loop` (the batches of an epoch, one optimizer step over one batch, a dev
evaluation and what to do with its metrics) and `fit` owns the skeleton around them:

- a step closes through `Run.end_step` (clipping, scheduler, counters, the bar, the log line) and
  `Run.after_step` (periodic checkpoint, a stop signal);
- an evaluation runs when `eval_steps` says so, at the end of every epoch (unless the loop says otherwise),
  and once more when the run ends mid-epoch (`max_steps`, fractional epochs) — never twice for one step;
- early stopping (a patience reached in `Run.keep_best`) ends the loop; a run that keeps no best
  (pretraining, few-shot's contrastive stage) never sets it;
- the wall time and the examples and tokens seen by this process since it started or resumed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from tqdm.auto import tqdm

from bertx.data.batching import bucketed_batches, micro_batches, shard


@dataclass
class Step:
    """What one optimizer step reports: its loss (the sum of its weighted micro-batch losses), what it consumed,
    and the recipe's own fields for the progress bar (`shown`) and the log line (`logged`, called when due)."""

    loss: float
    examples: int
    tokens: int = 0
    shown: Optional[dict] = None
    logged: Optional[Callable[[], dict]] = None


@dataclass
class Loop:
    model: Any  # what the optimizer steps (the model, the distiller, the pretraining objective)
    optimizer: Any
    scheduler: Any
    total_steps: int
    epoch_batches: Callable[[int], Sequence]  # epoch -> its batches in order (the same again on a resume)
    step: Callable[[Any], Step]  # one optimizer step over one batch: forward and backward of its micro-batches
    evaluate: Optional[Callable[[], dict]] = None  # a dev evaluation; None: the run has no dev set
    record: Optional[Callable[[dict], Any]] = None  # what the recipe does with an evaluation's metrics
    evaluate_each_epoch: bool = True  # pretraining evaluates on `eval_steps` and at the end only
    on_new_epoch: Optional[Callable[[int], None]] = None  # before the epoch's batches are drawn (its number)
    show_progress: bool = False


@dataclass
class Fitted:
    wall_s: float
    examples: int  # seen by this process since it started or resumed
    tokens: int

    @property
    def examples_per_s(self) -> float:
        return self.examples / max(self.wall_s, 1e-9)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.wall_s, 1e-9)


def fit(run, loop: Loop, started: Optional[float] = None) -> Fitted:
    """Train until `loop.total_steps` (or early stopping); `started`: when the wall time begins (default now;
    fine-tuning counts its probe head's fitting too)."""
    progress = run.state
    started = time.perf_counter() if started is None else started
    examples_before, tokens_before = progress.examples_seen, progress.tokens_seen
    bar = tqdm(total=loop.total_steps, initial=progress.step, disable=not loop.show_progress, unit="step", dynamic_ncols=True)

    def running() -> bool:
        return progress.step < loop.total_steps and not progress.stopped_early

    def evaluate() -> None:
        if loop.evaluate is not None and progress.last_eval_step != progress.step:
            metrics = loop.evaluate()
            if loop.record is not None:
                loop.record(metrics)

    loop.model.train()
    while running():
        batches = loop.epoch_batches(progress.epoch)
        while progress.batch_in_epoch < len(batches) and running():
            done = loop.step(batches[progress.batch_in_epoch])
            due = run.end_step(
                loop.model,
                loop.optimizer,
                loop.scheduler,
                bar,
                done.loss,
                done.examples,
                tokens=done.tokens,
                shown=done.shown,
                logged=done.logged,
            )
            if due:
                evaluate()
            run.after_step()
        if progress.batch_in_epoch >= len(batches):  # a whole epoch is done
            progress.epoch += 1
            progress.batch_in_epoch = 0
            if loop.on_new_epoch is not None:
                loop.on_new_epoch(progress.epoch)
            if loop.evaluate_each_epoch:
                evaluate()
    if not progress.stopped_early:
        evaluate()  # a run that ended mid-epoch (max_steps, fractional epochs)
    bar.close()
    return Fitted(time.perf_counter() - started, progress.examples_seen - examples_before, progress.tokens_seen - tokens_before)


def micro_slices(run, indices, grad_accum: int):
    """This process's slice of a global batch in `grad_accum` micro-batches: (indices, share of the slice, whether
    it is the step's last micro-batch, the one whose backward all-reduces the gradients across processes)."""
    local = shard(indices, run.accelerator.process_index, run.accelerator.num_processes)
    parts = list(micro_batches(local, grad_accum))
    for k, part in enumerate(parts):
        yield part, len(part) / len(local), k == len(parts) - 1


def labelled_loop(run, modules: tuple, total_steps: int, lengths, step: Callable, evaluate: Optional[Callable], metric: str, show: bool) -> Loop:
    """The loop of a run over labelled examples (fine-tuning, distillation): length-bucketed batches reshuffled
    each epoch, and every evaluation recorded against `metric` (the best model kept, early stopping)."""
    model, optimizer, scheduler = modules
    cfg = run.settings

    return Loop(
        model,
        optimizer,
        scheduler,
        total_steps,
        epoch_batches=lambda epoch: bucketed_batches(lengths, cfg.batch_size, cfg.seed, epoch, cfg.bucket_size),
        step=step,
        evaluate=evaluate,
        record=lambda metrics: run.record_eval(metrics, metric, show),
        show_progress=show,
    )
