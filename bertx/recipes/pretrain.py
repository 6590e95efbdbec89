"""Pretraining recipe: masked LM (+ next-sentence or sentence-order prediction), from scratch or continued.

    config -> tokenizer (+ masking vocabulary) -> a new BERT from a size preset, or an existing encoder
    -> text files tokenised once into a memory-mapped cache -> held-out documents -> per epoch:
    instances (packed blocks or sentence pairs) -> for each global batch: assemble, mask, forward
    (vocabulary scores on masked positions only), backward, clip, step, log, evaluate, checkpoint
    -> the final model as a `BertForPreTraining` folder

Continued pretraining of an encoder on a domain's text (domain-adaptive pretraining) is the same loop
started from `--model DIR`. The loop, resume and checkpoints follow the fine-tuning recipe; one
process or many under `accelerate launch` / `torchrun` run the same optimisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bertx.config import PretrainConfig
from bertx.data.masking import MaskingSpec, mlm_batch
from bertx.data.pretrain_instances import build_instances, mixed_instances
from bertx.data.token_cache import TokenCache, build_cache
from bertx.errors import BertxError
from bertx.models.encoder import load_tokenizer, quiet_transformers, resolve_model_path
from bertx.models.pretraining import PretrainingObjective, architecture, check_vocabulary, continued_model, new_model
from bertx.training import outputs
from bertx.training.accelerator import make_accelerator
from bertx.training.optim import build_optimizer, linear_schedule
from bertx.training.fit import Loop, Step, fit, micro_slices
from bertx.training.run import Run
from bertx.data.hf_datasets import local_file
from bertx.console import say


@dataclass
class Corpus:
    """Training and held-out text: caches and document ranges (one per training file)."""

    train: TokenCache
    train_ranges: list[tuple[int, int]]
    weights: list[float]
    eval: TokenCache | None
    eval_ranges: dict[str, list[tuple[int, int]]]  # language -> held-out document ranges

    @property
    def train_documents(self) -> int:
        return sum(end - first for first, end in self.train_ranges)

    def train_tokens(self) -> int:
        return sum(token_count(self.train, first, end) for first, end in self.train_ranges)


def token_count(cache: TokenCache, first_doc: int, end_doc: int) -> int:
    start, end = cache.document_tokens(first_doc, end_doc)
    return end - start


def load_corpus(config: PretrainConfig, tokenizer, show_progress: bool) -> Corpus:
    data_cfg = config.data
    files = [entry.model_copy(update={"path": local_file(entry.path)}) for entry in data_cfg.train_files()]
    if not files:
        raise BertxError("no training text: pass --train FILE (plain text) or set data.train in the config")
    train = build_cache([f.path for f in files], tokenizer, [f.documents for f in files], data_cfg.cache_dir, show_progress)
    weights = [f.weight for f in files]
    if data_cfg.eval:
        held_out = build_cache(
            [local_file(p) for p in data_cfg.resolve(data_cfg.eval)], tokenizer, data_cfg.documents, data_cfg.cache_dir, show_progress
        )
        return Corpus(train, train.file_ranges(), weights, held_out, {"all": [(0, held_out.n_documents)]})
    # The last documents of each file are held out: contiguous ranges keep packed blocks simple, the
    # split stable, and every language present in the held-out text.
    train_ranges, eval_ranges = [], {}
    for entry, (first, end) in zip(files, train.file_ranges()):
        n_eval = min(end - first - 1, math.ceil((end - first) * data_cfg.eval_fraction)) if data_cfg.eval_fraction else 0
        split = end - max(n_eval, 0)
        train_ranges.append((first, split))
        if split < end:
            eval_ranges.setdefault(entry.language, []).append((split, end))
    return Corpus(train, train_ranges, weights, train if eval_ranges else None, eval_ranges)


def build_model(config: PretrainConfig, tokenizer, tokenizer_source: str):
    """The model to pretrain and a note of what it started from."""
    mc = config.model
    if not mc.from_scratch:
        path = resolve_model_path(mc.name_or_path)
        model, missing = continued_model(path, tokenizer, tokenizer_source)
        return model, {"start": path, "new_weights": missing}
    layers, hidden, heads = architecture(mc.preset, mc.layers, mc.hidden, mc.heads)
    model = new_model(tokenizer, layers, hidden, heads, max_position=max(512, config.data.max_length), dropout=mc.dropout)
    return model, {"start": "random", "layers": layers, "hidden": hidden, "heads": heads}


def pretrain(config: PretrainConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Pretrain (or continue pretraining) a BERT on plain text; write a `BertForPreTraining` folder.

    Args:
        config: the validated run config.
        resume: continue the run in `config.output` from its last checkpoint.
        overwrite: replace the bertx run `config.output` holds.
        show_progress: draw a progress bar on the main process.

    Returns:
        Final held-out metrics (MLM accuracy and perplexity, NSP/SOP accuracy) and run figures.

    Raises:
        RunStopped: SIGTERM or Ctrl-C; the step reached is checkpointed.
    """
    from accelerate.utils import set_seed

    train_cfg, data_cfg, oc = config.train, config.data, config.objective
    # During a head warm-up the encoder gets no gradient: data parallelism must accept unused weights.
    accelerator = make_accelerator(
        train_cfg.precision, find_unused_parameters=train_cfg.head_warmup_steps > 0, report_to=train_cfg.report_to, out=config.output
    )
    set_seed(train_cfg.seed)
    quiet_transformers()

    # ---- tokenizer and model: checked before the output folder is claimed ----------------------
    tokenizer_source = config.model.tokenizer or resolve_model_path(config.model.name_or_path)
    tokenizer = load_tokenizer(tokenizer_source)
    spec = MaskingSpec.from_tokenizer(tokenizer, oc.mlm_probability, oc.whole_word_mask, source=tokenizer_source)
    model, origin = build_model(config, tokenizer, tokenizer_source)
    check_vocabulary(model, tokenizer, tokenizer_source)
    if data_cfg.max_length > model.config.max_position_embeddings:
        raise BertxError(f"data.max_length {data_cfg.max_length} exceeds the model's {model.config.max_position_embeddings} positions")
    run_config = config.model_dump(mode="json")
    reads = [config.model.name_or_path, config.model.tokenizer, *data_cfg.train_paths(), *data_cfg.resolve(data_cfg.eval)]
    with Run.open(config.output, run_config, accelerator, train_cfg, resume, overwrite, reads) as run:
        return _train(config, run, run_config, tokenizer, spec, model, origin, show_progress and run.main)


def _train(config: PretrainConfig, run: Run, run_config: dict, tokenizer, spec: MaskingSpec, model, origin: dict, show_progress: bool) -> dict:
    train_cfg, data_cfg, accelerator = config.train, config.data, run.accelerator
    corpus = load_corpus(config, tokenizer, show_progress)
    sequences = Sequences(config, corpus)
    instances, long_sentences = sequences.of_epoch(0)
    if len(instances) < train_cfg.batch_size:
        raise BertxError(
            f"{', '.join(data_cfg.train_paths())}: the text makes {len(instances)} training sequences of up to "
            f"{data_cfg.max_length} tokens, fewer than one batch ({train_cfg.batch_size}); add text or lower train.batch_size"
        )
    eval_sets, eval_rows = held_out_sets(config, corpus)
    run.write_config(run_config)

    steps_per_epoch = math.ceil(len(instances) / train_cfg.batch_size)
    total_steps = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * steps_per_epoch))
    optimizer = build_optimizer(model, train_cfg.lr, train_cfg.weight_decay)
    scheduler = linear_schedule(optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps)
    objective, optimizer = accelerator.prepare(PretrainingObjective(model), optimizer)
    progress = run.start(
        model,
        optimizer,
        scheduler,
        lambda folder: outputs.save_model_atomic(model, tokenizer, folder),
        total_steps=total_steps,
        train_tokens=corpus.train_tokens(),
        train_documents=corpus.train_documents,
        sequences_per_epoch=len(instances),
        eval_sequences=len(eval_rows),
        sequences_per_file=dict(zip(data_cfg.train_paths(), sequences.per_file)),
        parameters=sum(p.numel() for p in model.parameters()),
        processes=accelerator.num_processes,
        **origin,
    )
    if run.resume and progress.epoch:
        instances, long_sentences = sequences.of_epoch(progress.epoch)
    if run.main:
        _say_notes(long_sentences, data_cfg.max_length, origin)
    latest: dict[str, float] = {}  # the last evaluation's metrics
    loop = Loop(
        objective,
        optimizer,
        scheduler,
        total_steps,
        epoch_batches=sequences.batches,
        step=_step(config, run, objective, corpus, spec),
        evaluate=_evaluation(config, run, objective, corpus, spec, eval_sets, eval_rows, show_progress),  # without held-out text: the step is logged
        record=lambda metrics: (latest.clear(), latest.update(metrics)),
        evaluate_each_epoch=False,  # evaluations every eval_steps and at the end; an epoch of text is arbitrary
        show_progress=show_progress,
    )
    fitted = fit(run, loop)

    # ---- publish: the final model (pretraining keeps no "best") ------------------------------------
    run.publish(from_best=False)
    final = dict(latest)
    final.update(steps=progress.step, epochs=round(progress.step / steps_per_epoch, 3), wall_s=round(fitted.wall_s, 2))
    final.update(tokens_per_s=round(fitted.tokens_per_s, 1), train_tokens_seen=progress.tokens_seen)
    return run.finish(final)


def _say_notes(long_sentences: int, max_length: int, origin: dict) -> None:
    if long_sentences:
        say(f"note: {long_sentences} sentences are longer than max_length={max_length} tokens and were cut into pieces")
    if origin.get("new_weights"):
        say(f"note: {origin['start']} has no pretraining heads; {len(origin['new_weights'])} head weights start fresh")


class Sequences:
    """The training sequences of each epoch (drawn again per epoch: other sentence pairs, other cut points),
    the last epoch's kept so that it is drawn once, and how many came from each file."""

    def __init__(self, config: PretrainConfig, corpus):
        self.config, self.corpus = config, corpus
        self.per_file: list[int] = []
        self.drawn: dict[int, np.ndarray] = {}

    def of_epoch(self, epoch: int) -> tuple[np.ndarray, int]:
        """(sequences, sentences longer than max_length that were cut)."""
        data_cfg, train_cfg = self.config.data, self.config.train
        corpus = self.corpus
        instances, cut, counts = mixed_instances(
            corpus.train,
            corpus.train_ranges,
            corpus.weights,
            data_cfg.max_length,
            self.config.objective.sentence_task,
            train_cfg.seed,
            epoch,
            data_cfg.short_seq_prob,
        )
        self.per_file[:] = counts
        self.drawn = {epoch: instances}
        return instances, cut

    def batches(self, epoch: int) -> list[np.ndarray]:
        rows = self.drawn[epoch] if epoch in self.drawn else self.of_epoch(epoch)[0]
        size = self.config.train.batch_size
        return [rows[i : i + size] for i in range(0, len(rows), size)]


def held_out_sets(config: PretrainConfig, corpus) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Held-out rows per language (one language when it is one file, or eval files are given), and all of them."""
    data_cfg, train_cfg = config.data, config.train
    eval_sets: dict[str, np.ndarray] = {}
    for language, ranges in corpus.eval_ranges.items():
        rows = [
            build_instances(
                corpus.eval, first, end, data_cfg.max_length, config.objective.sentence_task, train_cfg.seed + 1, 0, data_cfg.short_seq_prob
            )[0]
            for first, end in ranges
        ]
        eval_sets[language] = np.concatenate(rows)[: max(1, data_cfg.max_eval_sequences // len(corpus.eval_ranges))]
    return eval_sets, (np.concatenate(list(eval_sets.values())) if eval_sets else np.zeros((0, 5), dtype=np.int64))


def _evaluation(config: PretrainConfig, run: Run, objective, corpus, spec: MaskingSpec, eval_sets: dict, eval_rows: np.ndarray, show_progress: bool):
    """Held-out masked-token accuracy and perplexity (each language's accuracy too: a gain in one can hide a loss
    in another), logged with the step even when there is no held-out text."""
    train_cfg, device, progress = config.train, run.accelerator.device, run.state

    def held_out(rows) -> dict:
        unwrapped = run.accelerator.unwrap_model(objective)
        return evaluate_pretraining(unwrapped, corpus.eval.tokens, rows, spec, train_cfg.batch_size, device, train_cfg.seed)

    def evaluate() -> dict[str, float]:
        metrics = {}
        if len(eval_rows):
            metrics = held_out(eval_rows)
            if len(eval_sets) > 1:
                for language, rows in eval_sets.items():
                    metrics[f"mlm_accuracy_{language}"] = held_out(rows)["mlm_accuracy"]
        progress.last_eval_step = progress.step
        run.log.write(event="eval", step=progress.step, epoch=progress.epoch, **metrics)
        if show_progress and metrics:
            say(f"step {progress.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return metrics

    return evaluate


def _step(config: PretrainConfig, run: Run, objective, corpus, spec: MaskingSpec):
    """One optimizer step over a global batch of sequences, masked whole with a generator that depends on
    (seed, step) only: every process draws the same masks and takes its slice, so 1 and N processes optimise
    the same thing, and a resumed run masks exactly as the first would have."""
    train_cfg, progress = config.train, run.state
    world, device = run.accelerator.num_processes, run.accelerator.device

    def step(rows: np.ndarray) -> Step:
        generator = torch.Generator().manual_seed(train_cfg.seed * 1_000_003 + progress.step)
        full = mlm_batch(corpus.train.tokens, rows, spec, generator)
        global_masked = max(1, int((full["labels"] != -100).sum()))
        step_loss, step_correct, step_masked = 0.0, 0, 0
        for part, share, last in micro_slices(run, list(range(len(rows))), train_cfg.grad_accum):
            width = int(full["attention_mask"][part].sum(1).max())  # drop padding the slice does not need
            batch = {key: (t[part][:, :width] if t.dim() == 2 else t[part]).to(device) for key, t in full.items()}
            with run.micro_batch(objective, last=last):
                losses = objective(**batch, heads_only=progress.step < train_cfg.head_warmup_steps)
                # Mean over the global batch: MLM per masked token, NSP/SOP per pair. DDP averages gradients
                # over processes, hence the factor `world` in the MLM denominator.
                loss = losses.mlm_sum * (world / global_masked)
                if losses.sentence_loss is not None:
                    loss = loss + losses.sentence_loss * share
            step_loss += run.backward(loss)
            step_correct += int(losses.mlm_correct)
            step_masked += int(losses.mlm_count)
        accuracy = step_correct / max(1, step_masked)
        return Step(
            step_loss,
            len(rows),
            tokens=int(full["attention_mask"].sum()),
            shown={"mlm_acc": f"{accuracy:.3f}"},
            logged=lambda: {"mlm_accuracy": accuracy},
        )

    return step


@torch.no_grad()
def evaluate_pretraining(
    objective: PretrainingObjective, tokens: np.ndarray, rows: np.ndarray, spec: MaskingSpec, batch_size: int, device, seed: int
) -> dict[str, float]:
    """Held-out MLM accuracy and perplexity (and NSP/SOP accuracy), with the same masks at every evaluation."""
    was_training = objective.training
    objective.eval()
    generator = torch.Generator().manual_seed(seed + 7)
    loss_sum = correct = masked = 0.0
    pair_correct = pairs = 0
    for start in range(0, len(rows), batch_size):
        batch = {k: t.to(device) for k, t in mlm_batch(tokens, rows[start : start + batch_size], spec, generator).items()}
        losses = objective(**batch)
        count = int(losses.mlm_count)
        loss_sum += float(losses.mlm_sum)
        correct += int(losses.mlm_correct)
        masked += count
        if losses.sentence_correct is not None:
            pair_correct += int(losses.sentence_correct)
            pairs += losses.sentence_count
    objective.train(was_training)
    mean_loss = loss_sum / max(1, masked)
    metrics = {"mlm_accuracy": correct / max(1, masked), "mlm_loss": mean_loss, "perplexity": math.exp(min(mean_loss, 50))}
    if pairs:
        metrics["sentence_accuracy"] = pair_correct / pairs
    return metrics
