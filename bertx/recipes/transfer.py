"""Cross-domain and cross-lingual transfer: train on sources, score zero-shot on targets, one matrix per method.

    check every file, every unlabelled text and every target's labels        (one clear line, before training)
    for each method:
        plain          fine-tune on each source once                 -> score on every target
        dapt           masked-LM on target t's unlabelled text first -> fine-tune on each source -> score on t
        aux-mlm        fine-tune on each source + MLM loss on t's text (UDALM-style mixed objective) -> score on t
        dapt+aux-mlm   both
    -> per method: matrix (rows: sources, or `all` for one model on all of them; columns: targets) as
       JSON, Markdown and a heatmap PNG, with the in-domain cells, the off-diagonal mean and the transfer
       gap (in-domain score - target score); adaptation methods also show the change against plain
    -> summary.json / summary.md: one line per method

A cell is in-domain when the target has the name of a source the row was trained on; the row's
in-domain score is the mean of those cells (or, with no such target, the source's own dev score).
Checkpoints are picked on the source's dev file only: target labels are never seen before scoring.

Every run is an ordinary `bertx finetune` / `bertx pretrain` / `bertx multitask` run in its own
folder; finished runs are reused when the command is run again, and an interrupted one resumes from
its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from statistics import mean
from typing import Optional

from bertx import runfolder
from bertx.config import (
    MultitaskConfig,
    ObjectiveConfig,
    PretrainConfig,
    PretrainDataConfig,
    PretrainModelConfig,
    PretrainTrainConfig,
    TaskEntry,
    TransferConfig,
    TransferSource,
    TransferTarget,
)
from bertx.data.conll import read_tagged
from bertx.data.examples import read_examples
from bertx.data.text_corpus import read_documents
from bertx.errors import BertxError, DataError
from bertx.evaluation.transfer_report import describe, summary_markdown, write_method
from bertx.metrics.transferability import agreement
from bertx.recipes.sources import write_predicted
from bertx.tasks import get_task
from bertx.training import outputs
from bertx.training.accelerator import resolve_precision
from bertx.data.hf_datasets import local_file
from bertx.console import say

JOINT = "all"
# Weights, deleted once a model is scored (unless keep_models): the scores are the result. A joint row
# also has the multi-task folder's encoder and heads and its exported model.
MODEL_FILES = ("model.safetensors", "best", "checkpoints", "model", "multitask/model.safetensors", "multitask/heads")


def transfer(config: TransferConfig, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Run every method's source x target matrix; write the matrices and a summary into `config.output`.

    Returns:
        The summary: per method, the matrix, in-domain scores, off-diagonal mean and transfer gaps (points).
    """
    check_inputs(config)
    out = Path(config.output)
    reads = [config.model.name_or_path] + [config.resolve(p) for s in config.sources for p in (s.train, s.dev) if p]
    reads += [config.resolve(p) for t in config.targets for p in (t.eval, *t.unlabelled, t.rank_on) if p]
    with outputs.claimed_folder(out, config.model_dump(mode="json"), overwrite, reads):
        return _matrices(config, out, show_progress)


def _matrices(config: TransferConfig, out: Path, show_progress: bool) -> dict:
    started = time.perf_counter()
    rows = row_sources(config)
    metric = config.train.metric_for_best or get_task(config.task).main_metric
    runner = _Runner(config, out, metric, show_progress)

    methods: dict[str, dict] = {}
    predictions: dict[str, dict] = {}  # row -> target -> estimator -> score (plain rows, with `predict:`)
    for method in config.methods:
        values: list[list[Optional[float]]] = []
        source_dev: list[Optional[float]] = []
        for row, sources in rows.items():
            if method == "plain":  # one model per row, scored on every target
                runs = [(out / "plain" / row, config.targets, None)]
            else:  # adapted to the target: one model per (row, target)
                runs = [(out / method / f"{row}-to-{t.name}", [t], t) for t in config.targets]
            scores: dict = {}
            for folder, targets, adapted_to in runs:
                scores.update(runner.scores(folder, sources, targets, method, adapted_to))
            values.append([scores[t.name] for t in config.targets])
            source_dev.append(scores.get("source_dev"))
            if method == "plain" and scores.get("predicted"):
                predictions[row] = scores["predicted"]
        methods[method] = describe(rows, config.targets, values, source_dev)

    plain = methods.get("plain")
    for method, result in methods.items():
        reference = plain["values"] if plain and method != "plain" else None
        write_method(out, list(row_sources(config)), [t.name for t in config.targets], method, result, reference, metric)
    summary = {
        "task": config.task,
        "metric": metric,
        "rows": list(rows),
        "columns": [t.name for t in config.targets],
        "methods": methods,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if plain and plain["off_diagonal_mean"] is not None:
        for result in methods.values():
            mean_off = result["off_diagonal_mean"]
            result["off_diagonal_vs_plain"] = None if mean_off is None else round(mean_off - plain["off_diagonal_mean"], 2)
    if config.predict and plain:
        summary["predicted"] = predicted_ranking(config, plain, predictions, out)
    runfolder.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    runfolder.write_text(out / "summary.md", summary_markdown(summary))
    return summary


def predicted_ranking(config: TransferConfig, plain: dict, predictions: dict[str, dict], out: Path) -> dict:
    """Each target's sources (itself left out) ranked by the estimates made on its `rank_on:` examples,
    against the plain matrix's measured scores: Kendall's tau and top-1 regret -> predicted.json / .md."""
    rows = list(row_sources(config))
    targets = [t.name for t in config.targets if t.rank_on]
    scores = {e: {t: {} for t in targets} for e in config.predict}
    measured: dict[str, dict[str, float]] = {t: {} for t in targets}
    for row, by_target in predictions.items():
        for t in targets:
            if row == t or t not in by_target or row not in rows:
                continue
            measured[t][row] = plain["values"][rows.index(row)][[c.name for c in config.targets].index(t)]
            for e in config.predict:
                scores[e][t][row] = by_target[t].get(e)
    measured = {t: m for t, m in measured.items() if len(m) >= 2}  # a ranking needs two sources
    scores = {e: {t: s for t, s in by_target.items() if t in measured} for e, by_target in scores.items()}
    found = {"scores": scores, "measured": measured, "agreement": {e: agreement(scores[e], measured) for e in config.predict} if measured else {}}
    write_predicted(
        out,
        found,
        list(measured),
        "Predicted source ranking (frozen features of each source's model on "
        "the target's `rank_on:` examples) against the measured zero-shot scores; regret in points.",
    )
    return found


def row_sources(config: TransferConfig) -> dict[str, list[TransferSource]]:
    """The matrix rows: one per source, and/or `all` (one model trained on every source together)."""
    rows = {s.name: [s] for s in config.sources} if config.train_on != "all" else {}
    if config.train_on != "each":
        rows[JOINT] = list(config.sources)
    return rows


class _Runner:
    """Trains (or reuses) one row model and scores it on targets; keeps DAPT encoders per target."""

    def __init__(self, config: TransferConfig, out: Path, metric: str, show_progress: bool):
        self.config, self.out, self.metric, self.show_progress = config, out, metric, show_progress
        self.rank_reads: dict = {}  # each target's `rank_on:` file tokenised once for every source's model

    def scores(
        self,
        folder: Path,
        sources: list[TransferSource],
        targets: list[TransferTarget],
        method: str = "plain",
        target: Optional[TransferTarget] = None,
    ) -> dict:
        """{target name: main metric in points, "source_dev": the source's dev score} of one trained model."""
        from bertx.recipes.finetune import finetune  # looked up at call time: tests replace it to prove reuse

        done = folder / "scores.json"
        if done.is_file():
            return json.loads(done.read_text(encoding="utf-8"))
        cfg = self.config
        start_from = str(self.dapt_encoder(target)) if "dapt" in method else None
        aux_text = [data_file(cfg, p) for p in target.unlabelled] if "aux-mlm" in method else None
        say(f"[transfer] {folder.relative_to(self.out)} ...")
        if len(sources) == 1:
            model_dir = folder
            if not (folder / "metrics.json").is_file():
                run = cfg.source_config(sources[0], str(folder), start_from, aux_text)
                resume = (folder / "checkpoints").is_dir()
                finetune(run, resume=resume, overwrite=not resume, show_progress=self.show_progress)
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        else:
            model_dir, metrics = self.joint_model(folder, sources, start_from)
        scores = {"source_dev": round(100 * metrics[self.metric], 2) if self.metric in metrics else None}
        scores.update(self.evaluate(model_dir, targets))
        if cfg.predict and method == "plain" and len(sources) == 1:  # before the model's weights go
            scores["predicted"] = self.estimates(model_dir, folder.name)
        runfolder.write_json(done, scores)
        if not cfg.keep_models:
            for name in MODEL_FILES:
                path = folder / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return scores

    def joint_model(self, folder: Path, sources: list[TransferSource], start_from: Optional[str]) -> tuple[Path, dict]:
        """One model on all sources together: a multi-task run whose tasks share one head, exported as a plain model."""
        from bertx.recipes.multitask import multitask
        from bertx.recipes.task_folders import export_task

        cfg = self.config
        model_dir = folder / "model"
        if not (model_dir / runfolder.RUN_FILE).is_file():
            data = cfg.data.model_copy(update={"train": None, "dev": None})
            tasks = [
                TaskEntry(name=s.name, kind=cfg.task, train=s.train, dev=s.dev, head="joint", data=data, metric=cfg.train.metric_for_best)
                for s in sources
            ]
            model = cfg.model.model_copy(update={"name_or_path": start_from}) if start_from else cfg.model
            run = MultitaskConfig(
                output=str(folder / "multitask"),
                data_dir=cfg.data_dir,
                tasks=tasks,
                model=model,
                train=cfg.train.model_copy(update={"metric_for_best": None}),
            )
            resume = (folder / "multitask" / "checkpoints").is_dir()
            multitask(run, resume=resume, overwrite=not resume, show_progress=self.show_progress)
            export_task(folder / "multitask", sources[0].name, model_dir, overwrite=True)
            shutil.rmtree(folder / "multitask" / "checkpoints", ignore_errors=True)
        final = json.loads((folder / "multitask" / "metrics.json").read_text(encoding="utf-8"))
        mean_dev = [m[self.metric] for m in final["tasks"].values() if self.metric in m]
        return model_dir, {self.metric: mean(mean_dev)} if mean_dev else {}

    def estimates(self, model_dir: Path, row: str) -> dict[str, dict]:
        """{target: {estimator: score}} of one source's model on each target's `rank_on:` examples."""
        from bertx.evaluation.rank import rank

        cfg, found = self.config, {}
        for target in cfg.targets:
            if target.rank_on and target.name != row:
                report = rank(
                    data_file(cfg, target.rank_on),
                    [str(model_dir)],
                    cfg.task,
                    tuple(cfg.predict),
                    max_length=cfg.data.max_length,
                    seed=cfg.train.seed,
                    names=[row],
                    data=cfg.data,
                    reads=self.rank_reads,
                )
                result = report["candidates"][0]
                found[target.name] = {**result["scores"], "seconds": result["seconds"]}
        return found

    def evaluate(self, model_dir: Path, targets: list[TransferTarget]) -> dict[str, float]:
        from bertx.evaluation.evaluate import evaluate_loaded
        from bertx.inference.loading import load_trained

        trained = load_trained(model_dir, bf16=resolve_precision(self.config.train.precision) == "bf16")
        scores = {}
        for target in targets:
            metrics, _ = evaluate_loaded(trained, data_file(self.config, target.eval), limit=self.config.data.max_dev_examples)
            scores[target.name] = round(100 * metrics[self.metric], 2)
        return scores

    def dapt_encoder(self, target: TransferTarget) -> Path:
        """The encoder after masked-LM training on the target's unlabelled text (trained once per target, then kept)."""
        from bertx.recipes.pretrain import pretrain

        cfg, folder = self.config, self.out / "dapt-encoders" / target.name
        if (folder / "metrics.json").is_file():
            return folder
        d = cfg.dapt
        run = PretrainConfig(
            output=str(folder),
            data=PretrainDataConfig(
                train=target.unlabelled,
                documents=cfg.unlabelled_documents,
                max_length=d.max_length,
                eval_fraction=0.05,
                max_eval_sequences=200,
                data_dir=cfg.data_dir,
            ),
            model=PretrainModelConfig(name_or_path=cfg.model.name_or_path),
            objective=ObjectiveConfig(mlm_probability=d.mlm_probability, whole_word_mask=d.whole_word_mask, sentence_task="none"),
            train=PretrainTrainConfig(
                epochs=d.epochs,
                max_steps=d.max_steps,
                batch_size=d.batch_size,
                lr=d.lr,
                precision=cfg.train.precision,
                seed=cfg.train.seed,
                eval_steps=None,
                save_steps=100,
                head_warmup_steps=d.head_warmup_steps,
            ),
        )
        say(f"[transfer] dapt-encoders/{target.name} ...")
        resume = (folder / "checkpoints").is_dir()
        pretrain(run, resume=resume, overwrite=not resume, show_progress=self.show_progress)
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        return folder


# ---- checks before any training -----------------------------------------------------------------


def check_inputs(config: TransferConfig) -> None:
    """Every file exists, every target has readable unlabelled text where a method needs it, and every
    target's labels are labels its sources were trained on: one line naming the problem, before training."""
    for source in config.sources:
        for role, path in (("train", source.train), ("dev", source.dev)):
            if path and not Path(data_file(config, path)).is_file():
                raise BertxError(f"source {source.name!r}: {role} file {data_file(config, path)}: file not found")
    adapting = [m for m in config.methods if m != "plain"]
    for target in config.targets:
        if not Path(data_file(config, target.eval)).is_file():
            raise BertxError(f"target {target.name!r}: eval file {data_file(config, target.eval)}: file not found")
        if adapting and not target.unlabelled:
            raise BertxError(
                f"target {target.name!r}: method {adapting[0]} needs the target's unlabelled text; list files "
                "under `unlabelled:` (a labelled file may be given: its labels are dropped)"
            )
        for path in target.unlabelled:
            check_unlabelled(target.name, data_file(config, path), config.unlabelled_documents)
        if config.predict and target.rank_on and not Path(data_file(config, target.rank_on)).is_file():
            raise BertxError(f"target {target.name!r}: rank_on file {data_file(config, target.rank_on)}: file not found")
    spec = get_task(config.task)
    if spec.label_kind not in ("class", "classes", "tags"):
        return  # scores and answer spans have no label set to disagree on
    known = {s.name: label_set(data_file(config, s.train), spec, config) for s in config.sources}
    for target in config.targets:
        path = data_file(config, target.eval)
        labels = label_set(path, spec, config)
        for source, source_labels in known.items():
            unknown = sorted(labels - source_labels)
            if unknown:
                what = "entity types" if spec.label_kind == "tags" else "labels"
                raise BertxError(
                    f"target {target.name!r}: {path}: {what} {', '.join(unknown)} never occur in source "
                    f"{source!r} ({', '.join(sorted(source_labels))}); a model trained there cannot predict them"
                )


def check_unlabelled(target: str, path: str, documents: str) -> None:
    if not Path(path).is_file():
        raise BertxError(f"target {target!r}: unlabelled text file {path}: file not found")
    try:
        first = next(iter(read_documents([path], documents)), None)  # type: ignore[arg-type]
    except DataError as err:
        raise BertxError(f"target {target!r}: unlabelled text: {err}") from None
    if first is None:
        raise BertxError(f"target {target!r}: unlabelled text file {path}: holds no text")


def label_set(path: str, spec, config: TransferConfig) -> set[str]:
    """The labels a file uses: class names, or entity types (B-/I- stripped) for tagging."""
    if spec.label_kind == "tags":
        return {tag.split("-", 1)[-1] for sentence in read_tagged(path) for tag in sentence.tags if tag != "O"}
    d = config.data
    examples, _ = read_examples(path, spec, d.text_column, d.text_pair_column, d.label_column, d.label_separator)
    if spec.label_kind == "classes":
        return {str(label) for e in examples for label in e.label}
    return {str(e.label) for e in examples}


def data_file(config: TransferConfig, path: str | None) -> str | None:
    """A configured path as a file to read: `{data_dir}` expanded, a dataset reference written out."""
    return local_file(config.resolve(path)) if path else path
