"""The `bertx` command: thin typer wrappers that parse options and call importable functions.

A `BertxError` (bad data, config, model or output folder) prints one line and exits with status 2;
no traceback is shown for the user's mistakes.
"""

from __future__ import annotations

import json
import os
import sys
from functools import wraps
from pathlib import Path
from typing import List, Optional

import typer

from bertx.errors import BertxError, RunStopped

app = typer.Typer(add_completion=False, no_args_is_help=True, help="BERT knowledge transfer: pretrain, fine-tune, multi-task, distil, evaluate, predict.")


def _friendly(fn):
    """Turn user-input errors and Ctrl-C into one clear line instead of a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BertxError as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(2) from None
        except RunStopped as stop:
            typer.secho(f"{stop} ({stop.output})", err=True)
            raise typer.Exit(stop.exit_code) from None
        except KeyboardInterrupt:
            typer.secho("interrupted; a run continues from its last checkpoint with --resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _config_and_overrides(config: Optional[str], overrides: Optional[List[str]], flags: dict) -> tuple[Optional[str], list[str]]:
    """The YAML file (if any) and the dotted overrides: positional `key=value` items, then the options given."""
    overrides = list(overrides or [])
    if config and "=" in config and not Path(config).exists():
        overrides.insert(0, config)  # `bertx finetune train.lr=1e-4` with no YAML file
        config = None
    return config, overrides + [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]


@app.command()
@_friendly
def finetune(
    config: Optional[str] = typer.Argument(None, help="YAML run config (see configs/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. train.lr=5e-5."),
    task: Optional[str] = typer.Option(None, help="classification, pair-classification, regression, multilabel, ner, qa."),
    train: Optional[str] = typer.Option(None, help="Training file (TSV/CSV with header, or JSONL)."),
    dev: Optional[str] = typer.Option(None, help="Dev file, evaluated during training."),
    model: Optional[str] = typer.Option(None, help="Local HF model folder (default: packaged all-MiniLM-L6-v2)."),
    output: Optional[str] = typer.Option(None, help="Output folder."),
    epochs: Optional[float] = typer.Option(None, help="Epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Global batch size per optimizer step."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    max_length: Optional[int] = typer.Option(None, help="Max tokens per input; longer ones are truncated."),
    max_train_examples: Optional[int] = typer.Option(None, help="Use the first N training examples."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    eval_steps: Optional[int] = typer.Option(None, help="Evaluate every N steps (and at each epoch end)."),
    grad_accum: Optional[int] = typer.Option(None, help="Gradient-accumulation micro-batches per step."),
    early_stopping_patience: Optional[int] = typer.Option(None, help="Stop after N evaluations without improvement."),
    text_column: Optional[str] = typer.Option(None, help="Name of the text column."),
    text_pair_column: Optional[str] = typer.Option(None, help="Name of the second-text column."),
    label_column: Optional[str] = typer.Option(None, help="Name of the label column."),
    data_dir: Optional[str] = typer.Option(None, help="Root of the shared datasets ({data_dir} in configs)."),
    doc_stride: Optional[int] = typer.Option(None, help="NER/QA: tokens shared by consecutive windows of a long input."),
    max_query_length: Optional[int] = typer.Option(None, help="QA: longest question in tokens."),
    tag_scheme: Optional[str] = typer.Option(None, help="NER: bio or iob1 (converted to BIO)."),
    aux_mlm_text: Optional[List[str]] = typer.Option(None, help="Unlabelled text for an auxiliary masked-LM loss (repeatable)."),
    aux_mlm_weight: Optional[float] = typer.Option(None, help="Weight of the auxiliary MLM loss (default 0.5)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --output."),
    show_examples: int = typer.Option(5, help="Print predictions for the first N dev examples at the end."),
):
    """Fine-tune an encoder with a sequence head; write an HF-compatible model folder."""
    from bertx.config import load_config
    from bertx.recipes.finetune import finetune as run_finetune

    flags = {
        "task": task, "output": output, "data.train": train, "data.dev": dev, "model.name_or_path": model,
        "train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr, "data.max_length": max_length,
        "data.max_train_examples": max_train_examples, "train.seed": seed, "train.eval_steps": eval_steps,
        "train.grad_accum": grad_accum, "train.early_stopping_patience": early_stopping_patience,
        "data.text_column": text_column, "data.text_pair_column": text_pair_column,
        "data.label_column": label_column, "data.data_dir": data_dir, "data.doc_stride": doc_stride,
        "data.max_query_length": max_query_length, "data.tag_scheme": tag_scheme,
        "aux_mlm.text": list(aux_mlm_text) if aux_mlm_text else None, "aux_mlm.weight": aux_mlm_weight,
    }
    config, overrides = _config_and_overrides(config, overrides, flags)
    cfg = load_config(config, overrides)
    metrics = run_finetune(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun / accelerate launch only the main process reports
    _print_metrics(metrics, cfg.output)
    dev_path = cfg.data.resolve(cfg.data.dev)
    if show_examples and dev_path:
        _show_examples(cfg.output, dev_path, show_examples)


def _print_metrics(metrics: dict, output: str) -> None:
    shown = {k: v for k, v in metrics.items() if isinstance(v, float) and k not in ("wall_s", "train_samples_per_s")}
    typer.echo(f"\nmodel saved to {output}")
    typer.echo(
        "dev: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
        + f"  ({metrics['steps']} steps, {metrics['wall_s']:.0f}s, {metrics['train_samples_per_s']:.1f} samples/s)"
    )


def _show_examples(model_dir: str, dev_path: str, n: int) -> None:
    from bertx.inference.loading import load_trained

    trained = load_trained(model_dir)
    typer.echo("example predictions:")
    if trained.task.name == "ner":
        from bertx.data.conll import read_tagged
        from bertx.inference.entities import EntityPredictor
        from bertx.tasks.bio import entity_spans

        sentences = read_tagged(dev_path, limit=n)
        for s, (tags, _) in zip(sentences, EntityPredictor(trained).tag([s.words for s in sentences])):
            show = lambda spans: "; ".join(f"{t}: {' '.join(s.words[a:b])}" for t, a, b in spans) or "-"  # noqa: E731
            typer.echo(f"  [{show(entity_spans(tags))} | gold {show(entity_spans(s.tags))}] {' '.join(s.words)[:100]}")
        return
    if trained.task.name == "qa":
        from bertx.data.squad import read_qa
        from bertx.inference.answers import AnswerPredictor

        examples = read_qa(dev_path, articles=trained.data.dev_articles, limit=n)
        for ex, answer in zip(examples, AnswerPredictor(trained).predict_examples(examples)):
            typer.echo(f"  [{answer['answer']!r} p={answer['score']:.2f} | gold {ex.answers[0][0]!r}] {ex.question[:100]}")
        return
    from bertx.data.examples import read_examples
    from bertx.inference.predictor import Predictor

    predictor = Predictor.from_trained(trained)
    examples, _ = read_examples(dev_path, predictor.task, **predictor.reading_options(), limit=n)
    pairs = [ex.text_pair for ex in examples] if examples and examples[0].text_pair is not None else None
    for ex, pred in zip(examples, predictor.predict([ex.text for ex in examples], pairs)):
        guess = pred.get("label", pred.get("labels", pred.get("score")))
        confidence = f" p={pred['probs'][guess]:.2f}" if "label" in pred else ""
        text = ex.text if ex.text_pair is None else f"{ex.text} ||| {ex.text_pair}"
        typer.echo(f"  [{guess}{confidence} | gold {ex.label}] {text[:100]}")


@app.command()
@_friendly
def evaluate(
    model_dir: str = typer.Argument(..., help="Folder written by `bertx finetune`."),
    data: str = typer.Option(..., help="Labelled file to evaluate on."),
    batch_size: int = typer.Option(64, help="Examples per forward pass."),
    articles: Optional[str] = typer.Option(None, help="QA: START:END range of SQuAD articles (default: the run's dev range on its dev file)."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N examples only."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
):
    """Print the task's metrics of a trained model on a labelled file."""
    from bertx.evaluation.evaluate import evaluate as run_evaluate

    metrics = run_evaluate(model_dir, data, batch_size=batch_size, articles=articles, limit=limit)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    per_type = metrics.pop("per_type", None)
    for key, value in metrics.items():
        typer.echo(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")
    if per_type:
        typer.echo(f"\n{'type':>16}  precision  recall      f1  support")
        for name, row in per_type.items():
            typer.echo(f"{name:>16}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7d}")


@app.command()
@_friendly
def predict(
    model_dir: str = typer.Argument(..., help="Folder written by `bertx finetune`."),
    input: str = typer.Option(..., "--input", help="TSV/CSV/JSONL with text column(s), .txt with one text per line; "
                              "NER: also CoNLL columns; QA: SQuAD JSON or JSONL with question and context."),
    output: Optional[str] = typer.Option(None, help="JSONL output file (default: stdout)."),
    batch_size: int = typer.Option(128, help="Examples per forward pass."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 matrix products: faster on AVX512-BF16/AMX CPUs and GPUs."),
    input_format: str = typer.Option("auto", "--format", help="NER input: auto, text, conll or jsonl (auto: .conll/.bio/.iob are CoNLL, .txt is raw text)."),
):
    """Predict a file. Sequence tasks: label and probabilities per text; NER: entity spans per text, or a
    predicted-tag column added to a CoNLL file; QA: answer, character start/end and score per question."""
    from bertx.inference.predict_file import predict_file

    count = predict_file(model_dir, input, output, batch_size, bf16=bf16, input_format=input_format)
    if output:
        typer.echo(f"wrote {count} predictions to {output}", err=True)


@app.command()
@_friendly
def pretrain(
    config: Optional[str] = typer.Argument(None, help="YAML run config (see configs/pretrain-*.yaml)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. train.lr=1e-4."),
    train: Optional[List[str]] = typer.Option(None, help="Plain-text training file (repeat for several)."),
    eval_file: Optional[List[str]] = typer.Option(None, "--eval", help="Held-out text file (default: the last documents of the training text)."),
    model: Optional[str] = typer.Option(None, help="Continue pretraining this local HF folder (domain-adaptive)."),
    preset: Optional[str] = typer.Option(None, help="From scratch: tiny, mini, small, medium or base."),
    layers: Optional[int] = typer.Option(None, help="From scratch: transformer layers."),
    hidden: Optional[int] = typer.Option(None, help="From scratch: hidden size."),
    heads: Optional[int] = typer.Option(None, help="From scratch: attention heads."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder (from `bertx tokenizer train`); default: the model's."),
    documents: Optional[str] = typer.Option(None, help="blank (blank-line separated), line (one per line) or wikitext."),
    sentence_task: Optional[str] = typer.Option(None, help="none (MLM alone), nsp or sop."),
    whole_word_mask: Optional[bool] = typer.Option(None, "--whole-word-mask/--no-whole-word-mask", help="Mask whole words."),
    output: Optional[str] = typer.Option(None, help="Output folder."),
    max_length: Optional[int] = typer.Option(None, help="Tokens per sequence."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after N optimizer steps."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the text."),
    batch_size: Optional[int] = typer.Option(None, help="Sequences per optimizer step."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    data_dir: Optional[str] = typer.Option(None, help="Root of the shared datasets ({data_dir} in configs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --output."),
):
    """Pretrain a BERT with masked LM (+ NSP or SOP) from scratch, or continue an encoder on your text."""
    from bertx.config import PretrainConfig, load_config
    from bertx.recipes.pretrain import pretrain as run_pretrain

    flags = {
        "data.train": list(train) if train else None, "data.eval": list(eval_file) if eval_file else None,
        "model.name_or_path": model, "model.preset": preset, "model.layers": layers, "model.hidden": hidden,
        "model.heads": heads, "model.tokenizer": tokenizer, "data.documents": documents,
        "objective.sentence_task": sentence_task, "objective.whole_word_mask": whole_word_mask, "output": output,
        "data.max_length": max_length, "train.max_steps": max_steps, "train.epochs": epochs,
        "train.batch_size": batch_size, "train.lr": lr, "train.seed": seed, "data.data_dir": data_dir,
    }
    config, overrides = _config_and_overrides(config, overrides, flags)
    cfg = load_config(config, overrides, schema=PretrainConfig)
    metrics = run_pretrain(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    typer.echo(f"\nmodel saved to {cfg.output}")
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k not in ("wall_s", "tokens_per_s", "epochs"))
    typer.echo(f"held-out: {shown or '(no held-out text)'}  ({metrics['steps']} steps, {metrics['wall_s']:.0f}s, "
               f"{metrics['tokens_per_s']:.0f} tokens/s)")


@app.command()
@_friendly
def multitask(
    config: str = typer.Argument(..., help="YAML config with a `tasks:` list (see configs/multitask/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. sampling.strategy=annealed."),
    output: Optional[str] = typer.Option(None, help="Output folder."),
    model: Optional[str] = typer.Option(None, help="Local HF model folder (default: packaged all-MiniLM-L6-v2)."),
    sampling: Optional[str] = typer.Option(None, help="proportional, temperature, uniform, round-robin or annealed."),
    temperature: Optional[float] = typer.Option(None, help="T of temperature sampling (p ~ size^(1/T))."),
    epochs: Optional[float] = typer.Option(None, help="Epochs (one epoch = as many batches as all tasks hold)."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after N optimizer steps."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    data_dir: Optional[str] = typer.Option(None, help="Root of the shared datasets ({data_dir} in configs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --output."),
):
    """Train one shared encoder with a head per task; write encoder + heads into one folder."""
    from bertx.config import MultitaskConfig, load_config
    from bertx.recipes.multitask import multitask as run_multitask
    from bertx.recipes.multitask import task_table

    flags = {"output": output, "model.name_or_path": model, "sampling.strategy": sampling, "sampling.temperature": temperature,
             "train.epochs": epochs, "train.max_steps": max_steps, "train.lr": lr, "train.seed": seed, "data_dir": data_dir}
    cfg = load_config(*_config_and_overrides(config, overrides, flags), schema=MultitaskConfig)
    final = run_multitask(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    typer.echo(f"\nencoder and heads saved to {cfg.output} ({final['steps']} steps, {final['wall_s']:.0f}s, "
               f"{final['train_samples_per_s']:.1f} samples/s)")
    if final["tasks"]:
        typer.echo(task_table(final))
    typer.echo(f"export one task: bertx multitask-export {cfg.output} --task {cfg.tasks[0].name} --output DIR")


@app.command("multitask-export")
@_friendly
def multitask_export(
    mt_dir: str = typer.Argument(..., help="Folder written by `bertx multitask`."),
    task: str = typer.Option(..., help="Task to export."),
    output: str = typer.Option(..., help="Folder for the standalone model."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output folder."),
):
    """Write one task of a multi-task model as a standalone HF model (for predict, evaluate, pipeline)."""
    from bertx.recipes.multitask import export_task

    export_task(mt_dir, task, output, overwrite=overwrite)
    typer.echo(f"wrote task {task!r} to {output}")


@app.command()
@_friendly
def intermediate(
    config: str = typer.Argument(..., help="YAML config with a `tasks:` list (see configs/intermediate/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. train.epochs=2."),
    output: Optional[str] = typer.Option(None, help="Output folder."),
    model: Optional[str] = typer.Option(None, help="Local HF model folder (default: packaged all-MiniLM-L6-v2)."),
    data_dir: Optional[str] = typer.Option(None, help="Root of the shared datasets ({data_dir} in configs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of reusing finished runs."),
):
    """Intermediate-task transfer: train on each source, fine-tune on each target; write the matrix (JSON, MD, PNG)."""
    from bertx.config import IntermediateConfig, load_config
    from bertx.evaluation.matrix_report import markdown
    from bertx.recipes.intermediate import intermediate as run_intermediate

    flags = {"output": output, "model.name_or_path": model, "data_dir": data_dir}
    cfg = load_config(*_config_and_overrides(config, overrides, flags), schema=IntermediateConfig)
    result = run_intermediate(cfg, overwrite=overwrite, show_progress=False)
    typer.echo("\n" + markdown(result))
    typer.echo(f"matrix written to {cfg.output}/matrix.json, .md and .png")


@app.command()
@_friendly
def transfer(
    config: str = typer.Argument(..., help="YAML config with `sources:` and `targets:` (see configs/transfer/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. train.epochs=2."),
    output: Optional[str] = typer.Option(None, help="Output folder."),
    model: Optional[str] = typer.Option(None, help="Local HF model folder, e.g. a multilingual encoder (default: packaged all-MiniLM-L6-v2)."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated: plain, dapt, aux-mlm, dapt+aux-mlm."),
    data_dir: Optional[str] = typer.Option(None, help="Root of the shared datasets ({data_dir} in configs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of reusing finished runs."),
):
    """Cross-domain / cross-lingual transfer: train on sources, score zero-shot on targets; matrices (JSON, MD, PNG) per method."""
    from bertx.config import TransferConfig, load_config
    from bertx.recipes.transfer import summary_markdown, transfer as run_transfer

    flags = {"output": output, "model.name_or_path": model, "data_dir": data_dir,
             "methods": [m.strip() for m in methods.split(",")] if methods else None}
    cfg = load_config(*_config_and_overrides(config, overrides, flags), schema=TransferConfig)
    summary = run_transfer(cfg, overwrite=overwrite, show_progress=False)
    for method in summary["methods"]:
        typer.echo("\n" + (Path(cfg.output) / f"matrix-{method}.md").read_text(encoding="utf-8"))
    typer.echo(summary_markdown(summary))
    typer.echo(f"matrices written to {cfg.output}/matrix-<method>.json, .md and .png; summary in {cfg.output}/summary.json")


@app.command()
@_friendly
def distill(
    config: Optional[str] = typer.Argument(None, help="YAML run config (see configs/distill/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. loss.hidden=1.0."),
    teacher: Optional[str] = typer.Option(None, help="Fine-tuned teacher folder."),
    train: Optional[str] = typer.Option(None, help="Training file (labelled, as for fine-tuning)."),
    dev: Optional[str] = typer.Option(None, help="Dev file the student is evaluated on."),
    student_layers: Optional[int] = typer.Option(None, help="Student layers (copied from the teacher unless narrower)."),
    student_hidden: Optional[int] = typer.Option(None, help="Narrower student: hidden size (random init)."),
    student: Optional[str] = typer.Option(None, help="Another pretrained encoder folder as the student."),
    temperature: Optional[float] = typer.Option(None, help="Soft-target temperature."),
    unlabelled: Optional[List[str]] = typer.Option(None, help="Unlabelled text the teacher labels (repeatable)."),
    output: Optional[str] = typer.Option(None, help="Output folder."),
    epochs: Optional[float] = typer.Option(None, help="Epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Global batch size per optimizer step."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    max_length: Optional[int] = typer.Option(None, help="Max tokens per input."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    data_dir: Optional[str] = typer.Option(None, help="Root of the shared datasets ({data_dir} in configs)."),
    baseline: Optional[bool] = typer.Option(None, "--baseline/--no-baseline", help="Also train the student without a teacher and write the report."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --output."),
):
    """Distil a fine-tuned teacher into a smaller, faster student (any task kind); write the student and a report."""
    from bertx.config import DistillConfig, load_config
    from bertx.recipes.distill import distill as run_distill

    flags = {
        "teacher": teacher, "data.train": train, "data.dev": dev, "student.layers": student_layers,
        "student.hidden": student_hidden, "student.name_or_path": student, "loss.temperature": temperature,
        "unlabelled": list(unlabelled) if unlabelled else None, "output": output, "train.epochs": epochs,
        "train.batch_size": batch_size, "train.lr": lr, "data.max_length": max_length, "train.seed": seed,
        "data.data_dir": data_dir, "baseline": baseline,
    }
    config, overrides = _config_and_overrides(config, overrides, flags)
    cfg = load_config(config, overrides, schema=DistillConfig)
    final = run_distill(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _print_metrics({k: v for k, v in final.items() if k not in ("baseline", "report")}, cfg.output)
    if "report" in final:
        from bertx.evaluation.distill_report import markdown

        typer.echo("\n" + markdown(final["report"]))
        typer.echo(f"report written to {cfg.output}/report.md, .json and .png")


tokenizer_app = typer.Typer(no_args_is_help=True, help="Tokenizers: train a WordPiece vocabulary.")
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
@_friendly
def tokenizer_train(
    input: List[str] = typer.Option(..., "--input", help="Plain-text file (repeat for several)."),
    output: str = typer.Option(..., help="Folder for the HF tokenizer."),
    vocab_size: int = typer.Option(30522, help="Vocabulary size, special tokens included."),
    lowercase: bool = typer.Option(False, "--lowercase", help="Lower-case and strip accents (an uncased model)."),
    min_frequency: int = typer.Option(2, help="Pieces seen fewer times are not added."),
    documents: str = typer.Option("blank", help="blank, line or wikitext (wikitext undoes WikiText's markup)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a tokenizer already in --output (never a model folder)."),
):
    """Train a WordPiece tokenizer with BERT's special tokens; writes an HF tokenizer folder."""
    from bertx.data.wordpiece import train_wordpiece

    if documents not in ("blank", "line", "wikitext"):
        raise BertxError(f"--documents {documents!r}: choose blank, line or wikitext")
    result = train_wordpiece(list(input), output, vocab_size, lowercase, min_frequency, documents, overwrite=overwrite)  # type: ignore[arg-type]
    typer.echo(f"wrote a {result['vocab_size']}-piece WordPiece tokenizer ({'uncased' if lowercase else 'cased'}) "
               f"from {result['sentences']:,} sentences to {output}")


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
