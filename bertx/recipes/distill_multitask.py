"""Multi-task distillation: a `bertx multitask` teacher (one encoder, a head per task) into one smaller
multi-task student with the same heads, served in one encoder pass as the teacher is.

    teacher folder -> its run config: every task's files, reading options and head -> each task read as the
    teacher read it -> each head's outputs on its own task's texts and (`share_texts`) on the other tasks'
    texts of the same shape, single texts or pairs, from the teacher store -> a student of the teacher's
    kept layers with every head copied, or a BiLSTM / CNN / bag encoder with a new head per task (a tagger for
    token tasks) -> for each step: the sampler picks a task per batch, that head
    learns the teacher head's soft targets and the gold labels (the teacher's decision on shared texts)
    -> every task's dev set -> the best student by the mean of the tasks' main metrics -> a multi-task
    folder that `bertx export`, `bertx serve` and `bertx multitask-export` read as they read the teacher
    -> a report of each head: teacher, student, share kept

Sharing texts is the cheap transfer set of multi-task distillation: a sentiment head learns how its teacher
reads the acceptability sentences too, at no labelling cost to the user.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

from torch import nn

from bertx import runfolder
from bertx.config import DistillConfig, MultitaskConfig
from bertx.console import say
from bertx.data.batching import collate
from bertx.data.features import inputs_of
from bertx.data.hf_datasets import local_file
from bertx.data.task_sampling import TaskSampler
from bertx.data.transfer_set import append_features, augmented_features, read_unlabelled
from bertx.errors import BertxError
from bertx.inference.loading import TrainedModel
from bertx.models.small_students import KINDS as SMALL_KINDS
from bertx.models.cls_only import enable_cls_only_last_layer
from bertx.models.encoder import load_tokenizer
from bertx.models.multitask import HEADS_DIR, MultiTaskModel, load_task_model
from bertx.models.multitask_adapters import is_adapter_multitask
from bertx.recipes.multitask import Task, batches_drawn, cursor_batches, load_tasks, save_shared, task_evaluation
from bertx.recipes.students import SMALL_STUDENT_LR, build_student, check_small_student
from bertx.recipes.teacher_labels import TeacherLabeller
from bertx.training import teacher_store
from bertx.training.accelerator import make_accelerator
from bertx.training.distiller import Distiller
from bertx.training.fit import Loop, Step, fit, micro_slices
from bertx.training.optim import build_optimizer, linear_schedule
from bertx.training.run import Run, RunState
from bertx.tasks import get_task

REPORT = "report.md"


def is_multitask_teacher(path: str | Path) -> bool:
    return "multitask" in (runfolder.read_run_config(path) or {})


def check_multitask_distill(config: DistillConfig) -> None:
    """What a multi-task student cannot take, refused in one line before any work."""
    given = config.model_fields_set
    refused = [
        (config.teachers, "one multi-task teacher teaches a multi-task student: drop --teacher for the others"),
        (
            config.student.kind == "transformer" and config.student.init != "teacher",
            f"a multi-task student keeps some of the teacher's layers (student.layers or student.keep_layers) or is a BiLSTM, CNN "
            f"or bag (student.kind); a {config.student.init} student learns one task: write it as a model first (bertx "
            "multitask-export), then distil that",
        ),
        (config.student.tokenizer, "a multi-task student reads the teacher's pieces: drop student.tokenizer"),
        (config.loss.needs_internals, "a multi-task student learns through the heads' outputs: loss.soft and loss.hard only"),
        (config.data.train or config.data.dev, "the tasks' files come from the multi-task teacher's run: drop --train and --dev"),
        (config.task, "the tasks come from the multi-task teacher's run: drop --task"),
        (config.labelling.engine == "ray" or config.labelling.teacher_export, "a multi-task teacher labels locally, in PyTorch"),
        ("baseline" in given and config.baseline, "baseline: not trained for a multi-task student (the report compares each head with its teacher)"),
        (not config.cache_teacher, "a multi-task student learns from stored teacher outputs (cache_teacher: true)"),
    ]
    for problem, line in refused:
        if problem:
            raise BertxError(f"{config.teacher}: a multi-task teacher; {line}")
    if is_adapter_multitask(config.teacher):
        raise BertxError(f"{config.teacher}: a multi-task run of adapters; write each task as a model (bertx multitask-export) and distil it")


def teacher_config(path: str | Path) -> MultitaskConfig:
    """The multi-task config the teacher was trained with, as its run folder recorded it."""
    run = runfolder.read_run_config(path) or {}
    if "tasks" not in run:  # a multi-task student's run names its teacher, not the tasks' files
        source = (run.get("distilled_from") or {}).get("teacher")
        raise BertxError(
            f"{path}: a multi-task student{f' of {source}' if source else ''}, not a `bertx multitask` run; distil its "
            "teacher, or write one task as a model (bertx multitask-export) and distil that"
        )
    return MultitaskConfig.model_validate({key: run[key] for key in MultitaskConfig.model_fields if key in run})


class HeadLabeller(TeacherLabeller):
    """A teacher head's outputs, stored under the shared encoder's and this head's weights."""

    def __init__(self, config: DistillConfig, teacher: TrainedModel, head: str, device, log):
        super().__init__(config, teacher, device, log)
        self.head = head

    def _source(self) -> str:
        return str(Path(self.config.teacher) / HEADS_DIR / self.head)

    def _digest(self) -> str:
        if "head" not in self._digests:
            both = teacher_store.teacher_digest(self.config.teacher) + teacher_store.teacher_digest(self._source())
            self._digests["head"] = hashlib.sha256(both.encode()).hexdigest()
        return self._digests["head"]


class MultiTaskDistiller(nn.Module):
    """The student and one distiller per task (the task's head over the shared encoder), as one module."""

    def __init__(self, student: MultiTaskModel, distillers: dict[str, Distiller]):
        super().__init__()
        self.student = student
        self.distillers = nn.ModuleDict(distillers)

    @property
    def config(self):
        return self.student.config

    def forward(self, task: str, batch: dict, teacher: dict):
        return self.distillers[task](batch, teacher)


def distill_multitask(config: DistillConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Distil a multi-task teacher into a multi-task student with the same heads.

    Returns:
        `{"mean": ..., "tasks": {task: the student's dev metrics}, "teacher": {task: main metric}, "kept": ...}`.
    """
    from accelerate.utils import set_seed

    check_multitask_distill(config)
    teacher_cfg = teacher_config(config.teacher)
    for entry in teacher_cfg.tasks:
        try:
            check_small_student(config, get_task(entry.kind))
        except BertxError as err:
            raise BertxError(f"{config.teacher}: task {entry.name!r}: {err}") from None
    accelerator = make_accelerator(
        config.train.precision, find_unused_parameters=len(teacher_cfg.tasks) > 1, report_to=config.train.report_to, out=config.output
    )
    run_config = config.model_dump(mode="json")
    reads = [config.teacher, *[path for t in teacher_cfg.tasks for _, path in t.files(teacher_cfg.data_dir)], *config.unlabelled]
    with Run.open(config.output, run_config, accelerator, config.train, resume, overwrite, reads) as run:
        set_seed(config.train.seed)
        return _train(config, teacher_cfg, run, run_config, show_progress and run.main)


def _train(config: DistillConfig, teacher_cfg: MultitaskConfig, run: Run, run_config: dict, show_progress: bool) -> dict:
    train_cfg, device = config.train, run.accelerator.device
    tokenizer = load_tokenizer(config.teacher)
    tasks = load_tasks(teacher_cfg, tokenizer, show_notes=run.main)
    teacher = _teacher(config.teacher, tasks)
    teacher_scores = {t.name: _main_score(t, teacher.task_model(t.name), tokenizer, device) for t in tasks if t.dev}
    caches, labelled = _transfer_sets(config, tasks, teacher, tokenizer, device, say if run.main else (lambda line: None))
    student, kept = _student(config, teacher, tasks)
    teacher_run = runfolder.read_run_config(config.teacher) or {}
    run_config.update(multitask=teacher_run["multitask"], transfer_set=labelled)
    run_config["distilled_from"] = {
        "teacher": str(config.teacher),
        "student": config.student.kind,
        "kept_layers": kept,
        "share_texts": config.share_texts,
    }
    run.write_config(run_config)

    distiller = MultiTaskDistiller(
        student, {t.name: Distiller(student.task_model(t.name), teacher.config, config.loss, t.spec.label_kind, []) for t in tasks}
    )
    sampling = teacher_cfg.sampling
    steps_per_epoch = math.ceil(sum(math.ceil(t.size / train_cfg.batch_size) for t in tasks) / sampling.tasks_per_step)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * steps_per_epoch))
    optimizer, scheduler = _optimiser(config, distiller, total_steps)
    sampler = TaskSampler([t.size for t in tasks], sampling.strategy, sampling.temperature, train_cfg.seed)
    wrapped, optimizer = run.accelerator.prepare(distiller, optimizer)
    started = time.perf_counter()
    progress = run.start(
        student,
        optimizer,
        scheduler,
        lambda folder: save_shared(student, tokenizer, folder),
        state=RunState(extra={"draws": 0, "cursors": {t.name: [0, 0] for t in tasks}}),
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        teacher=str(config.teacher),
        kept_layers=kept,
        tasks={t.name: {"kind": t.entry.kind, "transfer_examples": t.size, "dev_examples": t.dev.size if t.dev else 0} for t in tasks},
    )
    evaluate, record = task_evaluation(tasks, lambda: student, tokenizer, run, show_progress)
    loop = Loop(
        wrapped,
        optimizer,
        scheduler,
        total_steps,
        epoch_batches=lambda epoch: range(steps_per_epoch),
        step=_step(config, run, wrapped, tasks, caches, sampler, total_steps, tokenizer, sampling.tasks_per_step),
        evaluate=evaluate if any(t.dev for t in tasks) else None,
        record=record,
        show_progress=show_progress,
    )
    fitted = fit(run, loop, started)
    run.publish()
    drawn = batches_drawn(sampler, progress.extra["draws"], total_steps, sampling.tasks_per_step, [t.name for t in tasks])
    final = _final(progress, fitted, tasks, teacher_scores, drawn)
    if run.main:
        runfolder.write_text(run.out / REPORT, report_markdown(final))
    return run.finish(final, log_fields={k: v for k, v in final.items() if k not in ("tasks",)})


def _optimiser(config: DistillConfig, distiller: MultiTaskDistiller, total_steps: int):
    """A BiLSTM / CNN / bag student starts from scratch: bertx's rate for those unless train.lr was given."""
    train_cfg = config.train
    small = config.student.kind in SMALL_KINDS and "lr" not in train_cfg.model_fields_set
    lr = SMALL_STUDENT_LR if small else train_cfg.lr
    optimizer = build_optimizer(distiller, lr, train_cfg.weight_decay, train_cfg.head_lr, train_cfg.layer_decay, ("student.heads",))
    return optimizer, linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)


def _teacher(path: str, tasks: list[Task]) -> MultiTaskModel:
    """The teacher's heads over one copy of its encoder, in evaluation mode."""
    heads = {}
    for task in tasks:
        if task.entry.head_name not in heads:
            heads[task.entry.head_name] = load_task_model(path, task.entry.head_name, task.spec.auto_class)
    return MultiTaskModel(heads, {t.name: t.entry.head_name for t in tasks}).eval()


def _main_score(task: Task, model, tokenizer, device) -> float:
    metrics = task.kind.evaluate(model, task.dev, tokenizer.pad_token_id, task.config.data, device=device)
    return metrics[task.metric]


def _shape(task: Task) -> str | None:
    """What a head reads, for sharing texts between tasks: single texts, pairs, or None (token and span heads)."""
    if task.spec.level != "sequence":
        return None
    return "pairs" if (task.train.info.get("columns") or {}).get("text_pair") else "texts"


def _transfer_sets(config: DistillConfig, tasks: list[Task], teacher: MultiTaskModel, tokenizer, device, log):
    """Each task's teacher outputs (from the store when labelled before): on its own training texts, then on the
    other tasks' texts of the same shape and the unlabelled files, which join its training data with the
    teacher head's decisions as their labels. Returns (task -> TeacherCache, task -> how it was labelled)."""
    own = {t.name: inputs_of(t.train.features, range(t.size)) for t in tasks}  # before any task takes another's texts
    made = _augmented(config, tasks, teacher, tokenizer)
    caches, summaries = {}, {}
    for task in tasks:
        trained = TrainedModel(teacher.task_model(task.name), tokenizer, task.spec, task.kind, task.config.data)
        label = HeadLabeller(config, trained, task.entry.head_name, device, log)
        try:
            label.choose(task.train.features)
            cache = label(task.train.features)
            for extra in _extra_texts(config, task, tasks, own, made, tokenizer):
                extra_cache = label(extra)
                append_features(task.train.features, extra, extra_cache.labels().tolist())
                cache.append(extra_cache)
        finally:
            label.close()
        caches[task.name], summaries[task.name] = cache, label.summary
    return caches, summaries


def _augmented(config: DistillConfig, tasks: list[Task], teacher: MultiTaskModel, tokenizer) -> dict:
    """`augment` unlabelled variants of each sequence task's training texts (Tang et al.'s rules, with the
    teacher's embeddings for `neighbours`), tokenised: task -> features."""
    if not config.augment:
        return {}
    embeddings = None
    if config.augment_rule == "neighbours":
        embeddings = teacher.encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
    made = {}
    for task in tasks:
        if _shape(task) is None:
            continue
        data = task.config.data
        columns = task.train.info.get("columns") or {}
        reading = {"text_column": columns.get("text"), "text_pair_column": columns.get("text_pair")}
        path = local_file(data.resolve(data.train))
        made[task.name] = augmented_features(
            path, task.spec, tokenizer, data.max_length, data.max_train_examples, reading, config.augment, config.train.seed, embeddings
        )
    return made


def _extra_texts(config: DistillConfig, task: Task, tasks: list[Task], own: dict, made: dict, tokenizer) -> list:
    """The texts a head learns besides its own: the other same-shape tasks' texts (`share_texts`), the augmented
    variants of the texts it learns, and the unlabelled files."""
    shape = _shape(task)
    if shape is None:
        return []
    sources = [other for other in tasks if _shape(other) == shape and (config.share_texts or other is task)]
    extras = [own[other.name] for other in sources if other is not task]
    extras += [made[other.name] for other in sources if other.name in made]
    if config.unlabelled:
        columns = task.train.info.get("columns") or {}
        reading = {"text_column": columns.get("text"), "text_pair_column": columns.get("text_pair")}
        paths = [local_file(config.data.resolve(p)) for p in config.unlabelled]
        extras.append(read_unlabelled(paths, task.spec, tokenizer, task.config.data.max_length, reading))
    return extras


def _student(config: DistillConfig, teacher: MultiTaskModel, tasks: list[Task]) -> tuple[MultiTaskModel, list[int] | None]:
    """One student per head over one shared encoder, each made from its teacher head as a single-task student
    would be: the teacher's kept layers ([CLS]-only last layer when every head reads [CLS] alone), or a
    BiLSTM / CNN / bag whose embeddings start from the teacher's (once: the other heads' are replaced by it)."""
    heads, kept = {}, None
    for task in tasks:
        if task.entry.head_name in heads:
            continue
        first = not heads
        options = config if first else config.model_copy(update={"student": config.student.model_copy(update={"init_embeddings": False})})
        heads[task.entry.head_name], kept = build_student(options, teacher.task_model(task.name), None, per_token=task.spec.label_kind == "tags")
    student = MultiTaskModel(heads, {t.name: t.entry.head_name for t in tasks})
    transformer = config.student.kind not in SMALL_KINDS
    if transformer and all(t.spec.auto_class == "AutoModelForSequenceClassification" for t in tasks):
        enable_cls_only_last_layer(student.task_model(tasks[0].name))  # patches the one shared encoder
    return student, kept


def _step(config: DistillConfig, run: Run, distiller, tasks: list[Task], caches: dict, sampler, total_steps: int, tokenizer, per_step: int):
    """One optimizer step: `per_step` sampled tasks, one batch each, each against its head's stored teacher outputs."""
    progress, device, loss_cfg = run.state, run.accelerator.device, config.loss
    next_batch = cursor_batches(tasks, progress, config.train)
    sums: dict[str, list] = {}

    def per_task_losses() -> dict:
        logged = {f"loss/{name}": total / n for name, (total, n) in sums.items() if n}
        sums.clear()
        return logged

    def step(_slot) -> Step:
        step_loss, examples = 0.0, 0
        for each in run.accelerator.unwrap_model(distiller).distillers.values():
            each.fraction = progress.step / total_steps  # where the loss schedules stand
        for j in range(per_step):
            task = tasks[sampler.pick(progress.extra["draws"], progress.step / total_steps)]
            progress.extra["draws"] += 1
            indices = next_batch(task)
            for part, share, last in micro_slices(run, indices, config.train.grad_accum):
                batch = collate(task.train.features, part, tokenizer.pad_token_id, task.kind.label_dtype if loss_cfg.uses_hard else None)
                batch = {key: t.to(device) for key, t in batch.items()}
                teacher_out = caches[task.name].batch(part, batch["input_ids"].shape[1], device)
                with run.micro_batch(distiller, last and j == per_step - 1):
                    loss, _ = distiller(task.name, batch, teacher_out)
                    loss = loss * share * task.entry.weight / per_step
                value = run.backward(loss)
                step_loss += value
                total = sums.setdefault(task.name, [0.0, 0])
                total[0], total[1] = total[0] + value, total[1] + 1
            examples += len(indices)
        return Step(step_loss, examples, shown={"task": task.name}, logged=per_task_losses)

    return step


def _final(progress, fitted, tasks: list[Task], teacher_scores: dict, batches_per_task: dict) -> dict:
    student = {t.name: (progress.best_metrics or {}).get(t.name, {}).get(t.metric) for t in tasks}
    return {
        "mean": progress.best_metric,
        "tasks": progress.best_metrics,
        "main_metrics": {t.name: t.metric for t in tasks},
        "teacher": teacher_scores,
        "kept": {name: round(student[name] / score, 4) for name, score in teacher_scores.items() if student.get(name) is not None and score},
        "steps": progress.step,
        "best_step": progress.best_step,
        "wall_s": round(fitted.wall_s, 2),
        "train_samples_per_s": round(fitted.examples_per_s, 2),
        "batches_per_task": batches_per_task,
    }


def report_markdown(final: dict) -> str:
    """Each head: the teacher's and the student's main dev metric and the share the student kept."""
    lines = ["| task | metric | teacher | student | kept |", "|---|---|---:|---:|---:|"]
    for name, metric in final["main_metrics"].items():
        teacher = final["teacher"].get(name)
        student = (final["tasks"] or {}).get(name, {}).get(metric)
        if teacher is None or student is None:
            lines.append(f"| {name} | {metric} | | | (no dev file) |")
            continue
        lines.append(f"| {name} | {metric} | {100 * teacher:.2f} | {100 * student:.2f} | {100 * final['kept'][name]:.1f}% |")
    return "\n".join(lines) + "\n"
