"""Fine-tuning recipe: one encoder + one task head, trained on one task. One loop, top to bottom.

    config -> claim the output folder (`training/run.py`) -> task kind (sequence / ner / qa) reads and
    encodes the data -> model + optimiser -> [resume] -> for each global batch: forward, backward
    (accumulated), clip, step, log, evaluate (through the task kind), checkpoint -> publish the best
    model into the output folder -> final metrics

Everything task-specific (readers, label spaces, windows, heads, decoding, metrics) sits behind the
`TaskKind` of `bertx.tasks`; this loop only sees `model(**batch).loss`.

The same code runs on one CPU, one GPU, or many processes under `accelerate launch` / `torchrun`:
Accelerate wraps the model for data parallelism, and every process takes its slice of each global
batch, so the optimisation is the same whatever the number of processes.
"""

from __future__ import annotations

import math
import time
from typing import Callable


from bertx.config import FinetuneConfig
from bertx.data.batching import collate
from bertx.models.adapters import AdapterModel, add_adapters, lr_scales, new_encoder_weights, trainable_counts
from bertx.models.encoder import load_tokenizer
from bertx.models.heads import word_embeddings
from bertx.recipes.inputs import resolved_inputs
from bertx.tasks import get_kind, get_task
from bertx.training import outputs
from bertx.training.accelerator import make_accelerator
from bertx.training.aux_mlm import AuxText, TaskWithAuxMLM
from bertx.training.optim import build_optimizer, linear_schedule
from bertx.training.fit import Step, fit, labelled_loop, micro_slices
from bertx.training.run import Run
from bertx.data.hf_datasets import local_file
from bertx.console import say


def finetune(
    config: FinetuneConfig,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    on_eval: Callable[[int, float, dict], None] | None = None,
) -> dict:
    """Fine-tune an encoder on one task (any kind: sequence, NER, QA) and write an HF-compatible model folder.

    Args:
        config: the validated run config.
        resume: continue the run in `config.output` from its last checkpoint.
        overwrite: replace the bertx run `config.output` holds.
        show_progress: draw a progress bar on the main process.
        on_eval: called with (step, main metric, dev metrics) after every evaluation (`bertx tune`
            reports to Optuna there, and prunes by raising).

    Returns:
        Final metrics: the dev metrics of the best evaluation (none without a dev file), plus run
        figures (steps, best step, wall time, samples/s, truncated examples).

    Raises:
        RunStopped: SIGTERM or Ctrl-C; the step reached is checkpointed.
    """
    from accelerate.utils import set_seed

    task = get_task(config.task)
    train_cfg, data_cfg = config.train, config.data
    train_path, dev_path, model_path, run_config = resolved_inputs(config)

    accelerator = make_accelerator(train_cfg.precision, report_to=train_cfg.report_to, out=config.output)
    main = accelerator.is_main_process
    reads = [model_path, train_path, dev_path] + [data_cfg.resolve(p) for p in (config.aux_mlm.text if config.aux_mlm else [])]
    with Run.open(config.output, run_config, accelerator, train_cfg, resume, overwrite, reads) as run:
        run.on_eval = on_eval
        set_seed(train_cfg.seed)
        return _train(config, task, run, run_config, model_path, train_path, dev_path, show_progress and main)


def _train(
    config: FinetuneConfig, task, run: Run, run_config: dict, model_path: str, train_path: str, dev_path: str | None, show_progress: bool
) -> dict:
    train_cfg, data_cfg, accelerator = config.train, config.data, run.accelerator
    kind = get_kind(task)
    tokenizer = load_tokenizer(model_path)
    train, dev = _read(config, kind, run, run_config, tokenizer, train_path, dev_path)
    model = kind.build_model(model_path, train.labels, config.model.dropout)
    started = time.perf_counter()  # training time includes fitting the probe head
    config, model, head_report = _task_model(config, task, kind, run, train, tokenizer, model)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * math.ceil(len(train.features.lengths) / train_cfg.batch_size)))
    model, optimizer, scheduler, aux = _optimiser(config, model, tokenizer, total_steps, run)
    metric_name = train_cfg.metric_for_best or task.main_metric

    def task_model():
        """The task model alone (without the auxiliary MLM head, if any): what is evaluated and saved."""
        unwrapped = accelerator.unwrap_model(model)
        return getattr(unwrapped, "task_model", unwrapped)

    progress = run.start(
        accelerator.unwrap_model(model),
        optimizer,
        scheduler,
        # What the output folder holds: the whole model, or only the adapter and head of a PEFT run.
        lambda folder: outputs.save_model_atomic(AdapterModel(task_model(), config.peft.method) if config.peft else task_model(), tokenizer, folder),
        train_examples=len(train.features.lengths),
        dev_examples=dev.size if dev else 0,
        total_steps=total_steps,
        train_counts=train.counts,
        dev_counts=dev.counts if dev else {},
        labels=train.labels,
        processes=accelerator.num_processes,
        model=model_path,
        **head_report,
    )
    _say_notes(run, train, dev, data_cfg.max_length)
    step = _step(config, run, model, train.features, tokenizer, kind.label_dtype, aux)
    evaluate = (lambda: kind.evaluate(task_model(), dev, tokenizer.pad_token_id, data_cfg, device=accelerator.device)) if dev else None
    loop = labelled_loop(run, (model, optimizer, scheduler), total_steps, train.features.lengths, step, evaluate, metric_name, show_progress)
    fitted = fit(run, loop, started)

    run.publish()
    return run.finish(_final(progress, fitted, metric_name, train))


def _final(progress, fitted, metric_name: str, train) -> dict:
    """What a fine-tuning run returns and records: the best evaluation's metrics, where it was, and the speed."""
    final = dict(progress.best_metrics)
    final.update(
        steps=progress.step,
        best_step=progress.best_step,
        metric_for_best=metric_name,
        stopped_early=progress.stopped_early,
        train_examples=len(train.features.lengths),
        truncated_train=train.counts.get("truncated", 0),
        wall_s=round(fitted.wall_s, 2),
        train_samples_per_s=round(fitted.examples_per_s, 2),
    )
    return final


def _say_notes(run: Run, train, dev, max_length: int) -> None:
    if run.main:
        for line in data_notes(train.counts, dev.counts if dev else {}, max_length):
            say(f"note: {line}")


def _read(config: FinetuneConfig, kind, run: Run, run_config: dict, tokenizer, train_path: str, dev_path: str | None):
    """The training data (its labels make the label space) and the dev data read alike; what was found in the
    files (columns, label names) goes into the run config, for `evaluate` and `predict` to read the same way."""
    data_cfg = config.data
    train = kind.load_train(train_path, data_cfg, tokenizer)
    label2id = {name: i for i, name in enumerate(train.labels)}
    run_config.update(train.info)
    run_config["labels"] = train.labels
    dev = None
    if dev_path:
        dev = kind.load_eval(dev_path, data_cfg, tokenizer, label2id, run_config, limit=data_cfg.max_dev_examples, articles=data_cfg.dev_articles)
    run.write_config(run_config)
    return train, dev


def _task_model(config: FinetuneConfig, task, kind, run: Run, train, tokenizer, model):
    """The model with the kind's speed-ups and head initialisation ([CLS]-only last layer, linear probe), then
    the adapters of a PEFT run. Returns (the config with the PEFT head settings, model, report)."""
    if config.model.freeze_word_embeddings:
        word_embeddings(model).requires_grad_(False)
    config = peft_head_init(config, model)
    head_report = kind.prepare_model(model, train, config, tokenizer, run.resume)
    if config.peft:  # after the head's probe initialisation: the adapter starts from a fitted head
        model = add_adapters(model, config.peft, task.auto_class)
        head_report["peft"] = config.peft.method
    head_report.update(trainable_counts(model))
    return config, model, head_report


def _optimiser(config: FinetuneConfig, model, tokenizer, total_steps: int, run: Run):
    """The optimiser and schedule, with the auxiliary MLM's text and head when the config asks for the mixed
    objective (task loss + weight x MLM loss on unlabelled text). Returns (model, optimizer, scheduler, aux)."""
    train_cfg, data_cfg = config.train, config.data
    optimizer = build_optimizer(
        model, peft_lr(config.peft, train_cfg), train_cfg.weight_decay, train_cfg.head_lr, train_cfg.layer_decay, lr_scales=lr_scales(config.peft)
    )
    aux = None
    if config.aux_mlm:
        aux_cfg = config.aux_mlm
        aux = AuxText(
            [local_file(data_cfg.resolve(p)) for p in aux_cfg.text],
            tokenizer,
            aux_cfg.documents,
            aux_cfg.max_length,
            aux_cfg.batch_size or train_cfg.batch_size,
            aux_cfg.mlm_probability,
            aux_cfg.whole_word_mask,
            train_cfg.seed,
            show_progress=run.main,
        )
        model = TaskWithAuxMLM(model, aux_cfg.weight)
        optimizer.add_param_group({"params": model.new_parameters(), "lr": train_cfg.lr, "weight_decay": 0.0})
    scheduler = linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer = run.accelerator.prepare(model, optimizer)
    return model, optimizer, scheduler, aux


def _step(config: FinetuneConfig, run: Run, model, features, tokenizer, label_dtype, aux):
    """One optimizer step over one global batch: its slice on this process in micro-batches, each weighted by
    its share (the step's loss is the mean over the slice), with this step's unlabelled batch for the auxiliary
    MLM when there is one."""
    device, progress = run.accelerator.device, run.state

    def step(indices) -> Step:
        slices = list(micro_slices(run, indices, config.train.grad_accum))
        step_loss = step_mlm = 0.0
        mlm_parts = None
        if aux:  # this step's unlabelled batch, cut into as many micro-batches as the labelled one
            mlm_full = aux.batch(progress.step, run.accelerator.process_index, run.accelerator.num_processes)
            mlm_parts = [dict(zip(mlm_full, chunk)) for chunk in zip(*(t.tensor_split(len(slices)) for t in mlm_full.values()))]
        for k, (part, share, last) in enumerate(slices):
            batch = {key: t.to(device) for key, t in collate(features, part, tokenizer.pad_token_id, label_dtype).items()}
            if mlm_parts:
                batch["mlm"] = {key: t.to(device) for key, t in mlm_parts[k].items()}
                batch["mlm_head_only"] = progress.step < config.aux_mlm.head_warmup_steps
            with run.micro_batch(model, last=last):
                result = model(**batch)
                loss = result.loss * share
            step_loss += run.backward(loss)
            if aux:
                step_mlm += result["mlm_loss"].item() * share
        logged = (lambda: {"aux_mlm_loss": step_mlm}) if aux else None
        return Step(step_loss, len(indices), shown={"epoch": progress.epoch}, logged=logged)

    return step


# A frozen encoder with a small adapter wants a larger step than full fine-tuning's 1e-4 (measured on
# SST-2 and the GLUE tasks of benchmarks/peft_fewshot/peft_glue.py); train.lr, when set, wins.
PEFT_LR = {"lora": 1e-3, "ia3": 3e-3, "bitfit": 1e-3}


def peft_lr(peft, train_cfg) -> float:
    """The run's learning rate: `train.lr` when set, else the PEFT method's default (full fine-tuning's otherwise)."""
    return PEFT_LR[peft.method] if peft and "lr" not in train_cfg.model_fields_set else train_cfg.lr


def peft_head_init(config, model):
    """`config` with a random head where a probe would mislead a PEFT run: a probe fitted on a random, then
    trained, pooler's features (a base folder without one) led every PEFT method to a constant prediction
    on the tiny test model; a fresh head trains well there."""
    if config.peft and new_encoder_weights(model) and config.train.head_init == "probe":
        return config.model_copy(update={"train": config.train.model_copy(update={"head_init": "random"})})
    return config


def data_notes(train_counts: dict, dev_counts: dict, max_length: int) -> list[str]:
    """What the data readers changed or cut, in words, so nothing is lost silently."""
    notes = []
    for split, counts in (("training", train_counts), ("dev", dev_counts)):
        if counts.get("truncated"):
            notes.append(f"{counts['truncated']} {split} examples are longer than max_length={max_length} tokens and were truncated")
        if counts.get("truncated_questions"):
            notes.append(f"{counts['truncated_questions']} {split} questions were cut to data.max_query_length tokens")
        if counts.get("windowed"):
            notes.append(f"{counts['windowed']} {split} inputs are longer than max_length={max_length} and were split into overlapping windows")
        if counts.get("repaired_tags"):
            notes.append(f"{counts['repaired_tags']} {split} tags were invalid BIO (I-X after O or another type) and were read as B-X")
    return notes
