"""Few-shot classification recipe (SetFit's method on bertx's spine). One loop, top to bottom.

    config -> claim the output folder (`training/run.py`) -> read the training file as its task kind
    reads it -> K examples per class (seeded) -> contrastive pairs of them -> tune the encoder so that
    the cosine of two mean-pooled sentence vectors says whether they share a class -> fit a logistic
    regression on the tuned vectors of the K x C examples -> [end-to-end: encoder and head trained together
    with cross-entropy on the examples] -> publish encoder + head -> dev metrics

Why not plain fine-tuning: with 8 examples per class a fresh head and a full encoder overfit or stay at
chance depending on the seed. The pairs multiply the signal (2 x rounds x examples of them) and ask the
encoder only to move sentences it already embeds well; the head then needs few parameters.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections import Counter

import torch

from bertx.config import FewshotConfig
from bertx.config.fewshot import end_to_end_epochs
from bertx.data.batching import collate
from bertx.data.features import Features
from bertx.data.fewshot import contrastive_pairs, sample_per_class
from bertx.errors import BertxError, RunStopped
from bertx.models.encoder import load_tokenizer, without_load_report
from bertx.models.sentence_classifier import SentenceClassifier
from bertx.recipes.inputs import resolved_inputs
from bertx.tasks import get_kind, get_task
from bertx.training import outputs
from bertx.training.accelerator import make_accelerator
from bertx.training.optim import build_optimizer, linear_schedule, optimizer_step
from bertx.training.fit import Loop, Step, fit
from bertx.training.run import Run


def fewshot(config: FewshotConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Train a classifier from a few labelled examples per class; write encoder + head into `config.output`.

    Returns:
        Dev metrics (none without a dev file), plus the examples and pairs used, steps and wall time.
    """
    from accelerate.utils import set_seed

    task = get_task(config.task)
    train_cfg = config.train
    train_path, dev_path, model_path, run_config = resolved_inputs(config)
    accelerator = make_accelerator(train_cfg.precision, report_to=train_cfg.report_to, out=config.output)
    if accelerator.num_processes > 1:
        raise BertxError("bertx fewshot runs in one process: a few hundred pairs gain nothing from data parallelism")
    with Run.open(config.output, run_config, accelerator, train_cfg, resume, overwrite, [model_path, train_path, dev_path]) as run:
        set_seed(train_cfg.seed)
        return _train(config, task, run, run_config, model_path, train_path, dev_path, show_progress)


def subset(features: Features, indices: list[int]) -> Features:
    return Features(
        [features.input_ids[i] for i in indices],
        [features.token_type_ids[i] for i in indices] if features.token_type_ids else None,
        labels=[features.labels[i] for i in indices],
        lengths=[features.lengths[i] for i in indices],
    )


def pair_loss(u: torch.Tensor, v: torch.Tensor, target: torch.Tensor, kind: str, margin: float) -> torch.Tensor:
    """cosine: (cos - target)^2 (SetFit); contrastive: same class (1 - cos)^2, other class relu(cos - 1 + margin)^2."""
    cos = torch.nn.functional.cosine_similarity(u, v, dim=-1)  # (P,)
    if kind == "cosine":
        return ((cos - target) ** 2).mean()
    return (target * (1 - cos) ** 2 + (1 - target) * torch.relu(cos - 1 + margin) ** 2).mean()


def _train(
    config: FewshotConfig, task, run: Run, run_config: dict, model_path: str, train_path: str, dev_path: str | None, show_progress: bool
) -> dict:
    from transformers import AutoModel

    train_cfg, data_cfg = config.train, config.data
    device = run.accelerator.device
    kind = get_kind(task)
    tokenizer = load_tokenizer(model_path)

    train, chosen, features, pairs, dev = _read(config, kind, run, run_config, tokenizer, train_path, dev_path)

    # ---- model, optimiser ---------------------------------------------------------------------
    with without_load_report():  # a missing pooler: mean pooling never reads it
        encoder = AutoModel.from_pretrained(model_path)
    model = SentenceClassifier(encoder, train.labels, config.normalize).to(device)
    steps_per_epoch = math.ceil(len(pairs) / train_cfg.batch_size)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * steps_per_epoch))
    optimizer = build_optimizer(model.encoder, train_cfg.lr, train_cfg.weight_decay)  # the head is fitted afterwards, not trained
    scheduler = linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)
    facts = {"train_examples": len(chosen), "pairs": len(pairs), "total_steps": total_steps, "labels": train.labels, "model": model_path}
    save = lambda folder: outputs.save_model_atomic(model, tokenizer, folder)  # noqa: E731
    progress = run.start(model, optimizer, scheduler, save, **facts, loss=config.loss)

    # ---- contrastive stage --------------------------------------------------------------------
    started = time.perf_counter()

    # No dev evaluation mid-stage: the sentence vectors are scored once the head is fitted on them.
    batches = _pair_batches(pairs, train_cfg.seed, train_cfg.batch_size, steps_per_epoch)
    step = _contrastive_step(config, run, model, features, tokenizer)
    fit(run, Loop(model, optimizer, scheduler, total_steps, batches, step, show_progress=show_progress))

    # ---- the head: logistic regression on the tuned sentence vectors ----------------------------
    e2e_epochs = end_to_end_epochs(config.end_to_end_epochs, min(Counter(features.labels).values()))
    if e2e_epochs and progress.step % (train_cfg.save_steps or total_steps + 1):
        run.checkpoint()  # the end of the contrastive stage: a stop in the next stage resumes from here
    head_score = fit_head(model, features, tokenizer.pad_token_id, config.head_c, train_cfg.seed, device)
    e2e_steps = end_to_end(model, features, tokenizer.pad_token_id, config, run, e2e_epochs) if e2e_epochs else 0
    wall = time.perf_counter() - started
    run.publish(from_best=False)
    final = kind.evaluate(model, dev, tokenizer.pad_token_id, data_cfg, device=device) if dev else {}
    final.update(
        examples=len(chosen),
        pairs=len(pairs),
        steps=progress.step,
        end_to_end_steps=e2e_steps,
        head_train_accuracy=round(head_score, 4),
        wall_s=round(wall, 2),
        train_samples_per_s=round(run.throughput()[0], 2),
    )
    return run.finish(final)


def _read(config: FewshotConfig, kind, run: Run, run_config: dict, tokenizer, train_path: str, dev_path: str | None):
    """K examples per class (all, without `shots`), the contrastive pairs drawn from them, and the dev data.
    Returns (train, chosen rows, their features, pairs, dev)."""
    train_cfg, data_cfg = config.train, config.data
    train = kind.load_train(train_path, data_cfg, tokenizer)
    everything = train.features.labels
    chosen = sample_per_class(everything, config.shots, train_cfg.seed, train.labels, train_path) if config.shots else list(range(len(everything)))
    features = subset(train.features, chosen)
    pairs = contrastive_pairs(features.labels, config.rounds, train_cfg.seed, train.labels, train_path)
    run_config.update(train.info)
    run_config["labels"] = train.labels
    run_config["fewshot"] = {"examples": len(chosen), "pairs": len(pairs), "rows": chosen}  # rows of the training file used
    dev = None
    if dev_path:
        label2id = {n: i for i, n in enumerate(train.labels)}
        dev = kind.load_eval(dev_path, data_cfg, tokenizer, label2id, run_config, limit=data_cfg.max_dev_examples)
    run.write_config(run_config)
    return train, chosen, features, pairs, dev


def _pair_batches(pairs: list, seed: int, batch_size: int, steps_per_epoch: int):
    """epoch -> its batches of pairs: the drawn order first, then reshuffled each epoch."""

    def epoch_batches(epoch: int) -> list:
        order = list(pairs)
        if epoch:
            random.Random(seed + epoch).shuffle(order)
        return [order[k * batch_size : (k + 1) * batch_size] for k in range(steps_per_epoch)]

    return epoch_batches


def _contrastive_step(config: FewshotConfig, run: Run, model: SentenceClassifier, features: Features, tokenizer):
    """One step over a batch of (i, j, target) pairs: each text embedded once, the pair loss on its two vectors."""
    device = run.accelerator.device

    def step(batch_pairs) -> Step:
        needed = sorted({i for i, j, _ in batch_pairs} | {j for i, j, _ in batch_pairs})
        where = {index: row for row, index in enumerate(needed)}
        batch = {k: t.to(device) for k, t in collate(features, needed, tokenizer.pad_token_id).items()}
        with run.micro_batch(model, last=True):
            vectors = model.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")).float()
            u = vectors[[where[i] for i, _, _ in batch_pairs]]
            v = vectors[[where[j] for _, j, _ in batch_pairs]]
            target = torch.tensor([t for _, _, t in batch_pairs], device=device)
            loss = pair_loss(u, v, target, config.loss, config.margin)
        return Step(run.backward(loss), len(batch_pairs))

    return step


def end_to_end(model: SentenceClassifier, features: Features, pad_id: int, config: FewshotConfig, run: Run, epochs: float) -> int:
    """SetFit's end-to-end stage: the tuned encoder and the fitted head trained together with cross-entropy
    on the K x C examples. Seconds long, so not checkpointed: a stop here ends the run, and `--resume`
    starts again from the contrastive stage's last checkpoint (refits the head, repeats this stage), which
    gives the same model. Returns the steps taken."""
    train_cfg, accelerator = config.train, run.accelerator
    n = len(features.lengths)
    steps_per_epoch = math.ceil(n / train_cfg.batch_size)
    total = max(1, math.ceil(epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": config.end_to_end_lr}, {"params": model.head.parameters(), "lr": config.end_to_end_head_lr}],
        weight_decay=0.0,
    )
    scheduler = linear_schedule(optimizer, 0, total)
    order = list(range(n))
    model.train()
    for step in range(total):
        epoch, k = divmod(step, steps_per_epoch)
        if k == 0:
            random.Random(train_cfg.seed + 7_919 * (epoch + 1)).shuffle(order)
        rows = order[k * train_cfg.batch_size : (k + 1) * train_cfg.batch_size]
        batch = {key: t.to(accelerator.device) for key, t in collate(features, rows, pad_id, torch.long).items()}
        with accelerator.autocast():
            loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer_step(accelerator, model, optimizer, scheduler, train_cfg.max_grad_norm)
        if (step + 1) % train_cfg.logging_steps == 0 or step + 1 == total:
            run.log.write(event="train", stage="end_to_end", step=run.state.step, end_to_end_step=step + 1, loss=loss.item())
        signum = run.stop_requested()
        if signum is not None:
            run.log.write(event="stopped", step=run.state.step, stage="end_to_end", signal=signal.Signals(signum).name)
            raise RunStopped(signum, run.state.step, run.out)
    model.eval()
    return total


@torch.no_grad()
def fit_head(model: SentenceClassifier, features: Features, pad_id: int, c: float, seed: int, device) -> float:
    """Set `model.head` to a logistic regression fitted on the examples' vectors; its training accuracy."""
    from sklearn.linear_model import LogisticRegression

    model.eval()
    vectors = []
    for start in range(0, len(features.lengths), 64):
        rows = list(range(start, min(start + 64, len(features.lengths))))
        batch = {k: t.to(device) for k, t in collate(features, rows, pad_id).items()}
        vectors.append(model.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")).float().cpu())
    x, y = torch.cat(vectors).numpy(), features.labels
    probe = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    coef, bias = torch.tensor(probe.coef_, dtype=torch.float32), torch.tensor(probe.intercept_, dtype=torch.float32)
    weight = torch.zeros_like(model.head.weight)
    offset = torch.zeros_like(model.head.bias)
    if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) is softmax over logits (-(w.x + b) / 2, (w.x + b) / 2)
        weight[probe.classes_[1]], offset[probe.classes_[1]] = coef[0] / 2, bias[0] / 2
        weight[probe.classes_[0]], offset[probe.classes_[0]] = -coef[0] / 2, -bias[0] / 2
    else:
        for row, label in enumerate(probe.classes_):
            weight[label], offset[label] = coef[row], bias[row]
    model.head.weight.copy_(weight)
    model.head.bias.copy_(offset)
    return float(probe.score(x, y))
