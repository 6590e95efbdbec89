"""`bertx` tools around training: rank (transferability), tune (Optuna), tokenizer train, vocab extend."""

from __future__ import annotations

from typing import List, Optional

import typer

from bertx.cli.base import app, friendly
from bertx.errors import BertxError


@app.command()
@friendly
def rank(
    candidates: List[str] = typer.Argument(None, help="Encoder folders to score (pretrained, DAPT, fine-tuned, students)."),
    train: str = typer.Option(..., help="The target task's labelled training file."),
    task: str = typer.Option("classification", help="classification, pair-classification, regression or ner."),
    sources: Optional[str] = typer.Option(
        None,
        help="YAML of source tasks (`tasks:`, `model:`, `train:`, `output:` cache): "
        "each is fine-tuned once and its encoder ranked beside the plain one.",
    ),
    estimators: str = typer.Option("logme,hscore,knn,probe", help="Comma-separated; the first one ranks."),
    max_examples: int = typer.Option(2000, min=2, help="Training examples drawn (with the seed) for the features."),
    max_length: int = typer.Option(128, min=8, max=8192, help="Longest tokenised input."),
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
        report = rank_sources(
            load_config(sources, [], schema=SourcesConfig), train, task, chosen, max_examples, max_length, seed, output, overwrite, log=echo
        )
    else:
        report = run_rank(train, list(candidates or []), task, chosen, max_examples, max_length, seed, output, overwrite, log=echo)
    typer.echo(markdown(report))
    if sources:
        typer.echo("helpful sources (above `none`): " + (", ".join(report["helpful"]) or "none"))
    if output:
        typer.echo(f"written to {output}/rank.json, rank.md and rank.png")


tokenizer_app = typer.Typer(no_args_is_help=True, help="Tokenizers: train a WordPiece vocabulary.")
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
@friendly
def tokenizer_train(
    input: List[str] = typer.Option(..., "--input", help="Plain-text file (repeat for several)."),
    output: str = typer.Option(..., help="Folder for the HF tokenizer."),
    vocab_size: int = typer.Option(30522, min=10, help="Vocabulary size, special tokens included."),
    lowercase: bool = typer.Option(False, "--lowercase", help="Lower-case and strip accents (an uncased model)."),
    min_frequency: int = typer.Option(2, min=1, help="Pieces seen fewer times are not added."),
    documents: str = typer.Option("blank", help="blank, line or wikitext (wikitext undoes WikiText's markup)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a tokenizer already in --output (never a model folder)."),
):
    """Train a WordPiece tokenizer with BERT's special tokens; writes an HF tokenizer folder.

    Example: bertx tokenizer train --input wiki.train.tokens --documents wikitext --vocab-size 16000 --lowercase --output runs/tok
    """
    from bertx.data.wordpiece import train_wordpiece

    if documents not in ("blank", "line", "wikitext"):
        raise BertxError(f"--documents {documents!r}: choose blank, line or wikitext")
    result = train_wordpiece(list(input), output, vocab_size, lowercase, min_frequency, documents, overwrite=overwrite)  # type: ignore[arg-type]
    typer.echo(
        f"wrote a {result['vocab_size']}-piece WordPiece tokenizer ({'uncased' if lowercase else 'cased'}) "
        f"from {result['sentences']:,} sentences to {output}"
    )


@app.command()
@friendly
def tune(
    config: str = typer.Argument(..., help="Fine-tuning YAML config every trial starts from (with a dev file)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides of the config (before sampling)."),
    trials: int = typer.Option(12, min=1, help="Finished trials the study should hold (by every worker together)."),
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

    from bertx.config import FinetuneConfig, load_config
    from bertx.config.loading import read_yaml_file
    from bertx.recipes.tune import tune as run_tune

    cfg = load_config(config, list(overrides or []), schema=FinetuneConfig)
    searched = None
    if space:
        searched = read_yaml_file(space, "search space file")
    summary = run_tune(cfg, trials, output, searched, storage, study_name, seed, prune, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"best {summary['metric']}: {summary['best_value']:.4f} (trial {summary['best_trial']}: {summary['best_params']})")
    typer.echo(f"{summary['complete']} complete, {summary['pruned']} pruned; pruning saved about {summary['wall_saved_by_pruning_s']}s")
    typer.echo(f"best config: {output}/best.yaml  (bertx finetune {output}/best.yaml)")


vocab_app = typer.Typer(no_args_is_help=True, help="Vocabulary transfer: give an encoder the word pieces of a new language.")
app.add_typer(vocab_app, name="vocab")


@vocab_app.command("extend")
@friendly
def vocab_extend(
    model: str = typer.Option(..., help="Encoder folder whose vocabulary is extended."),
    text: List[str] = typer.Option(..., "--text", help="Text in the new language (repeat for several files; TSV/CSV/JSONL: text columns)."),
    add: int = typer.Option(..., min=1, help="How many pieces to add at most (the most tokens saved first)."),
    output: str = typer.Option(..., help="Folder for the extended encoder."),
    init: str = typer.Option(
        "mean",
        help="mean: each new piece from the mean of the old pieces spelling it (FVT); random: the "
        "control; aligned: from the old pieces it translates to in --parallel.",
    ),
    parallel: List[str] = typer.Option([], "--parallel", help="With --init aligned: two row-aligned files, the model's language first."),
    reference: List[str] = typer.Option([], "--reference", help="Text in the model's own language: tokens per word reported, must not worsen."),
    vocab_size: int = typer.Option(30000, min=10, help="Size of the retrained vocabulary the candidate pieces come from."),
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
    report = extend_vocab(
        model,
        list(text),
        add,
        output,
        init,
        vocab_size,
        list(reference),
        documents,
        seed,
        overwrite,
        parallel=tuple(parallel) if parallel else None,
        log=lambda line: typer.echo(line, err=True),
    )
    typer.echo(
        f"added {report['added']} pieces ({report['vocab_before']} -> {report['vocab_after']}; "
        f"{report['initialised_from_old_pieces']} initialised from old pieces, init={report['init']})"
    )
    for path, figures in report["tokens_per_word"].items():
        typer.echo(f"  {path}: {figures['before']:.3f} -> {figures['after']:.3f} tokens per word")
    typer.echo(f"wrote {output} (report: {output}/vocab_report.json)")
