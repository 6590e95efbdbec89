"""`bertx` commands that use a trained model: evaluate, predict, export, merge, serve, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from bertx.cli.base import app, friendly
from bertx.cli.options import schema_command
from bertx.config.use import ExportConfig, ServeConfig
from bertx.data.readers import decode_text, split_lines
from bertx.errors import BertxError


@app.command()
@friendly
def evaluate(
    model_dir: str = typer.Argument(..., help="Folder written by `bertx finetune`."),
    data: str = typer.Option(..., help="Labelled file to evaluate on."),
    batch_size: int = typer.Option(64, min=1, help="Examples per forward pass."),
    articles: Optional[str] = typer.Option(None, help="QA: START:END range of SQuAD articles (default: the run's dev range on its dev file)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate the first N examples only."),
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
@friendly
def predict(
    model_dir: str = typer.Argument(..., help="Folder written by `bertx finetune` (or its ONNX export)."),
    input: Optional[List[str]] = typer.Option(
        None,
        "--input",
        help="TSV/CSV/JSONL with text column(s), .txt with one text per line, "
        "or - for standard input (one text per line); NER: also CoNLL columns; QA: SQuAD JSON "
        "or JSONL with question and context. With --engine ray: files or globs, repeatable, "
        "Parquet too.",
    ),
    text: Optional[List[str]] = typer.Option(None, "--text", help="A text to predict (repeatable), instead of --input."),
    output: Optional[str] = typer.Option(None, help="JSONL output file (default: stdout); with --engine ray, a folder of shards."),
    batch_size: int = typer.Option(128, min=1, help="Examples per forward pass."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 matrix products: faster on AVX512-BF16/AMX CPUs and GPUs."),
    input_format: str = typer.Option(
        "auto", "--format", help="NER input: auto, text, conll or jsonl (auto: .conll/.bio/.iob are CoNLL, .txt is raw text)."
    ),
    engine: str = typer.Option("local", help="local (this process) or ray (a corpus on a Ray cluster: shards, a manifest, resumable)."),
    address: Optional[str] = typer.Option(None, help="Ray: the cluster to join (auto, or ray://HOST:PORT); default: a private one on this machine."),
    workers: Optional[int] = typer.Option(None, min=1, help="Ray: actors, one model load each (default: one per core; threads = cores / workers)."),
    shard_rows: int = typer.Option(
        10_000,
        min=1,
        help="Ray: lines per shard (CSV: records), the unit of work, output and "
        "resumption; the default is the chunk single-process predict uses, so an int8 export "
        "predicts the same either way.",
    ),
    output_format: str = typer.Option("jsonl", help="Ray: shard files as jsonl or parquet."),
    max_bad_rows: int = typer.Option(100, min=0, help="Ray: unreadable rows skipped (and listed in bad_rows.jsonl) before the job stops."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Ray: replace an earlier corpus prediction with other settings."),
):
    """Predict a file, standard input or texts given with --text. Sequence tasks: label and probabilities per
    text; NER: entity spans per text, or a predicted-tag column added to a CoNLL file; QA: answer, character
    start/end and score per question. With --engine ray, a corpus of many files on a Ray cluster.

    Example: bertx predict runs/sst2 --text "a gripping , funny film ." --text "dull"
    """
    import tempfile

    from bertx.inference.predict_file import predict_file

    if engine not in ("local", "ray"):
        raise BertxError(f"--engine {engine!r}: choose local or ray")
    if engine == "ray":
        return _predict_corpus(model_dir, input, text, output, batch_size, bf16, address, workers, shard_rows, output_format, max_bad_rows, overwrite)
    if (not input) == (not text):
        raise BertxError("predict: give either --input FILE (or - for standard input) or one or more --text")
    if input and len(input) > 1:
        raise BertxError("predict: several --input files need --engine ray (a folder of shards); give one file")
    input = input[0] if input else None
    with tempfile.TemporaryDirectory() as scratch:
        source = None  # what errors call the input when it is not a file of the user's
        if text or input == "-":
            source = "--text" if text else "<stdin>"
            lines = _texts(text) if text else split_lines(decode_text(sys.stdin.buffer.read(), "<stdin>"))
            suffix = {"conll": ".conll", "jsonl": ".jsonl"}.get(input_format, ".txt")
            input = str(Path(scratch) / f"stdin{suffix}")
            Path(input).write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            count = predict_file(model_dir, input, output, batch_size, bf16=bf16, input_format=input_format)
        except BertxError as err:
            if source is None:
                raise
            raise BertxError(str(err).replace(input, source)) from None
    if output:
        typer.echo(f"wrote {count} predictions to {output}", err=True)


def _predict_corpus(model_dir, inputs, text, output, batch_size, bf16, address, workers, shard_rows, output_format, max_bad_rows, overwrite) -> None:
    from bertx.scale.cluster import import_ray
    from bertx.scale.predict import CorpusJob, predict_corpus

    if text or not inputs or "-" in inputs:
        raise BertxError("--engine ray reads files: give --input FILE_OR_GLOB (repeatable), not --text or standard input")
    if not output:
        raise BertxError("--engine ray writes a folder of shards: give --output DIR")
    import_ray()  # one line on how to install it, before any work
    job = CorpusJob(model_dir, list(inputs), output, output_format, shard_rows, batch_size, bf16, max_bad_rows, address, workers, overwrite)
    manifest = predict_corpus(job, log=lambda line: typer.echo(line, err=True))
    bad = f"; {manifest['bad_rows']} bad rows skipped (listed in {Path(output) / 'bad_rows.jsonl'})" if manifest["bad_rows"] else ""
    typer.echo(f"wrote {manifest['predictions']} predictions in {len(manifest['shards'])} shards to {output}{bad}", err=True)


def _texts(given: list[str]) -> list[str]:
    """--text values as lines of one input: each must be one non-empty line (arguments that are not UTF-8
    never get here: `cli.main` refuses them for every command)."""
    for number, value in enumerate(given, start=1):
        if not value.strip():
            raise BertxError(f"--text {number}: empty text")
        if "\n" in value or "\r" in value:
            raise BertxError(f"--text {number}: a text holds a line break; give each text as one line")
    return list(given)


@schema_command(app, "export", ExportConfig, friendly)
def export(
    run_dir: str = typer.Argument(..., help="A trained folder: fine-tuned, multi-task export or distilled student."),
    options: ExportConfig = None,
):
    """Export a trained model to ONNX (fp32 or int8), checked against PyTorch; write the graph, tokenizer and labels.

    Example: bertx export runs/sst2 --output runs/sst2-int8 --quantize int8
    """
    from bertx.export.one_model import describe, export as run_export

    o = options
    report = run_export(
        run_dir,
        o.output,
        quantize=o.quantize,
        opset=o.opset,
        min_agreement=o.min_agreement,
        sample_size=o.sample_size,
        sample_file=o.sample,
        fp32_groups=o.fp32_groups,
        overwrite=o.overwrite,
        max_metric_drop=o.max_metric_drop,
        format=o.format,
        log=lambda line: typer.echo(line, err=True),
    )
    typer.echo(describe(report))
    typer.echo(f"written to {o.output} (report: {o.output}/export_report.json)")


@app.command()
@friendly
def merge(
    run_dir: str = typer.Argument(..., help="A PEFT run folder (`bertx finetune ... peft.method=lora|ia3|bitfit`)."),
    output: str = typer.Option(..., help="Folder for the merged, plain HF model."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier merge in --output."),
):
    """Merge an adapter into its base model: a plain HF folder for pipeline, export and serve.

    Example: bertx merge runs/sst2-lora --output runs/sst2-merged
    """
    from bertx.export.merge import merge as run_merge

    run_merge(run_dir, output, overwrite=overwrite)
    typer.echo(f"merged model written to {output}")


@schema_command(app, "serve", ServeConfig, friendly)
def serve(
    models: List[str] = typer.Argument(..., help="Model folders (run or export), as DIR or name=DIR."),
    options: ServeConfig = None,
):
    """Serve models over HTTP: POST /v1/models/NAME/predict, /v1/models, /health, /ready, /metrics, /docs.

    Example: bertx serve sentiment=runs/sst2-int8 ner=runs/conll2003 --port 8000
    A folder of LoRA adapter folders (one base) is served as one model whose batches mix adapters:
    bertx serve reviews=adapters/   then {"inputs": [...], "adapter": "NAME"}.
    """
    from bertx.serve.main import serve as run_serve
    from bertx.serve.protocol import Limits

    o = options
    limits = Limits(o.max_batch_size, o.max_wait_ms, o.max_queue, o.max_inputs, int(o.max_body_mb * 1024 * 1024), o.deadline_ms)
    run_serve(list(models), o.host, o.port, limits, admin_token_file=o.admin_token_file, adapter_runtime=o.adapter_runtime)


@app.command()
@friendly
def report(
    run_dir: str = typer.Argument(..., help="Any bertx run folder (fine-tuning, distillation, multi-task, transfer, rank, ...)."),
    output: Optional[str] = typer.Option(None, help="HTML file to write (default RUN_DIR/report.html)."),
    dev: Optional[str] = typer.Option(None, help="Labelled file to analyse predictions on (default: the run's dev file)."),
    limit: int = typer.Option(2000, min=1, help="Analyse at most this many dev examples."),
):
    """One self-contained HTML page of a run: config, learning curves, dev metrics, mistakes, figures.

    Example: bertx report runs/sst2 --output sst2-report.html
    """
    from bertx.evaluation.report import report as write_report

    typer.echo(f"wrote {write_report(run_dir, output, dev, limit, warn=lambda line: typer.echo(line, err=True))}")
