"""Multi-task recipe: one shared encoder, one head per task, batches drawn from the tasks in turn.

    config -> every task's files checked -> each task's kind reads and encodes its data -> task models
    on one shared encoder (`MultiTaskModel`) -> [resume] -> for each step: the sampler picks a task per
    batch, forward through that task's head, loss x task weight, backward (accumulated over the step's
    batches), clip, step, log per-task losses -> evaluate every task's dev set -> the best checkpoint
    by the mean of the tasks' main metrics -> publish encoder + heads -> per-task table

Knowledge moves between tasks through the shared encoder only; each head sees its own task. A task's
batches are built exactly as in single-task fine-tuning (same reader, features, length buckets and
collator), so a one-task run here is single-task fine-tuning.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path


from bertx import runfolder
from bertx.config import FinetuneConfig, MultitaskConfig, TaskEntry
from bertx.data.batching import bucketed_batches, collate
from bertx.data.task_sampling import TaskSampler
from bertx.errors import BertxError
from bertx.models.encoder import check_encoder_folder, load_tokenizer, resolve_model_path
from bertx.models.adapters import add_adapters, lr_scales, trainable_counts, trains_biases
from bertx.models.heads import word_embeddings
from bertx.models.multitask import MultiTaskModel
from bertx.models.multitask_adapters import AdapterTaskModels, share_frozen_weights
from bertx.recipes.finetune import data_notes, peft_head_init, peft_lr
from bertx.recipes.task_folders import check_task_files
from bertx.tasks import get_kind, get_task
from bertx.data.task_spec import EvalSet, TaskSpec, TrainData
from bertx.training import outputs
from bertx.training.accelerator import make_accelerator
from bertx.training.optim import build_optimizer, linear_schedule
from bertx.training.fit import Loop, Step, fit, micro_slices
from bertx.training.run import Run, RunState
from bertx.data.hf_datasets import local_file
from bertx.console import say


@dataclass
class Task:
    """One task of the run, read and encoded."""

    entry: TaskEntry
    config: FinetuneConfig  # its single-task view: what its kind reads and heads with
    spec: TaskSpec
    kind: object
    train: TrainData
    dev: EvalSet | None
    metric: str

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def size(self) -> int:
        return len(self.train.features.lengths)


def load_tasks(config: MultitaskConfig, tokenizer, show_notes: bool = True) -> list[Task]:
    """Read and encode every task; check that tasks sharing a head share its labels."""
    tasks = []
    for entry in config.tasks:
        task_config = config.task_config(entry)
        spec = get_task(entry.kind)
        kind = get_kind(spec)
        data_cfg = task_config.data
        train = kind.load_train(local_file(data_cfg.resolve(data_cfg.train)), data_cfg, tokenizer)
        run_config = dict(train.info, labels=train.labels)
        label2id = {name: i for i, name in enumerate(train.labels)}
        dev = None
        if data_cfg.dev:
            dev = kind.load_eval(
                local_file(data_cfg.resolve(data_cfg.dev)),
                data_cfg,
                tokenizer,
                label2id,
                run_config,
                limit=data_cfg.max_dev_examples,
                articles=data_cfg.dev_articles,
            )
        tasks.append(Task(entry, task_config, spec, kind, train, dev, entry.metric or spec.main_metric))
        if show_notes:
            for line in data_notes(train.counts, dev.counts if dev else {}, data_cfg.max_length):
                say(f"note: task {entry.name}: {line}")
    first_of_head: dict[str, Task] = {}
    for task in tasks:
        other = first_of_head.setdefault(task.entry.head_name, task)
        if other.train.labels != task.train.labels:
            raise BertxError(
                f"tasks {other.name!r} and {task.name!r} share head {task.entry.head_name!r} but their label sets differ: "
                f"{other.train.labels} vs {task.train.labels}"
            )
    return tasks


def task_run_info(task: Task, model_path: str) -> dict:
    """The single-task run config of one task, as `bertx finetune` would have written it (used by export)."""
    run_config = task.config.model_dump(mode="json")
    run_config["model"]["name_or_path"] = model_path
    run_config["data"]["train"], run_config["data"]["dev"] = (
        local_file(task.config.data.resolve(task.config.data.train)),
        local_file(task.config.data.resolve(task.config.data.dev)),
    )
    run_config.update(task.train.info)
    run_config["labels"] = task.train.labels
    run_config["head"] = task.entry.head_name
    run_config["metric"] = task.metric
    return run_config


def multitask(config: MultitaskConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Train one shared encoder on several tasks and write the encoder and every head into one folder.

    Args:
        config: the validated multi-task config.
        resume: continue the run in `config.output` from its last checkpoint.
        overwrite: replace the bertx run `config.output` holds.
        show_progress: draw a progress bar on the main process.

    Returns:
        `{"mean": ..., "tasks": {task: dev metrics at the best step}, ...run figures}`.

    Raises:
        RunStopped: SIGTERM or Ctrl-C; the step reached is checkpointed.
    """
    from accelerate.utils import set_seed

    train_cfg = config.train
    check_task_files(config)
    model_path = resolve_model_path(config.model.name_or_path)
    check_encoder_folder(model_path, max_length=max(t.data.max_length for t in config.tasks))
    accelerator = make_accelerator(
        train_cfg.precision, find_unused_parameters=len(config.tasks) > 1, report_to=train_cfg.report_to, out=config.output
    )
    run_config = config.model_dump(mode="json")
    run_config["model"]["name_or_path"] = model_path
    reads = [model_path] + [path for t in config.tasks for _, path in t.files(config.data_dir)]
    with Run.open(config.output, run_config, accelerator, train_cfg, resume, overwrite, reads) as run:
        set_seed(train_cfg.seed)
        return _train(config, run, run_config, model_path, show_progress and run.main)


def _train(config: MultitaskConfig, run: Run, run_config: dict, model_path: str, show_progress: bool) -> dict:
    train_cfg, sampling_cfg, accelerator = config.train, config.sampling, run.accelerator
    tokenizer = load_tokenizer(model_path)
    tasks = load_tasks(config, tokenizer, show_notes=run.main)
    by_name = {task.name: task for task in tasks}
    run_config["multitask"] = {task.name: task_run_info(task, model_path) for task in tasks}
    run.write_config(run_config)
    model, head_reports, started = _shared_model(config, tasks, tokenizer, model_path, run)
    batches_per_epoch = sum(math.ceil(task.size / train_cfg.batch_size) for task in tasks)
    steps_per_epoch = math.ceil(batches_per_epoch / sampling_cfg.tasks_per_step)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * steps_per_epoch))
    lr = peft_lr(config.peft, train_cfg)
    optimizer = build_optimizer(model, lr, train_cfg.weight_decay, train_cfg.head_lr, train_cfg.layer_decay, ("heads",), lr_scales(config.peft))
    scheduler = linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)
    sampler = TaskSampler([task.size for task in tasks], sampling_cfg.strategy, sampling_cfg.temperature, train_cfg.seed)
    model, optimizer = accelerator.prepare(model, optimizer)

    def shared() -> MultiTaskModel:
        return accelerator.unwrap_model(model)

    # ---- start or resume: the run's own counters are the sampler's draws and each task's cursor ----
    fresh = RunState(extra={"draws": 0, "cursors": {task.name: [0, 0] for task in tasks}})
    progress = run.start(
        shared(),
        optimizer,
        scheduler,
        lambda folder: save_shared(shared(), tokenizer, folder),
        state=fresh,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        processes=accelerator.num_processes,
        model=model_path,
        sampling=sampling_cfg.strategy,
        task_probabilities=dict(zip(by_name, sampler.probabilities(0.0).round(4).tolist())),
        tasks={t.name: _task_facts(t) for t in tasks},
        heads=head_reports,
        **(trainable_counts(shared()) if config.peft else {}),
    )
    evaluate, record = task_evaluation(tasks, shared, tokenizer, run, show_progress)
    # An epoch is `steps_per_epoch` steps of sampled tasks; each task keeps its own cursor in its data.
    loop = Loop(
        model,
        optimizer,
        scheduler,
        total_steps,
        epoch_batches=lambda epoch: range(steps_per_epoch),  # slots: the sampler picks each step's batches
        step=_step(config, run, model, tasks, sampler, total_steps, tokenizer),
        evaluate=evaluate if any(t.dev for t in tasks) else None,
        record=record,
        show_progress=show_progress,
    )
    fitted = fit(run, loop, started)

    run.publish()
    final = _final(progress, fitted, tasks, batches_drawn(sampler, progress.extra["draws"], total_steps, sampling_cfg.tasks_per_step, list(by_name)))
    if run.main:
        runfolder.write_text(run.out / "report.md", task_table(final))
    return run.finish(final, log_fields={k: v for k, v in final.items() if k != "tasks"})


def _final(progress, fitted, tasks: list[Task], batches_per_task: dict) -> dict:
    return {
        "mean": progress.best_metric,
        "tasks": progress.best_metrics,
        "main_metrics": {t.name: t.metric for t in tasks},
        "steps": progress.step,
        "best_step": progress.best_step,
        "stopped_early": progress.stopped_early,
        "wall_s": round(fitted.wall_s, 2),
        "train_samples_per_s": round(fitted.examples_per_s, 2),
        "batches_per_task": batches_per_task,
    }


def _task_facts(task: Task) -> dict:
    return {
        "kind": task.entry.kind,
        "train_examples": task.size,
        "dev_examples": task.dev.size if task.dev else 0,
        "labels": task.train.labels,
        "weight": task.entry.weight,
        "head": task.entry.head_name,
    }


def _shared_model(config: MultitaskConfig, tasks: list[Task], tokenizer, model_path: str, run: Run):
    """One task model per head, all on one encoder (or one base with adapters): (model, each head's report, when
    training began: after the models are built, before the heads are fitted)."""
    heads: dict[str, Task] = {}
    for task in tasks:
        heads.setdefault(task.entry.head_name, task)
    built = {head: task.kind.build_model(model_path, task.train.labels, config.model.dropout) for head, task in heads.items()}
    head_of = {task.name: task.entry.head_name for task in tasks}
    started = time.perf_counter()
    # The [CLS]-only last layer is a change to the shared encoder: only when every head reads [CLS] alone.
    cls_only = config.model.cls_only_last_layer and all(t.spec.auto_class == "AutoModelForSequenceClassification" for t in tasks)
    views = {
        head: task.config.model_copy(update={"model": config.model.model_copy(update={"cls_only_last_layer": cls_only})})
        for head, task in heads.items()
    }
    if config.peft:
        return (*adapter_task_models(config, built, heads, views, head_of, tokenizer, run.resume), started)
    model = MultiTaskModel(built, head_of)
    if config.model.freeze_word_embeddings:
        word_embeddings(model.encoder).requires_grad_(False)
    head_reports = {
        head: task.kind.prepare_model(model.task_model(task.name), task.train, views[head], tokenizer, run.resume) for head, task in heads.items()
    }
    return model, head_reports, started


def task_evaluation(tasks: list[Task], shared, tokenizer, run: Run, show_progress: bool):
    """(evaluate, record): every task with a dev set evaluated on its own head; the best model is the one with
    the best mean of the tasks' main metrics."""
    by_name = {t.name: t for t in tasks}

    def evaluate_all() -> dict[str, dict]:
        return {
            t.name: t.kind.evaluate(shared().task_model(t.name), t.dev, tokenizer.pad_token_id, t.config.data, device=run.accelerator.device)
            for t in tasks
            if t.dev
        }

    def after_eval(results: dict[str, dict]) -> None:
        for name, metrics in results.items():
            metric = by_name[name].metric
            if not isinstance(metrics.get(metric, ""), float):
                raise BertxError(f"task {name!r}: metric {metric!r} is not one of its dev metrics ({', '.join(metrics)})")
        value = mean_main_metric(results, {t.name: t.metric for t in tasks})
        improved = run.keep_best(value, {name: dict(m) for name, m in results.items()})
        flat = {f"{name}/{k}": v for name, metrics in results.items() for k, v in metrics.items()}
        run.log.write(event="eval", step=run.state.step, mean=value, best=improved, **flat)
        if show_progress:
            say(
                f"step {run.state.step}: mean={value:.4f}  "
                + "  ".join(f"{name}.{by_name[name].metric}={metrics[by_name[name].metric]:.4f}" for name, metrics in results.items())
            )

    return evaluate_all, after_eval


def cursor_batches(tasks: list[Task], progress, train_cfg):
    """task -> its next global batch; a task that runs out starts its next epoch, reshuffled. The cursors
    (epoch, batches consumed) live in the run's state, so a resumed run continues each task where it was."""
    cursors = progress.extra["cursors"]
    names = [t.name for t in tasks]
    epoch_batches: dict[str, tuple[int, list]] = {}

    def next_batch(task: Task) -> list[int]:
        cursor = cursors[task.name]
        seed = train_cfg.seed + 7_919 * names.index(task.name)  # each task its own order
        cached = epoch_batches.get(task.name)
        if cached is None or cached[0] != cursor[0]:
            cached = (cursor[0], bucketed_batches(task.train.features.lengths, train_cfg.batch_size, seed, cursor[0], train_cfg.bucket_size))
            epoch_batches[task.name] = cached
        if cursor[1] >= len(cached[1]):
            cursor[0], cursor[1] = cursor[0] + 1, 0
            return next_batch(task)
        cursor[1] += 1
        return cached[1][cursor[1] - 1]

    return next_batch


def _step(config: MultitaskConfig, run: Run, model, tasks: list[Task], sampler, total_steps: int, tokenizer):
    """One optimizer step: `tasks_per_step` sampled tasks, one batch each, their weighted losses together;
    each task's mean loss and batch count since the last log line go in the log."""
    progress, device, per_step = run.state, run.accelerator.device, config.sampling.tasks_per_step
    next_batch = cursor_batches(tasks, progress, config.train)
    loss_sums = {t.name: [0.0, 0] for t in tasks}

    def per_task_losses() -> dict:
        logged = {"batches": {name: n for name, (_, n) in loss_sums.items()}, **{f"loss/{name}": s / n for name, (s, n) in loss_sums.items() if n}}
        for sums in loss_sums.values():
            sums[:] = [0.0, 0]
        return logged

    def step(_slot) -> Step:
        step_loss, step_examples = 0.0, 0
        for j in range(per_step):
            task = tasks[sampler.pick(progress.extra["draws"], progress.step / total_steps)]
            progress.extra["draws"] += 1
            indices = next_batch(task)
            task_loss = 0.0
            for part, share, last in micro_slices(run, indices, config.train.grad_accum):
                batch = collate(task.train.features, part, tokenizer.pad_token_id, task.kind.label_dtype)
                batch = {key: t.to(device) for key, t in batch.items()}
                with run.micro_batch(model, last and j == per_step - 1):  # one gradient all-reduce per step
                    loss = model(task=task.name, **batch).loss * share
                    weighted = loss * task.entry.weight / per_step
                step_loss += run.backward(weighted)
                task_loss += loss.item()
            loss_sums[task.name][0] += task_loss
            loss_sums[task.name][1] += 1
            step_examples += len(indices)
        return Step(step_loss, step_examples, shown={"task": task.name}, logged=per_task_losses)

    return step


def save_shared(model, tokenizer, folder: Path) -> None:
    """Publish the run's model into `folder`: encoder + heads, or (PEFT) one adapter folder per head."""
    if isinstance(model, AdapterTaskModels):
        outputs.save_model_atomic(model, tokenizer, folder)
    else:
        model.save(folder, tokenizer)


def adapter_task_models(
    config: MultitaskConfig, built: dict, heads: dict[str, Task], views: dict, head_of: dict[str, str], tokenizer, resume: bool
) -> tuple[AdapterTaskModels, dict]:
    """`peft:` in a multi-task config: each head's model gets its own adapter (as a single-task PEFT run
    would), over frozen encoder weights held once in memory (`models/multitask_adapters.py`)."""
    reports = {
        head: task.kind.prepare_model(built[head], task.train, peft_head_init(views[head], built[head]), tokenizer, resume)
        for head, task in heads.items()
    }
    own_biases = trains_biases(config.peft)  # BitFit (or LoRA with bias: all) trains the biases: each task keeps its own
    share_frozen_weights(list(built.values()), keep_own=lambda name: own_biases and name.endswith(".bias"))
    adapted = {head: add_adapters(model, config.peft, heads[head].spec.auto_class) for head, model in built.items()}
    for head, model in adapted.items():
        reports[head].update(peft=config.peft.method, **trainable_counts(model))
    return AdapterTaskModels(adapted, head_of, config.peft.method, tokenizer), reports


def mean_main_metric(results: dict[str, dict], main_metrics: dict[str, str]) -> float:
    """Mean over tasks of each task's main dev metric (what picks the best multi-task checkpoint)."""
    values = [results[name][main_metrics[name]] for name in results]
    return sum(values) / len(values)


def batches_drawn(sampler: TaskSampler, draws: int, total_steps: int, per_step: int, names: list[str]) -> dict[str, int]:
    """How many batches each task contributed (recomputed from the deterministic sampler)."""
    counts = dict.fromkeys(names, 0)
    for draw in range(draws):
        counts[names[sampler.pick(draw, (draw // per_step) / total_steps)]] += 1
    return counts


def task_table(final: dict) -> str:
    """The per-task Markdown table of a finished run: main metric, all metrics, and the mean."""
    lines = ["| task | main metric | value | all dev metrics |", "|---|---|---:|---|"]
    for name, metrics in final["tasks"].items():
        metric = final["main_metrics"][name]
        others = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != metric)
        lines.append(f"| {name} | {metric} | {100 * metrics[metric]:.2f} | {others} |")
    if final["mean"] is not None:
        lines.append(f"| **mean** | | **{100 * final['mean']:.2f}** | best step {final['best_step']} of {final['steps']} |")
    return "\n".join(lines) + "\n"
