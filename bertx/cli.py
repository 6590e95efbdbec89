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

from bertx.cli_options import COMMON, config_command
from bertx.config import DistillConfig, FewshotConfig, FinetuneConfig, IntermediateConfig, MultitaskConfig, PretrainConfig, TransferConfig
from bertx.errors import BertxError, RunStopped

app = typer.Typer(add_completion=False, no_args_is_help=True, help="BERT knowledge transfer: pretrain, fine-tune, multi-task, distil, evaluate, predict.")


# The same two flags on every training command.
RESUME = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace the bertx run in --output (never another folder).")


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


@config_command(app, "finetune", FinetuneConfig, COMMON + (
    "task", "text_column", "text_pair_column", "label_column", "doc_stride", "max_query_length", "tag_scheme",
    "aux_mlm_text", "aux_mlm_weight", "peft", "lora_r"), _friendly)
def finetune(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    show_examples: int = typer.Option(5, help="Print predictions for the first N dev examples at the end."),
):
    """Fine-tune an encoder with a task head (any kind); write an HF-compatible model folder.

    Example: bertx finetune configs/sst2.yaml train.epochs=1 data.max_train_examples=8000 --output runs/sst2
    """
    from bertx.recipes.finetune import finetune as run_finetune

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
    """Print the task's metrics of a trained model on a labelled file.

    Example: bertx evaluate runs/sst2 --data ../shared/data/sst2/dev.tsv --json
    """
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
    input: Optional[str] = typer.Option(None, "--input", help="TSV/CSV/JSONL with text column(s), .txt with one text per line, "
                                        "or - for standard input (one text per line); NER: also CoNLL columns; QA: SQuAD JSON "
                                        "or JSONL with question and context."),
    text: Optional[List[str]] = typer.Option(None, "--text", help="A text to predict (repeatable), instead of --input."),
    output: Optional[str] = typer.Option(None, help="JSONL output file (default: stdout)."),
    batch_size: int = typer.Option(128, help="Examples per forward pass."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 matrix products: faster on AVX512-BF16/AMX CPUs and GPUs."),
    input_format: str = typer.Option("auto", "--format", help="NER input: auto, text, conll or jsonl (auto: .conll/.bio/.iob are CoNLL, .txt is raw text)."),
):
    """Predict a file, standard input or texts given with --text. Sequence tasks: label and probabilities per
    text; NER: entity spans per text, or a predicted-tag column added to a CoNLL file; QA: answer, character
    start/end and score per question.

    Example: bertx predict runs/sst2 --text "a gripping , funny film ." --text "dull"
    """
    import tempfile

    from bertx.inference.predict_file import predict_file

    if (input is None) == (not text):
        raise BertxError("predict: give either --input FILE (or - for standard input) or one or more --text")
    with tempfile.TemporaryDirectory() as scratch:
        if text or input == "-":
            lines = list(text) if text else sys.stdin.read().splitlines()
            if any("\n" in line or "\r" in line for line in lines):
                raise BertxError("--text: a text holds a line break; give each text as one line")
            suffix = {"conll": ".conll", "jsonl": ".jsonl"}.get(input_format, ".txt")
            input = str(Path(scratch) / f"stdin{suffix}")
            Path(input).write_text("\n".join(lines) + "\n", encoding="utf-8")
        count = predict_file(model_dir, input, output, batch_size, bf16=bf16, input_format=input_format)
    if output:
        typer.echo(f"wrote {count} predictions to {output}", err=True)


@config_command(app, "fewshot", FewshotConfig, COMMON + ("task", "text_column", "text_pair_column", "label_column", "shots",
                                                       "rounds"), _friendly)
def fewshot(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
):
    """Classify from a few labelled examples per class: contrastive pairs, then a logistic-regression head.

    Example: bertx fewshot --train ../shared/data/sst2/train.tsv --shots 8 --dev ../shared/data/sst2/dev.tsv --output runs/fs8
    """
    from bertx.recipes.fewshot import fewshot as run_fewshot

    final = run_fewshot(cfg, resume=resume, overwrite=overwrite)
    _print_metrics({k: v for k, v in final.items() if isinstance(v, (int, float))}, cfg.output)


@config_command(app, "pretrain", PretrainConfig, COMMON + (
    "eval", "documents", "preset", "layers", "hidden", "heads", "tokenizer", "sentence_task", "whole_word_mask"), _friendly)
def pretrain(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
):
    """Pretrain a BERT with masked LM (+ NSP or SOP) from scratch, or continue an encoder on your text.

    Example: bertx pretrain --model runs/minilm-pt --train ../shared/data/sst2-pt/train.tsv --max-steps 400 --output runs/minilm-pt-mlm
    """
    from bertx.recipes.pretrain import pretrain as run_pretrain

    metrics = run_pretrain(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    typer.echo(f"\nmodel saved to {cfg.output}")
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k not in ("wall_s", "tokens_per_s", "epochs"))
    typer.echo(f"held-out: {shown or '(no held-out text)'}  ({metrics['steps']} steps, {metrics['wall_s']:.0f}s, "
               f"{metrics['tokens_per_s']:.0f} tokens/s)")


@config_command(app, "multitask", MultitaskConfig, COMMON + ("sampling", "sampling_temperature", "select", "top_k", "peft", "lora_r"),
                _friendly,
                config_required=True, config_help="YAML config with a `tasks:` list (see configs/multitask/).")
def multitask(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
):
    """Train one shared encoder with a head per task; write encoder + heads into one folder.

    With `select: {target: NAME, top_k: 2}` in the config (or `--select NAME`): rank the other tasks as
    sources for the target, keep the helpful ones, train multi-task on them and the target, then fine-tune
    on the target. With `--peft lora` (or `peft:`): one adapter and head per task over one frozen encoder.

    Example: bertx multitask configs/multitask/glue.yaml train.epochs=1
    """
    from bertx.recipes.multitask import multitask as run_multitask
    from bertx.recipes.multitask import task_table

    if cfg.select:
        from bertx.recipes.selected_multitask import selected_multitask

        summary = selected_multitask(cfg, overwrite=overwrite)
        typer.echo("\n" + (Path(cfg.output) / "summary.md").read_text(encoding="utf-8"))
        typer.echo(f"model: {summary['model']}; summary in {cfg.output}/summary.json")
        return
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
    """Write one task of a multi-task model as a standalone HF model (for predict, evaluate, pipeline).

    Example: bertx multitask-export runs/multitask --task rte --output runs/rte-from-mt
    """
    from bertx.recipes.multitask import export_task

    export_task(mt_dir, task, output, overwrite=overwrite)
    typer.echo(f"wrote task {task!r} to {output}")


@config_command(app, "intermediate", IntermediateConfig, COMMON, _friendly, config_required=True,
                config_help="YAML config with a `tasks:` list (see configs/intermediate/).")
def intermediate(
    cfg,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of reusing finished runs."),
):
    """Intermediate-task transfer: train on each source, fine-tune on each target; write the matrix (JSON, MD, PNG).

    Example: bertx intermediate configs/intermediate/glue4.yaml train.epochs=1
    """
    from bertx.evaluation.matrix_report import markdown
    from bertx.recipes.intermediate import intermediate as run_intermediate

    result = run_intermediate(cfg, overwrite=overwrite, show_progress=False)
    typer.echo("\n" + markdown(result))
    _echo_predicted(cfg.output)
    typer.echo(f"matrix written to {cfg.output}/matrix.json, .md and .png")


def _echo_predicted(output: str) -> None:
    """The predicted source ranking beside a measured matrix, when the run made one."""
    predicted = Path(output) / "predicted.md"
    if predicted.is_file():
        typer.echo("\n" + predicted.read_text(encoding="utf-8"))


@config_command(app, "transfer", TransferConfig, COMMON + ("methods",), _friendly, config_required=True,
                config_help="YAML config with `sources:` and `targets:` (see configs/transfer/).")
def transfer(
    cfg,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of reusing finished runs."),
):
    """Cross-domain / cross-lingual transfer: train on sources, score zero-shot on targets; matrices (JSON, MD, PNG) per method.

    Example: bertx transfer configs/transfer/amazon.yaml --methods plain
    """
    from bertx.recipes.transfer import summary_markdown, transfer as run_transfer

    summary = run_transfer(cfg, overwrite=overwrite, show_progress=False)
    for method in summary["methods"]:
        typer.echo("\n" + (Path(cfg.output) / f"matrix-{method}.md").read_text(encoding="utf-8"))
    typer.echo(summary_markdown(summary))
    _echo_predicted(cfg.output)
    typer.echo(f"matrices written to {cfg.output}/matrix-<method>.json, .md and .png; summary in {cfg.output}/summary.json")


@config_command(app, "distill", DistillConfig, COMMON + (
    "teacher", "student", "student_kind", "student_layers", "student_hidden", "kd_temperature", "unlabelled", "augment", "baseline"),
    _friendly)
def distill(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
):
    """Distil a fine-tuned teacher into a smaller, faster student (any task kind); write the student and a report.

    Example: bertx distill configs/distill/sst2-3layer.yaml teacher=runs/sst2
    """
    from bertx.recipes.distill import distill as run_distill

    final = run_distill(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _print_metrics({k: v for k, v in final.items() if k not in ("baseline", "report")}, cfg.output)
    if "report" in final:
        from bertx.evaluation.distill_report import markdown

        typer.echo("\n" + markdown(final["report"]))
        typer.echo(f"report written to {cfg.output}/report.md, .json and .png")


@app.command()
@_friendly
def export(
    run_dir: str = typer.Argument(..., help="A trained folder: fine-tuned, multi-task export or distilled student."),
    output: str = typer.Option(..., help="Folder for the ONNX export."),
    quantize: str = typer.Option("none", help="none (fp32) or int8 (dynamic, per-channel weights; sensitive layers kept in fp32)."),
    opset: int = typer.Option(17, help="ONNX opset."),
    min_agreement: float = typer.Option(0.99, help="Fail when a smaller share of sample predictions agree with PyTorch."),
    sample: Optional[str] = typer.Option(None, help="Labelled file for the parity check (default: the run's dev file)."),
    sample_size: int = typer.Option(1000, help="Examples in the parity check."),
    fp32_groups: int = typer.Option(5, help="int8: most groups of MatMuls (a layer's attention, feed-forward in or out) "
                                    "kept in fp32, chosen by calibration on training text; 0: all int8."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export in --output."),
):
    """Export a trained model to ONNX (fp32 or int8), checked against PyTorch; write the graph, tokenizer and labels.

    Example: bertx export runs/sst2 --output runs/sst2-int8 --quantize int8
    """
    from bertx.deploy.export import describe, export as run_export

    report = run_export(run_dir, output, quantize=quantize, opset=opset, min_agreement=min_agreement, sample_size=sample_size,
                        sample_file=sample, fp32_groups=fp32_groups, overwrite=overwrite, log=lambda line: typer.echo(line, err=True))
    typer.echo(describe(report))
    typer.echo(f"written to {output} (report: {output}/export_report.json)")


@app.command()
@_friendly
def rank(
    candidates: List[str] = typer.Argument(None, help="Encoder folders to score (pretrained, DAPT, fine-tuned, students)."),
    train: str = typer.Option(..., help="The target task's labelled training file."),
    task: str = typer.Option("classification", help="classification, pair-classification, regression or ner."),
    sources: Optional[str] = typer.Option(None, help="YAML of source tasks (`tasks:`, `model:`, `train:`, `output:` cache): "
                                          "each is fine-tuned once and its encoder ranked beside the plain one."),
    estimators: str = typer.Option("logme,hscore,knn,probe", help="Comma-separated; the first one ranks."),
    max_examples: int = typer.Option(2000, help="Training examples drawn (with the seed) for the features."),
    max_length: int = typer.Option(128, help="Longest tokenised input."),
    seed: int = typer.Option(42, help="Seed of the example draw and the probe's split."),
    output: Optional[str] = typer.Option(None, help="Folder for rank.json, rank.md and rank.png."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier rank output in --output."),
):
    """Rank encoders (or source tasks) for a target task from frozen features (LogME, H-score, kNN, linear probe), in seconds.

    Example: bertx rank runs/dapt-books runs/sst2 --train ../shared/data/multidomain/books/train.tsv --output runs/rank-books
    """
    from bertx.config import SourcesConfig, load_config
    from bertx.evaluation.rank import markdown, rank as run_rank
    from bertx.recipes.sources import rank_sources

    chosen = tuple(e.strip() for e in estimators.split(",") if e.strip())
    echo = lambda line: typer.echo(line, err=True)  # noqa: E731
    if sources:
        if candidates:
            raise BertxError("rank: give either candidate folders or --sources, not both")
        report = rank_sources(load_config(sources, [], schema=SourcesConfig), train, task, chosen, max_examples, max_length,
                              seed, output, overwrite, log=echo)
    else:
        report = run_rank(train, list(candidates or []), task, chosen, max_examples, max_length, seed, output, overwrite, log=echo)
    typer.echo(markdown(report))
    if sources:
        typer.echo("helpful sources (above `none`): " + (", ".join(report["helpful"]) or "none"))
    if output:
        typer.echo(f"written to {output}/rank.json, rank.md and rank.png")


@app.command()
@_friendly
def merge(
    run_dir: str = typer.Argument(..., help="A PEFT run folder (`bertx finetune ... peft.method=lora|ia3|bitfit`)."),
    output: str = typer.Option(..., help="Folder for the merged, plain HF model."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier merge in --output."),
):
    """Merge an adapter into its base model: a plain HF folder for pipeline, export and serve.

    Example: bertx merge runs/sst2-lora --output runs/sst2-merged
    """
    from bertx.deploy.merge import merge as run_merge

    run_merge(run_dir, output, overwrite=overwrite)
    typer.echo(f"merged model written to {output}")


@app.command()
@_friendly
def serve(
    models: List[str] = typer.Argument(..., help="Model folders (run or export), as DIR or name=DIR."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8000, help="Port."),
    max_batch_size: int = typer.Option(32, help="Most inputs per model call (micro-batching)."),
    max_wait_ms: float = typer.Option(5.0, help="How long a lone input waits for others to batch with."),
    max_queue: int = typer.Option(1024, help="Most inputs waiting per model; beyond it requests get 503 + Retry-After."),
    max_inputs: int = typer.Option(64, help="Most inputs in one request (413 beyond)."),
    max_chars: int = typer.Option(10_000, help="Most characters in one text (413 beyond)."),
):
    """Serve models over HTTP: POST /v1/models/NAME/predict, /v1/models, /health, /ready, /metrics, /docs.

    Example: bertx serve sentiment=runs/sst2-int8 ner=runs/conll2003 --port 8000
    """
    from bertx.deploy.server import Limits, serve as run_serve

    for name, value in (("--max-batch-size", max_batch_size), ("--max-queue", max_queue), ("--max-inputs", max_inputs),
                        ("--max-chars", max_chars), ("--port", port)):
        if value < 1:
            raise BertxError(f"{name} {value}: must be at least 1")
    run_serve(list(models), host, port, Limits(max_batch_size, max_wait_ms, max_queue, max_inputs, max_chars))


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
    """Train a WordPiece tokenizer with BERT's special tokens; writes an HF tokenizer folder.

    Example: bertx tokenizer train --input ../shared/data/wikitext2/wiki.train.tokens --documents wikitext --vocab-size 16000 --lowercase --output runs/tok
    """
    from bertx.data.wordpiece import train_wordpiece

    if documents not in ("blank", "line", "wikitext"):
        raise BertxError(f"--documents {documents!r}: choose blank, line or wikitext")
    result = train_wordpiece(list(input), output, vocab_size, lowercase, min_frequency, documents, overwrite=overwrite)  # type: ignore[arg-type]
    typer.echo(f"wrote a {result['vocab_size']}-piece WordPiece tokenizer ({'uncased' if lowercase else 'cased'}) "
               f"from {result['sentences']:,} sentences to {output}")


@app.command()
@_friendly
def report(
    run_dir: str = typer.Argument(..., help="Any bertx run folder (fine-tuning, distillation, multi-task, transfer, rank, ...)."),
    output: Optional[str] = typer.Option(None, help="HTML file to write (default RUN_DIR/report.html)."),
    dev: Optional[str] = typer.Option(None, help="Labelled file to analyse predictions on (default: the run's dev file)."),
    limit: int = typer.Option(2000, help="Analyse at most this many dev examples."),
):
    """One self-contained HTML page of a run: config, learning curves, dev metrics, mistakes, figures.

    Example: bertx report runs/sst2 --output sst2-report.html
    """
    from bertx.evaluation.report import report as write_report

    typer.echo(f"wrote {write_report(run_dir, output, dev, limit)}")


@app.command()
@_friendly
def tune(
    config: str = typer.Argument(..., help="Fine-tuning YAML config every trial starts from (with a dev file)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides of the config (before sampling)."),
    trials: int = typer.Option(12, help="Finished trials the study should hold (by every worker together)."),
    output: str = typer.Option("runs/tune", help="Folder for trial runs, tune.json, best.yaml and the default storage."),
    space: Optional[str] = typer.Option(None, help="YAML search space {key: {type: float|int|categorical, low, high, log, choices}}."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL shared by workers (default sqlite:///OUTPUT/tune.db)."),
    study_name: str = typer.Option("bertx-tune", help="Study name within the storage."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Stop trials below the median at the same step."),
    seed: int = typer.Option(0, help="Seed of the TPE sampler."),
):
    """Hyper-parameter search (Optuna TPE, median pruning); writes best.yaml for `bertx finetune`.

    Example: bertx tune configs/sst2.yaml data.max_train_examples=8000 train.epochs=1 train.eval_steps=50 --trials 12 --output runs/tune-sst2
    """
    import yaml

    from bertx.config import FinetuneConfig, load_config
    from bertx.recipes.tune import tune as run_tune

    cfg = load_config(config, list(overrides or []), schema=FinetuneConfig)
    searched = None
    if space:
        if not Path(space).is_file():
            raise BertxError(f"{space}: search space file not found")
        searched = yaml.safe_load(Path(space).read_text(encoding="utf-8"))
    summary = run_tune(cfg, trials, output, searched, storage, study_name, seed, prune, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"best {summary['metric']}: {summary['best_value']:.4f} (trial {summary['best_trial']}: {summary['best_params']})")
    typer.echo(f"{summary['complete']} complete, {summary['pruned']} pruned; pruning saved about {summary['wall_saved_by_pruning_s']}s")
    typer.echo(f"best config: {output}/best.yaml  (bertx finetune {output}/best.yaml)")


vocab_app = typer.Typer(no_args_is_help=True, help="Vocabulary transfer: give an encoder the word pieces of a new language.")
app.add_typer(vocab_app, name="vocab")


@vocab_app.command("extend")
@_friendly
def vocab_extend(
    model: str = typer.Option(..., help="Encoder folder whose vocabulary is extended."),
    text: List[str] = typer.Option(..., "--text", help="Text in the new language (repeat for several files; TSV/CSV/JSONL: text columns)."),
    add: int = typer.Option(..., help="How many pieces to add at most (the most tokens saved first)."),
    output: str = typer.Option(..., help="Folder for the extended encoder."),
    init: str = typer.Option("mean", help="mean: each new piece from the mean of the old pieces spelling it (FVT); random: the "
                             "control; aligned: from the old pieces it translates to in --parallel."),
    parallel: List[str] = typer.Option([], "--parallel", help="With --init aligned: two row-aligned files, the model's language first."),
    reference: List[str] = typer.Option([], "--reference", help="Text in the model's own language: tokens per word reported, must not worsen."),
    vocab_size: int = typer.Option(30000, help="Size of the retrained vocabulary the candidate pieces come from."),
    documents: str = typer.Option("blank", help="Plain-text layout: blank, line or wikitext."),
    seed: int = typer.Option(0, help="Seed of the random initialisation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier output folder of bertx's."),
):
    """Add the new language's most useful word pieces to an encoder, initialised from its own embeddings.

    Example: bertx vocab extend --model runs/minilm --text ../shared/data/sst2-pt/train.tsv --add 5000 --output runs/minilm-pt
    """
    from bertx.recipes.vocab import extend_vocab

    if documents not in ("blank", "line", "wikitext"):
        raise BertxError(f"--documents {documents!r}: choose blank, line or wikitext")
    if parallel and len(parallel) != 2:
        raise BertxError("--parallel takes two files: the model's language, then the new one (row-aligned)")
    report = extend_vocab(model, list(text), add, output, init, vocab_size, list(reference), documents, seed, overwrite,
                          parallel=tuple(parallel) if parallel else None, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"added {report['added']} pieces ({report['vocab_before']} -> {report['vocab_after']}; "
               f"{report['initialised_from_old_pieces']} initialised from old pieces, init={report['init']})")
    for path, figures in report["tokens_per_word"].items():
        typer.echo(f"  {path}: {figures['before']:.3f} -> {figures['after']:.3f} tokens per word")
    typer.echo(f"wrote {output} (report: {output}/vocab_report.json)")


def main(argv: list[str] | None = None) -> int:
    """Run the `bertx` command; every error the user can fix is one line on stderr, exit code 2.

    Click's own usage errors (an unknown option, a value of the wrong type) are printed the same way,
    instead of a usage box, so scripts and people see one line whatever was wrong."""
    try:  # typer 0.2x carries its own copy of click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="bertx", standalone_mode=False)
    except NoArgsIsHelpError as err:  # `bertx` or `bertx tokenizer` alone: the help, as usual
        typer.echo(err.ctx.get_help())
        return 0
    except UsageError as err:
        where = f" (see bertx {err.ctx.info_name} --help)" if err.ctx is not None and err.ctx.info_name != "bertx" else ""
        typer.secho(f"error: {err.format_message()}{where}", fg="red", err=True)
        return 2
    except typer.Abort:
        typer.secho("interrupted", err=True)
        return 130
    except ClickException as err:
        typer.secho(f"error: {err.format_message()}", fg="red", err=True)
        return err.exit_code
    return result if isinstance(result, int) else 0


def entry() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
