"""Distillation recipe: a fine-tuned teacher into a smaller student, for every task kind. One loop.

    teacher folder -> its task kind, labels and tokenizer -> training data read as that kind reads it
    (+ unlabelled text, labelled by the teacher) -> student (teacher layers / smaller config / another
    encoder) -> [teacher outputs cached once] -> for each batch: student forward, teacher outputs
    (cache or live), weighted losses (soft targets, hard labels, hidden states, attentions,
    embeddings, value relations), backward, clip, step, log each loss -> evaluate the student on dev
    -> best student published as an HF folder -> optionally the same student trained without a teacher
    -> transfer report (teacher vs student vs no-teacher student)

Everything task-specific stays in the task kinds (`bertx.tasks`) and everything loss-specific in
`training/distiller.py`; this loop only moves batches.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from bertx import runfolder
from bertx.config import DistillConfig
from bertx.console import say
from bertx.data.batching import collate
from bertx.data.hf_datasets import local_file
from bertx.data.features import tokenize
from bertx.data.transfer_set import (
    append_features,
    augmented_examples,
    remap_targets,
    unlabelled_examples,
    unlabelled_sentences,
    unlabelled_word_lists,
)
from bertx.data.word_windows import IGNORE
from bertx.errors import BertxError
from bertx.models.cls_only import disable_cls_only_last_layer, enable_cls_only_last_layer
from bertx.models.adapters import is_adapter_folder
from bertx.models.encoder import check_encoder_folder, load_tokenizer, resolve_model_path
from bertx.models.small_students import KINDS as SMALL_KINDS
from bertx.recipes.finetune import data_notes
from bertx.recipes.students import SMALL_STUDENT_LR, build_student, check_small_student
from bertx.recipes.student_tokenizer import check_student_tokenizer, student_tokenizer, tagger_targets_on_own_pieces
from bertx.recipes.teacher_ensemble import EnsembleLabeller, check_members, member_weights
from bertx.recipes.teacher_labels import TeacherLabeller
from bertx.tasks import TASKS
from bertx.tasks.ner import window_overlap
from bertx.training import outputs
from bertx.training.accelerator import make_accelerator
from bertx.training.distiller import Distiller, check_layer_map, default_layer_map, teacher_outputs
from bertx.training.optim import build_optimizer, linear_schedule
from bertx.training.fit import Step, fit, labelled_loop, micro_slices
from bertx.training.run import Run
from bertx.training.teacher_cache import TeacherCache


def load_teacher(path: str, task_name: str | None, max_length: int | None = None):
    """The teacher as a `TrainedModel`, checked to be fine-tuned for the requested task kind: any folder bertx
    trains (a fine-tuned run, a PEFT run whose adapter is merged as it loads, a few-shot run)."""
    from bertx.inference.loading import load_trained

    if is_adapter_folder(path):  # a PEFT run: its base model is the folder to check; the loader merges the adapter
        base = ((runfolder.read_run_config(path) or {}).get("model") or {}).get("name_or_path")
        check_encoder_folder(resolve_model_path(base), max_length=max_length)
    else:
        check_encoder_folder(path, max_length=max_length)
    teacher = load_trained(path, device="cpu")
    disable_cls_only_last_layer(teacher.model)  # the student is copied from it, and internal losses read every position
    if task_name:
        wanted = TASKS[task_name]
        if (wanted.auto_class, wanted.label_kind) != (teacher.task.auto_class, teacher.task.label_kind):
            raise BertxError(
                f"{path}: the teacher is fine-tuned for {teacher.task.name} ({type(teacher.model).__name__}), "
                f"not for {task_name}; distil with a teacher of that task kind"
            )
    return teacher


def same_vocabulary(a, b) -> bool:
    return a.get_vocab() == b.get_vocab() and a.__class__.__name__.replace("Fast", "") == b.__class__.__name__.replace("Fast", "")


def distill(config: DistillConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Distil the teacher into a student; with `config.baseline`, also train the same student without a
    teacher and write the transfer report (`report.md`, `report.json`, `report.png`) into the output.

    Returns:
        The student's final metrics, with `"baseline"` and `"report"` entries when a baseline was trained.
    """
    from bertx.recipes.distill_multitask import distill_multitask, is_multitask_teacher

    if is_multitask_teacher(config.teacher):  # one encoder, many heads: one multi-task student
        return distill_multitask(config, resume=resume, overwrite=overwrite, show_progress=show_progress)
    final = train_student(config, resume=resume, overwrite=overwrite, show_progress=show_progress)
    if not config.baseline:
        return final
    from bertx.evaluation.distill_report import write_report

    out = Path(config.output)
    plain = config.model_copy(
        update={
            "output": str(out / "baseline"),
            "baseline": False,
            "unlabelled": [],
            "augment": 0,
            "loss": config.loss.hard_only(),
        }
    )
    resume_baseline = resume and (out / "baseline" / runfolder.RUN_FILE).is_file()
    final["baseline"] = train_student(plain, resume=resume_baseline, overwrite=not resume_baseline, show_progress=show_progress)
    weights = None
    if config.teachers:  # the weights the ensemble was labelled with, as the run recorded them
        weights = ((runfolder.read_run_config(out) or {}).get("transfer_set") or {}).get("weights")
    final["report"] = write_report(
        config.teacher, out, out / "baseline", local_file(config.data.resolve(config.data.dev)), out, teachers=config.teachers, weights=weights
    )
    return final


def train_student(config: DistillConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """One distillation run (the loop). A loss config with only `hard` trains the student without a teacher."""
    from accelerate.utils import set_seed

    train_cfg, data_cfg = config.train, config.data
    train_path, dev_path = local_file(data_cfg.resolve(data_cfg.train)), local_file(data_cfg.resolve(data_cfg.dev))
    if not train_path:
        raise BertxError("no training file: pass --train FILE or set data.train in the config")
    teacher = load_teacher(config.teacher, config.task, max_length=data_cfg.max_length)
    check_small_student(config, teacher.task)
    check_student_tokenizer(config, teacher.task)
    if config.student.init == "encoder":
        check_encoder_folder(config.student.name_or_path, max_length=data_cfg.max_length)
    task = teacher.task
    accelerator = make_accelerator(train_cfg.precision, report_to=train_cfg.report_to, out=config.output)
    run_config = config.model_dump(mode="json")
    run_config["task"] = task.name
    run_config["data"]["train"], run_config["data"]["dev"] = train_path, dev_path
    reads = [config.teacher, *config.teachers, config.student.name_or_path, train_path, dev_path, *[data_cfg.resolve(p) for p in config.unlabelled]]
    with Run.open(config.output, run_config, accelerator, train_cfg, resume, overwrite, reads) as run:
        set_seed(train_cfg.seed)
        return _train(config, run, run_config, teacher, train_path, dev_path, show_progress and run.main)


UNLABELLED_NEEDS_CACHE = (
    "unlabelled and augmented distillation text works for sequence tasks with cached teacher "
    "outputs (soft-target and hard losses only, cache_teacher: true)"
)


def _label_transfer_set(
    config: DistillConfig, teacher, train, teacher_train, device, tokenizer, shared_tokens: bool, labels: list[str], train_path: str, main: bool
) -> tuple[TeacherCache, dict]:
    """The teacher's outputs on the training text, then on the unlabelled and augmented text, which joins the
    training data with the teacher's decisions as its labels: by the fastest teacher that agrees with fp32,
    from the teacher store when labelled before, here or on a Ray cluster (`teacher_labels.py`). A tagger
    student with other pieces than the teacher's gets each word's outputs on its own pieces of the word."""
    data_cfg, task = config.data, teacher.task
    unlabelled = [local_file(data_cfg.resolve(p)) for p in config.unlabelled]
    if config.labelling.engine == "ray" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise BertxError("labelling.engine ray runs in one process: label on Ray without torchrun (or label locally)")
    log = say if main else (lambda line: None)
    label = _ensemble(config, teacher, device, log) if config.teachers else TeacherLabeller(config, teacher, device, log)
    try:
        label.choose(teacher_train.features)
        own_tagger = task.label_kind == "tags" and not shared_tokens
        if own_tagger:  # both read the same sentences: the teacher's windows and the student's, word by word
            cache = tagger_targets_on_own_pieces(label, teacher_train.words, train.words)
        else:
            cache = label(teacher_train.features)
        if config.unlabelled and task.label_kind == "tags" and not config.augment:
            # Unlabelled sentences for a tagger: the teacher's per-token outputs are the soft targets, and its
            # most probable tag at each word's first piece the hard one.
            sentences = unlabelled_word_lists(unlabelled)
            reading = (data_cfg.max_length, window_overlap(data_cfg), labels, data_cfg.label_all_subtokens)
            words = unlabelled_sentences(sentences, tokenizer, *reading)
            extra = words.features
            if own_tagger:
                extra_cache = tagger_targets_on_own_pieces(label, unlabelled_sentences(sentences, teacher.tokenizer, *reading), words)
            else:
                extra_cache = label(extra)
            tags = [
                np.where(np.asarray(row) != IGNORE, logits.argmax(-1), IGNORE).tolist()
                for row, logits in zip(extra.labels, extra_cache.outputs["logits"])
            ]
            append_features(train.features, extra, tags)
            cache.append(extra_cache)
        elif config.unlabelled or config.augment:  # the teacher labels extra text; it joins the training data
            if task.level != "sequence":
                raise BertxError(UNLABELLED_NEEDS_CACHE)
            for made in _extra_examples(config, teacher, train, train_path, unlabelled):
                extra = tokenize(tokenizer, made, data_cfg.max_length)
                # A student with its own tokenizer: the teacher reads the same texts with its own pieces.
                read = extra if shared_tokens else tokenize(teacher.tokenizer, made, data_cfg.max_length)
                extra_cache = label(read)
                append_features(train.features, extra, extra_cache.labels().tolist())
                cache.append(extra_cache)
    finally:
        label.close()
    return cache, label.summary


def _extra_examples(config: DistillConfig, teacher, train, train_path: str, unlabelled: list[str]) -> list[list]:
    """The unlabelled texts and the augmented variants of the training texts (made with the teacher's pieces and
    embeddings), as groups of examples for the teacher to label."""
    data_cfg, spec = config.data, teacher.kind.spec
    columns = train.info.get("columns") or {}
    reading = {"text_column": columns.get("text"), "text_pair_column": columns.get("text_pair")}
    groups = []
    if config.unlabelled:
        groups.append(unlabelled_examples(unlabelled, spec, reading))
    if config.augment:
        embeddings = None
        if config.augment_rule == "neighbours":
            embeddings = teacher.model.get_input_embeddings().weight.detach().float().cpu().numpy()
        made = augmented_examples(
            train_path, spec, teacher.tokenizer, data_cfg.max_train_examples, reading, config.augment, config.train.seed, embeddings
        )
        groups.append(made)
    return groups


def _ensemble(config: DistillConfig, teacher, device, log) -> EnsembleLabeller:
    """The teacher and `config.teachers` as one labeller, each extra teacher loaded and checked against the first."""
    paths = [config.teacher, *config.teachers]
    members = [teacher]
    for path in config.teachers:
        member = load_teacher(path, config.task or teacher.task.name, max_length=config.data.max_length)
        member.model.to(device).eval()
        members.append(member)
    check_members(paths, members)
    weights = member_weights(config, paths, teacher.task.main_metric)
    log(f"teachers: {', '.join(f'{Path(p).name} ({w:.2f})' for p, w in zip(paths, weights))}, averaged as probabilities")
    return EnsembleLabeller(config, paths, members, weights, device, log)


def _train(config: DistillConfig, run: Run, run_config: dict, teacher, train_path: str, dev_path: str | None, show_progress: bool) -> dict:
    train_cfg, data_cfg, loss_cfg = config.train, config.data, config.loss
    task, kind, accelerator = teacher.task, teacher.kind, run.accelerator
    labels = teacher.labels if task.label_kind != "score" else []
    student, kept, tokenizer, shared_tokens = _student(config, teacher, train_path)
    layer_map = _layer_map(config, student, teacher, kept)
    needs_teacher = bool(loss_cfg.soft or loss_cfg.needs_internals)  # hard labels alone: training without a teacher
    train, dev = _read(config, kind, labels, tokenizer, train_path, dev_path, teacher)
    device = accelerator.device
    teacher.model.to(device).eval()
    n_labelled = len(train.features.lengths)
    cache = _stored_targets(config, run, run_config, teacher, train, tokenizer, labels, train_path, shared_tokens)
    _write_run_config(config, run, run_config, train, labels, task, kept)
    if run.main:
        for line in data_notes(train.counts, dev.counts if dev else {}, data_cfg.max_length):
            say(f"note: {line}")
    # No probe initialisation: a student copied from the teacher keeps the teacher's head already.
    n_train = len(train.features.lengths)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * math.ceil(n_train / train_cfg.batch_size)))
    distiller, optimizer, scheduler = _optimiser(config, _distiller(config, student, teacher, layer_map), total_steps, run)

    def student_model():
        return accelerator.unwrap_model(distiller).student

    started = time.perf_counter()
    facts = {
        "train_examples": n_labelled,
        "unlabelled_examples": n_train - n_labelled,
        "dev_examples": dev.size if dev else 0,
        "total_steps": total_steps,
        "labels": labels,
        "processes": accelerator.num_processes,
        "teacher": str(config.teacher),
        "teacher_outputs": "none" if not needs_teacher else "cached" if cache else "live",
        **_student_facts(config, student, kept, layer_map),
    }
    save = lambda folder: outputs.save_model_atomic(student_model(), tokenizer, folder)  # noqa: E731
    progress = run.start(accelerator.unwrap_model(distiller), optimizer, scheduler, save, **facts)
    metric_name = train_cfg.metric_for_best or task.main_metric
    teacher_for = _teacher_outputs(teacher, cache, needs_teacher, accelerator.unwrap_model(distiller).teacher_request(), run, loss_cfg)
    step = _step(config, run, distiller, train.features, tokenizer, kind.label_dtype if loss_cfg.uses_hard else None, teacher_for, total_steps)
    evaluate = (lambda: kind.evaluate(student_model(), dev, tokenizer.pad_token_id, data_cfg, device=device)) if dev else None
    loop = labelled_loop(run, (distiller, optimizer, scheduler), total_steps, train.features.lengths, step, evaluate, metric_name, show_progress)
    fitted = fit(run, loop, started)

    run.publish()
    final = dict(progress.best_metrics)
    final.update(steps=progress.step, best_step=progress.best_step, metric_for_best=metric_name, wall_s=round(fitted.wall_s, 2))
    final.update(train_samples_per_s=round(fitted.examples_per_s, 2), train_examples=n_labelled, unlabelled_examples=n_train - n_labelled)
    return run.finish(final)


def _stored_targets(config: DistillConfig, run: Run, run_config: dict, teacher, train, tokenizer, labels, train_path: str, shared_tokens: bool):
    """The teacher's outputs on the whole transfer set from the store (labelled once, then reused), or None when
    the teacher runs live beside the student (internal states) or is not needed (hard labels alone)."""
    loss_cfg = config.loss
    needs_teacher = bool(loss_cfg.soft or loss_cfg.needs_internals)
    if needs_teacher and not (loss_cfg.needs_internals or not config.cache_teacher):
        teacher_train = train if shared_tokens else teacher.kind.load_train(train_path, config.data, teacher.tokenizer)
        cache, run_config["transfer_set"] = _label_transfer_set(
            config, teacher, train, teacher_train, run.accelerator.device, tokenizer, shared_tokens, labels, train_path, run.main
        )
        return cache
    if config.unlabelled or config.augment:
        raise BertxError(UNLABELLED_NEEDS_CACHE)
    return None


def _distiller(config: DistillConfig, student, teacher, layer_map: list) -> Distiller:
    loss_cfg, task = config.loss, teacher.task
    distiller = Distiller(student, teacher.model.config, loss_cfg, task.label_kind, layer_map)
    if not loss_cfg.needs_internals and task.auto_class == "AutoModelForSequenceClassification" and config.student.kind == "transformer":
        enable_cls_only_last_layer(student)  # the head reads [CLS] only and no loss reads the last layer
    return distiller


def _student_facts(config: DistillConfig, student, kept, layer_map: list) -> dict:
    return {
        "student_init": config.student.init,
        "kept_layers": kept,
        "student_layers": student.config.num_hidden_layers,
        "student_hidden": student.config.hidden_size,
        "layer_map": layer_map,
        "losses": {k: v for k, v in config.loss.model_dump().items() if isinstance(v, float) and v},
    }


def _student(config: DistillConfig, teacher, train_path: str):
    """The student and its tokenizer: (student, teacher layers it kept, tokenizer, whether it is the teacher's).
    Another tokenizer is allowed only when asked for, and only for sequence tasks learnt through the outputs."""
    task, loss_cfg = teacher.task, config.loss
    own = student_tokenizer(config, teacher, train_path)  # a small student's own WordPiece, when asked for
    student, kept = build_student(config, teacher.model, None, task.label_kind == "tags", (own, teacher.tokenizer) if own else None)
    tokenizer = own or (load_tokenizer(config.student.name_or_path) if config.student.init == "encoder" else teacher.tokenizer)
    shared_tokens = same_vocabulary(tokenizer, teacher.tokenizer)
    if not shared_tokens:
        if not (config.student.allow_other_tokenizer or own):
            raise BertxError(
                f"{config.student.name_or_path}: the student's tokenizer differs from the teacher's "
                f"({len(tokenizer)} vs {len(teacher.tokenizer)} tokens); set student.allow_other_tokenizer=true "
                "to distil through the outputs only"
            )
        if task.level == "span" or loss_cfg.needs_internals or not config.cache_teacher:
            # The teacher must read its own pieces: its outputs are computed once on them, never live on the student's
            # batch; a tagger's are moved word by word onto the student's pieces, a span's have no such mapping.
            raise BertxError(
                "a student with another tokenizer can learn sequence tasks and taggers through the soft-target and hard "
                "losses only, from stored teacher outputs (cache_teacher: true; token positions do not line up)"
            )
    return student, kept, tokenizer, shared_tokens


def _layer_map(config: DistillConfig, student, teacher, kept) -> list:
    """Which teacher layer each student layer learns from, when a loss reads the layers (else none); attention
    losses need the eager attention that returns its probabilities."""
    loss_cfg = config.loss
    layer_map = []
    if loss_cfg.needs_internals:
        student_layers, teacher_layers = student.config.num_hidden_layers, teacher.model.config.num_hidden_layers
        layer_map = [tuple(p) for p in loss_cfg.layer_map] if loss_cfg.layer_map else default_layer_map(student_layers, teacher_layers, kept)
        check_layer_map(layer_map, student_layers, teacher_layers)
    if loss_cfg.attention:
        for model in (student, teacher.model):
            model.set_attn_implementation("eager")
    return layer_map


def _read(config: DistillConfig, kind, labels: list, tokenizer, train_path: str, dev_path: str | None, teacher):
    """The labelled training data read as the teacher's kind reads it, in the teacher's label order, and the dev
    data read with the columns the teacher was trained on."""
    data_cfg = config.data
    label2id = {name: i for i, name in enumerate(labels)}
    train = kind.load_train(train_path, data_cfg, tokenizer)
    if labels:
        unknown = sorted(set(train.labels) - set(labels))
        if unknown:
            raise BertxError(
                f"{train_path}: labels {unknown} are not among the teacher's ({', '.join(labels)}); the teacher was fine-tuned on another label set"
            )
        remap_targets(train.features, teacher.task.label_kind, train.labels, label2id)
    teacher_run = dict(teacher.run)
    teacher_run.setdefault("columns", train.info.get("columns"))
    dev = None
    if dev_path:
        dev = kind.load_eval(dev_path, data_cfg, tokenizer, label2id, teacher_run, limit=data_cfg.max_dev_examples, articles=data_cfg.dev_articles)
    return train, dev


def _write_run_config(config: DistillConfig, run: Run, run_config: dict, train, labels: list, task, kept) -> None:
    run_config.update(train.info)
    run_config["labels"] = labels
    run_config["distilled_from"] = {
        "teacher": str(config.teacher),
        "teacher_task": task.name,
        "kept_layers": kept,
        **({"teachers": [str(config.teacher), *config.teachers]} if config.teachers else {}),
    }
    run.write_config(run_config)


def _optimiser(config: DistillConfig, distiller, total_steps: int, run: Run):
    """A BiLSTM / CNN / bag student learns from scratch: unless train.lr was given, it gets a rate that suits a
    randomly initialised small network rather than the 1e-4 that suits a pretrained transformer."""
    train_cfg = config.train
    peak_lr = SMALL_STUDENT_LR if config.student.kind in SMALL_KINDS and "lr" not in train_cfg.model_fields_set else train_cfg.lr
    optimizer = build_optimizer(
        distiller,
        peak_lr,
        train_cfg.weight_decay,
        train_cfg.head_lr,
        train_cfg.layer_decay,
        head_prefixes=("student.classifier", "student.qa_outputs"),
    )
    scheduler = linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)
    distiller, optimizer = run.accelerator.prepare(distiller, optimizer)
    return distiller, optimizer, scheduler


def _teacher_outputs(teacher, cache, needs_teacher: bool, request, run: Run, loss_cfg):
    """(micro-batch indices, batch) -> the teacher's outputs for it: none (hard labels alone), from the store's
    cache, or computed live (internal states)."""

    def outputs_for(part, batch) -> dict:
        if not needs_teacher:
            return {}
        if cache is not None:
            return cache.batch(part, batch["input_ids"].shape[1], run.accelerator.device)
        with run.accelerator.autocast():
            return teacher_outputs(teacher.model, batch, teacher.task.label_kind, request, bool(loss_cfg.value_relation))

    return outputs_for


def _step(config: DistillConfig, run: Run, distiller, features, tokenizer, label_dtype, teacher_for, total_steps: int):
    """One optimizer step: the distiller's weighted losses per micro-batch against the teacher's outputs, each
    loss term summed for the log line (its mean since the last one)."""
    device, progress, every = run.accelerator.device, run.state, config.train.logging_steps
    sums: dict[str, float] = {}

    def loss_terms() -> dict:
        terms = {f"loss/{name}": value / every for name, value in sums.items()}
        sums.clear()
        return terms

    def step(indices) -> Step:
        step_loss = 0.0
        run.accelerator.unwrap_model(distiller).fraction = progress.step / total_steps  # where the loss schedules stand
        for part, share, last in micro_slices(run, indices, config.train.grad_accum):
            batch = {key: t.to(device) for key, t in collate(features, part, tokenizer.pad_token_id, label_dtype).items()}
            teacher_out = teacher_for(part, batch)
            with run.micro_batch(distiller, last=last):
                loss, loss_parts = distiller(batch, teacher_out)
                loss = loss * share
            step_loss += run.backward(loss)
            for name, value in loss_parts.items():
                sums[name] = sums.get(name, 0.0) + value.item() * share
        return Step(step_loss, len(indices), shown={"epoch": progress.epoch}, logged=loss_terms)

    return step
