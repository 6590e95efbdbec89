"""The life of a training run: one piece of code that every recipe uses, so each fault is handled once.

    with Run.open(out, run_config, accelerator, train_settings, resume, overwrite, reads) as run:
        ... read data ...
        run.write_config(run_config)                      # the resolved config, once the data is read
        state = run.start(model, optimizer, scheduler, save_model, **start_log)   # resume, or log the start
        while training:
            for each micro-batch:
                with run.micro_batch(model, last):        # autocast; gradients all-reduced on the last one only
                    loss = ... the recipe's forward and loss ...
                step_loss += run.backward(loss)
            due = run.end_step(model, optimizer, scheduler, bar, step_loss, examples)   # step, counters, bar, log
            if due:
                run.record_eval(metrics, metric_name)     # the best model, saved atomically; the eval log line
            run.after_step()                              # periodic checkpoint; a stop signal checkpoints and stops
        run.publish()                                     # the best (or final) model into the output root
        run.finish(final)                                 # metrics.json and the log's end line

What the run guarantees, whatever the recipe:
- one run per output folder (a lock with the owner's PID and host; a dead owner's lock is taken over);
- `--overwrite` deletes only a bertx run folder (or an empty one), never what the run reads;
- SIGTERM and Ctrl-C write a checkpoint at the next step boundary and stop with 143 / 130
  (`RunStopped`); a second Ctrl-C stops at once;
- checkpoints carry a manifest and `--resume` takes the newest intact one;
- a run that fails before its first checkpoint removes what it wrote, so the folder is free again;
- a loss that is NaN or infinite stops the run with one line before the step is taken.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator


from bertx import runfolder
from bertx.errors import EXIT_CODES, BertxError, RunStopped
from bertx.training import outputs
from bertx.training.best import record_evaluation
from bertx.training.checkpoint import checkpoints_in, restore_training_state, save_checkpoint
from bertx.training.optim import optimizer_step
from bertx.training.runlog import RunLog
from bertx.training.trackers import Trackers
from bertx.console import say


@dataclass
class RunState:
    """Where the run is: everything besides tensors that a resumed run needs."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # global batches of this epoch already consumed
    examples_seen: int = 0  # examples (pretraining: sequences) consumed
    tokens_seen: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict = field(default_factory=dict)
    evals_since_best: int = 0
    last_eval_step: int = -1
    stopped_early: bool = False
    extra: dict = field(default_factory=dict)  # a recipe's own counters (multi-task: task draws and cursors)

    @classmethod
    def from_dict(cls, saved: dict) -> "RunState":
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in known})
        state.extra.update({k: v for k, v in saved.items() if k not in known})
        return state


class _StopSignals:
    """SIGTERM / SIGINT handlers. Before training they stop at once; during it they only raise a flag,
    which the loop reads at the next step boundary. A second Ctrl-C always stops at once."""

    def __init__(self, output: Path):
        self.output = output
        self.received: int | None = None
        self.deferred = False
        self.previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only; a run in a worker thread keeps the defaults
        for signum in EXIT_CODES:
            self.previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _handle(self, signum, frame) -> None:
        if self.deferred and self.received is None:
            self.received = signum
            say(
                f"received {signal.Signals(signum).name}: saving a checkpoint at the end of this step"
                + (" (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""),
                err=True,
            )
            return
        if signum == signal.SIGINT and self.deferred:
            raise KeyboardInterrupt
        raise RunStopped(signum, None, self.output)


class Run:
    """One training run in one output folder (see the module docstring for the call order)."""

    def __init__(self, out: Path, accelerator, settings, resume: bool):
        self.out = Path(out)
        self.accelerator = accelerator
        self.main = accelerator.is_main_process
        self.settings = settings
        self.resume = resume
        self.lock = runfolder.FolderLock(self.out)
        self.signals = _StopSignals(self.out)
        self.trackers = Trackers(accelerator, getattr(settings, "report_to", []), self.out.name)
        self.log = RunLog(self.out / "log.jsonl", enabled=self.main, mirror=self.trackers.write)
        self.run_config: dict = {}
        self.on_eval: Callable[[int, float, dict], None] | None = None
        self.state = RunState()
        self.started = False
        self._modules: tuple = ()
        self._save_model: Callable[[Path], None] | None = None
        self._created = False
        self._claimed = False
        self._clock = (time.perf_counter(), 0, 0)

    # ---- claiming the folder ----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        out: str | Path,
        run_config: dict,
        accelerator,
        settings,
        resume: bool = False,
        overwrite: bool = False,
        reads: list[str | Path | None] = (),
    ) -> "Run":
        """Lock and prepare the output folder (main process); every process gets the `Run`.

        Args:
            out: the output folder.
            run_config: the resolved config, compared with the saved one on --resume.
            accelerator: the run's Accelerator (rank, barriers, reductions).
            settings: the train block (batch_size, grad_accum, save_steps, keep_checkpoints, ...).
            resume, overwrite: the command's flags.
            reads: the files and folders the run reads (model, data, teacher): never deleted by --overwrite.
        """
        world = accelerator.num_processes
        if settings.batch_size < world * settings.grad_accum:
            raise BertxError(f"train.batch_size {settings.batch_size} is smaller than processes x grad_accum ({world} x {settings.grad_accum})")
        run = cls(Path(out), accelerator, settings, resume)
        run.run_config = run_config
        if run.main:
            run._created = not run.out.exists()
            runfolder.make_folder(run.out)
            run.lock.acquire()
            try:
                outputs.prepare_output(run.out, run_config, resume, overwrite, [r for r in reads if r])
            except BaseException:
                run._close(failed=True)  # nothing claimed: the folder is left exactly as it was
                raise
            run._claimed = True  # new, empty or emptied by --overwrite: what appears in it now is this run's
            if run.lock.took_over is not None:
                owner = run.lock.took_over
                say(
                    f"note: {run.out} was locked by a run that is no longer alive (pid {owner.get('pid')} on {owner.get('host')}); taking it over",
                    err=True,
                )
        accelerator.wait_for_everyone()
        run.signals.install()
        return run

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        checkpointed_stop = isinstance(error, RunStopped) and error.step is not None
        self._close(failed=kind is not None and not checkpointed_stop)

    def _close(self, failed: bool) -> None:
        self.signals.restore()
        self.trackers.close()
        if self.main and failed and self._claimed and not self.resume and not checkpoints_in(self.out / "checkpoints"):
            self._remove_own_files()
        self.lock.release()
        if self.main and self._created and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()

    def _remove_own_files(self) -> None:
        """A run that failed before its first checkpoint leaves the folder as it found it (bertx's files only)."""
        import shutil

        for name in (
            runfolder.RUN_FILE,
            "log.jsonl",
            "metrics.json",
            "best",
            "best.tmp",
            "final",
            "final.tmp",
            "checkpoints",
            "tensorboard",
            "mlflow.db",
        ):
            path = self.out / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()

    def write_config(self, run_config: dict) -> None:
        self.run_config = run_config
        if self.main:
            runfolder.write_run_config(self.out, run_config)

    # ---- training ---------------------------------------------------------------------------------
    def start(self, model, optimizer, scheduler, save_model: Callable[[Path], None], /, state: RunState | None = None, **start_log: Any) -> RunState:
        """Attach what a checkpoint holds; resume from the newest intact checkpoint or log the start.

        Args:
            model: the unwrapped module whose `state_dict` is checkpointed.
            optimizer, scheduler: their states are checkpointed too.
            save_model: writes the model to be published into a folder (atomically).
            state: a fresh state with the recipe's own counters filled in (default: `RunState()`).
            start_log: fields of the log's `start` line (a fresh run only).
        """
        self._modules = (model, optimizer, scheduler)
        self._save_model = save_model
        self.trackers.start(self.run_config)
        self.state = state or RunState()
        if self.resume:
            saved, folder = restore_training_state(self.out / "checkpoints", model, optimizer, scheduler, self.accelerator.process_index)
            fresh_extra = self.state.extra
            self.state = RunState.from_dict(saved)
            self.state.extra = {**fresh_extra, **self.state.extra}
            self.log.truncate_after(self.state.step)
            self.log.write(event="resume", step=self.state.step, checkpoint=folder.name)
        else:
            self.log.write(event="start", step=0, precision=self.precision, **start_log)
        self.started = True
        self.signals.deferred = True
        self._clock = (time.perf_counter(), self.state.examples_seen, self.state.tokens_seen)
        return self.state

    def count_step(self, examples: int, tokens: int = 0) -> None:
        """Advance the state by one optimizer step that consumed `examples` examples (`tokens` tokens)."""
        self.state.step += 1
        self.state.batch_in_epoch += 1
        self.state.examples_seen += examples
        self.state.tokens_seen += tokens

    def throughput(self) -> tuple[float, float]:
        """(examples/s, tokens/s) since this process started training (a resumed run counts from its resume)."""
        elapsed = max(1e-9, time.perf_counter() - self._clock[0])
        return (self.state.examples_seen - self._clock[1]) / elapsed, (self.state.tokens_seen - self._clock[2]) / elapsed

    # ---- the step cadence every recipe shares: micro-batches, then end_step ------------------------------
    @contextmanager
    def micro_batch(self, model, last: bool) -> Iterator[None]:
        """The forward pass and loss of one micro-batch: under autocast, and without the gradient all-reduce
        across processes unless it is the step's `last` micro-batch (DDP's `no_sync`)."""
        with nullcontext() if last else self.accelerator.no_sync(model), self.accelerator.autocast():
            yield

    def backward(self, loss) -> float:
        """Backward through one micro-batch's (already weighted) loss; returns its value."""
        self.accelerator.backward(loss)
        return loss.item()

    def end_step(
        self,
        model,
        optimizer,
        scheduler,
        bar,
        loss: float,
        examples: int,
        tokens: int = 0,
        shown: dict | None = None,
        logged: Callable[[], dict] | None = None,
    ) -> bool:
        """Close an optimizer step: the step itself (clipping, scheduler), the state's counters, the progress
        bar, and every `logging_steps` the train line of the log (`logged()` adds the recipe's own fields,
        computed only then). Returns whether an evaluation is due (every `eval_steps`).

        Args:
            loss: the step's loss (the sum of its weighted micro-batch losses).
            examples, tokens: what the step consumed (see `count_step`); a run that counts tokens
                reports tokens/s, the others examples/s.
            shown: extra fields for the progress bar.
        """
        if not math.isfinite(loss):  # every later step would be NaN too, and the saved model with it
            raise BertxError(
                f"the training loss is {loss} at step {self.state.step + 1}: the run diverged or read "
                "non-finite inputs or teacher outputs; stopped (lower the learning rate, or check the data)"
            )
        optimizer_step(self.accelerator, model, optimizer, scheduler, self.settings.max_grad_norm)
        self.count_step(examples, tokens)
        samples_s, tokens_s = self.throughput()
        lr = scheduler.get_last_lr()[0]
        speed = {"tokens_s": f"{tokens_s:.0f}"} if tokens else {"samples_s": f"{samples_s:.1f}"}
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", **speed, **(shown or {}), refresh=False)
        step = self.state.step
        if step % self.settings.logging_steps == 0:
            rate = {"tokens_per_s": tokens_s} if tokens else {"samples_per_s": samples_s}
            self.log.write(event="train", step=step, epoch=self.state.epoch, loss=loss, lr=lr, **rate, **(logged() if logged else {}))
        eval_steps = getattr(self.settings, "eval_steps", None)
        return bool(eval_steps) and step % eval_steps == 0

    def checkpoint(self) -> Path:
        model, optimizer, scheduler = self._modules
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "progress": asdict(self.state),
        }
        keep = getattr(self.settings, "keep_checkpoints", 1) or 1
        return save_checkpoint(self.out / "checkpoints", self.state.step, self.accelerator, payload, keep=keep)

    def stop_requested(self) -> int | None:
        """The stop signal received by any process (all processes agree), or None."""
        received = self.signals.received
        if self.accelerator.num_processes > 1:
            import torch

            flag = torch.tensor([received or 0], device=self.accelerator.device)
            received = int(self.accelerator.reduce(flag, reduction="sum").item()) or None
            if received and received not in EXIT_CODES:
                received = signal.SIGTERM  # several processes, different signals: report it as a termination
        return received

    def after_step(self) -> None:
        """Call once per optimizer step, after the state's counters moved: periodic checkpoint, and on a
        stop signal a checkpoint of this step, then `RunStopped`."""
        save_steps = self.settings.save_steps
        signum = self.stop_requested()
        if signum is not None or (save_steps and self.state.step % save_steps == 0):
            self.checkpoint()
        if signum is not None:
            self.log.write(event="stopped", step=self.state.step, signal=signal.Signals(signum).name)
            raise RunStopped(signum, self.state.step, self.out)

    def record_eval(self, metrics: dict, metric_name: str, show: bool = False) -> bool:
        """After a dev evaluation: the metric that picks the best must exist; keep the best model, write the
        eval line of the log (and print it when `show`). Returns whether this evaluation is the best so far."""
        if not isinstance(metrics.get(metric_name, ""), float):
            raise BertxError(f"train.metric_for_best {metric_name!r} is not a metric of this task ({', '.join(metrics)})")
        improved = self.keep_best(metrics[metric_name], dict(metrics))
        self.log.write(event="eval", step=self.state.step, epoch=self.state.epoch, best=improved, **metrics)
        if show:
            say(f"step {self.state.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        return improved

    def keep_best(self, value: float, metrics: dict) -> bool:
        """Record an evaluation (higher `value` is better); save the model when it is the best so far."""
        improved = record_evaluation(self.state, value, metrics, getattr(self.settings, "early_stopping_patience", None))
        if improved and self.main:
            self._save_model(self.out / "best")
        if self.on_eval is not None:  # a hyper-parameter search watches the run (and may stop it: pruning)
            self.on_eval(self.state.step, value, metrics)
        return improved

    # ---- the end ----------------------------------------------------------------------------------
    def publish(self, from_best: bool = True) -> None:
        """Put the model into the output root: the best evaluated one, or (no evaluation, or
        `from_best=False`) the model as it is now."""
        if self.main:
            folder = self.out / ("best" if from_best else "final")
            if not from_best or self.state.best_step is None:
                self._save_model(folder)
            outputs.publish(folder, self.out)
        self.accelerator.wait_for_everyone()

    @property
    def precision(self) -> str:
        """The precision the run computes in (what `auto` resolved to)."""
        mixed = self.accelerator.mixed_precision
        return "fp32" if mixed == "no" else str(mixed)

    def finish(self, final: dict, log_fields: dict | None = None) -> dict:
        final.setdefault("precision", self.precision)
        if self.main:
            outputs.write_metrics(self.out, final)
            self.log.write(event="end", **(final if log_fields is None else log_fields))
        return final
