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

from tqdm.auto import tqdm

from bertx.config import FinetuneConfig
from bertx.data.batching import bucketed_batches, collate, micro_batches, shard
from bertx.models.adapters import AdapterModel, add_adapters, lr_scales, new_encoder_weights, trainable_counts
from bertx.models.encoder import load_tokenizer
from bertx.models.heads import word_embeddings
from bertx.recipes.inputs import resolved_inputs
from bertx.tasks import get_kind, get_task
from bertx.training import outputs
from bertx.training.accelerator import make_accelerator
from bertx.training.aux_mlm import AuxText, TaskWithAuxMLM
from bertx.training.optim import build_optimizer, linear_schedule
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
    train_cfg, data_cfg = config.train, config.data
    accelerator, main = run.accelerator, run.main

    # ---- data: read, build the label space from training labels, tokenise --------------------------
    kind = get_kind(task)
    tokenizer = load_tokenizer(model_path)
    train = kind.load_train(train_path, data_cfg, tokenizer)
    train_features, labels = train.features, train.labels
    label2id = {name: i for i, name in enumerate(labels)}
    # What was found in the files (columns, label names), for `evaluate` and `predict` to read the same way.
    run_config.update(train.info)
    run_config["labels"] = labels
    dev = None
    if dev_path:
        dev = kind.load_eval(dev_path, data_cfg, tokenizer, label2id, run_config, limit=data_cfg.max_dev_examples, articles=data_cfg.dev_articles)
    run.write_config(run_config)

    # ---- model, optimiser, schedule ------------------------------------------------------------
    model = kind.build_model(model_path, labels, config.model.dropout)
    if config.model.freeze_word_embeddings:
        word_embeddings(model).requires_grad_(False)
    started = time.perf_counter()  # training time includes fitting the probe head
    # Kind-specific speed-ups and head initialisation ([CLS]-only last layer, linear probe).
    config = peft_head_init(config, model)
    head_report = kind.prepare_model(model, train, config, tokenizer, run.resume)
    if config.peft:  # after the head's probe initialisation: the adapter starts from a fitted head
        model = add_adapters(model, config.peft, task.auto_class)
        head_report["peft"] = config.peft.method
    head_report.update(trainable_counts(model))
    world, rank = accelerator.num_processes, accelerator.process_index
    steps_per_epoch = math.ceil(len(train_features.lengths) / train_cfg.batch_size)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * steps_per_epoch))
    optimizer = build_optimizer(
        model, peft_lr(config.peft, train_cfg), train_cfg.weight_decay, train_cfg.head_lr, train_cfg.layer_decay, lr_scales=lr_scales(config.peft)
    )
    aux = None
    if config.aux_mlm:  # the mixed objective: task loss + weight x MLM loss on unlabelled text
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
            show_progress=main,
        )
        model = TaskWithAuxMLM(model, aux_cfg.weight)
        optimizer.add_param_group({"params": model.new_parameters(), "lr": train_cfg.lr, "weight_decay": 0.0})
    scheduler = linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    label_dtype = kind.label_dtype
    metric_name = train_cfg.metric_for_best or task.main_metric

    def task_model():
        """The task model alone (without the auxiliary MLM head, if any): what is evaluated and saved."""
        unwrapped = accelerator.unwrap_model(model)
        return getattr(unwrapped, "task_model", unwrapped)

    def saved_model():
        """What the output folder holds: the whole model, or only the adapter and head of a PEFT run."""
        return AdapterModel(task_model(), config.peft.method) if config.peft else task_model()

    # ---- start or resume ---------------------------------------------------------------------
    progress = run.start(
        accelerator.unwrap_model(model),
        optimizer,
        scheduler,
        lambda folder: outputs.save_model_atomic(saved_model(), tokenizer, folder),
        train_examples=len(train_features.lengths),
        dev_examples=dev.size if dev else 0,
        total_steps=total_steps,
        train_counts=train.counts,
        dev_counts=dev.counts if dev else {},
        labels=labels,
        processes=world,
        model=model_path,
        **head_report,
    )
    if main:
        for line in data_notes(train.counts, dev.counts if dev else {}, data_cfg.max_length):
            say(f"note: {line}")

    def evaluate_dev() -> dict[str, float]:
        return kind.evaluate(task_model(), dev, tokenizer.pad_token_id, data_cfg, device=accelerator.device)

    def after_eval(metrics: dict[str, float]) -> None:
        run.record_eval(metrics, metric_name, show_progress)

    # ---- the loop ----------------------------------------------------------------------------
    bar = tqdm(total=total_steps, initial=progress.step, disable=not show_progress, unit="step", dynamic_ncols=True)
    start_examples = progress.examples_seen
    model.train()
    while progress.step < total_steps and not progress.stopped_early:
        batches = bucketed_batches(train_features.lengths, train_cfg.batch_size, train_cfg.seed, progress.epoch, train_cfg.bucket_size)
        while progress.batch_in_epoch < len(batches) and progress.step < total_steps and not progress.stopped_early:
            local = shard(batches[progress.batch_in_epoch], rank, world)
            parts = list(micro_batches(local, train_cfg.grad_accum))
            step_loss = step_mlm = 0.0
            mlm_parts = None
            if aux:  # this step's unlabelled batch, cut into as many micro-batches as the labelled one
                mlm_full = aux.batch(progress.step, rank, world)
                mlm_parts = [dict(zip(mlm_full, chunk)) for chunk in zip(*(t.tensor_split(len(parts)) for t in mlm_full.values()))]
            for k, indices in enumerate(parts):
                batch = {key: t.to(accelerator.device) for key, t in collate(train_features, indices, tokenizer.pad_token_id, label_dtype).items()}
                if mlm_parts:
                    batch["mlm"] = {key: t.to(accelerator.device) for key, t in mlm_parts[k].items()}
                    batch["mlm_head_only"] = progress.step < config.aux_mlm.head_warmup_steps
                with run.micro_batch(model, last=k == len(parts) - 1):
                    # Weight each micro-batch by its share, so the step's loss is the mean over the slice.
                    result = model(**batch)
                    loss = result.loss * (len(indices) / len(local))
                step_loss += run.backward(loss)
                if aux:
                    step_mlm += result["mlm_loss"].item() * (len(indices) / len(local))
            due = run.end_step(
                model,
                optimizer,
                scheduler,
                bar,
                step_loss,
                len(batches[progress.batch_in_epoch]),
                shown={"epoch": progress.epoch},
                logged=lambda mlm=step_mlm: {"aux_mlm_loss": mlm} if aux else {},
            )
            if dev and due:
                after_eval(evaluate_dev())
            run.after_step()
        if progress.batch_in_epoch >= len(batches):  # a whole epoch is done
            progress.epoch += 1
            progress.batch_in_epoch = 0
            if dev and progress.last_eval_step != progress.step:
                after_eval(evaluate_dev())
    if dev and progress.last_eval_step != progress.step and not progress.stopped_early:
        after_eval(evaluate_dev())  # a run that ended mid-epoch (max_steps, fractional epochs)
    bar.close()
    wall = time.perf_counter() - started

    # ---- publish -----------------------------------------------------------------------------
    run.publish()
    final = dict(progress.best_metrics)
    final.update(
        steps=progress.step,
        best_step=progress.best_step,
        metric_for_best=metric_name,
        stopped_early=progress.stopped_early,
        train_examples=len(train_features.lengths),
        truncated_train=train.counts.get("truncated", 0),
        wall_s=round(wall, 2),
        train_samples_per_s=round((progress.examples_seen - start_examples) / max(wall, 1e-9), 2),
    )
    return run.finish(final)


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
