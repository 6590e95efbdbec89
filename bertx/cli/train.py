"""`bertx` commands that train: plan, finetune, fewshot, pretrain, multitask (+ export), intermediate, transfer, distill."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from bertx.cli.base import OVERWRITE, RESUME, app, friendly
from bertx.cli.options import COMMON, config_command
from bertx.config.plan import PlanConfig
from bertx.config import DistillConfig, FewshotConfig, FinetuneConfig, IntermediateConfig, MultitaskConfig, PretrainConfig, TransferConfig
from bertx.data.hf_datasets import local_file


@config_command(
    app,
    "plan",
    PlanConfig,
    ("output", "task", "budget", "sources", "unlabelled", "labelled", "regime"),
    friendly,
    config_required=True,
    config_help="Plan YAML: task, train, dev, unlabelled, sources, encoders, ship, budget (see configs/plan/).",
)
def plan(
    cfg,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Profile the data, print the stages with their estimated minutes and the reasons for skipping any; train nothing."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the plan again instead of continuing it."),
):
    """From a target task to the best small model that meets `ship`, within a budget: profile, choose, adapt,
    teacher, compress, ship; every decision written with its measured reason (plan.json, report.html).

    Example: bertx plan configs/plan/kitchen.yaml --output runs/plan-kitchen
    """
    from bertx.recipes.plan import plan as run_plan

    run_plan(cfg, dry_run=dry_run, overwrite=overwrite, show_progress=False, log=typer.echo)


@config_command(
    app,
    "finetune",
    FinetuneConfig,
    COMMON
    + (
        "task",
        "text_column",
        "text_pair_column",
        "label_column",
        "doc_stride",
        "max_query_length",
        "tag_scheme",
        "aux_mlm_text",
        "aux_mlm_weight",
        "peft",
        "lora_r",
    ),
    friendly,
)
def finetune(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    show_examples: int = typer.Option(5, min=0, help="Print predictions for the first N dev examples at the end."),
):
    """Fine-tune an encoder with a task head (any kind); write an HF-compatible model folder.

    Example: bertx finetune configs/sst2.yaml train.epochs=1 data.max_train_examples=8000 --output runs/sst2
    """
    from bertx.recipes.finetune import finetune as run_finetune

    metrics = run_finetune(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun / accelerate launch only the main process reports
    _print_metrics(metrics, cfg.output)
    dev_path = local_file(cfg.data.resolve(cfg.data.dev))
    if show_examples and dev_path:
        _show_examples(cfg.output, dev_path, show_examples)


def _print_metrics(metrics: dict, output: str) -> None:
    shown = {k: v for k, v in metrics.items() if isinstance(v, float) and k not in ("wall_s", "train_samples_per_s")}
    typer.echo(f"\nmodel saved to {output}")
    typer.echo(
        "dev: "
        + ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
        + f"  ({metrics['steps']} steps, {metrics['wall_s']:.0f}s, {metrics['train_samples_per_s']:.1f} samples/s)"
    )


def _show_examples(model_dir: str, dev_path: str, n: int) -> None:
    from bertx.inference.loading import load_trained
    from bertx.inference.records import predictor_for

    trained = load_trained(model_dir)
    predictor = predictor_for(trained).inner
    typer.echo("example predictions:")
    if trained.task.name == "ner":
        from bertx.data.conll import read_tagged
        from bertx.tasks.bio import entity_spans

        sentences = read_tagged(dev_path, limit=n)
        for s, (tags, _) in zip(sentences, predictor.tag([s.words for s in sentences])):
            show = lambda spans, s=s: "; ".join(f"{t}: {' '.join(s.words[a:b])}" for t, a, b in spans) or "-"  # noqa: E731
            typer.echo(f"  [{show(entity_spans(tags))} | gold {show(entity_spans(s.tags))}] {' '.join(s.words)[:100]}")
        return
    if trained.task.name == "qa":
        from bertx.data.squad import read_qa

        examples = read_qa(dev_path, articles=trained.data.dev_articles, limit=n)
        for ex, answer in zip(examples, predictor.predict_examples(examples)):
            typer.echo(f"  [{answer['answer']!r} p={answer['score']:.2f} | gold {ex.answers[0][0]!r}] {ex.question[:100]}")
        return
    from bertx.data.examples import read_examples

    examples, _ = read_examples(dev_path, predictor.task, **predictor.reading_options(), limit=n)
    pairs = [ex.text_pair for ex in examples] if examples and examples[0].text_pair is not None else None
    for ex, pred in zip(examples, predictor.predict([ex.text for ex in examples], pairs)):
        guess = pred.get("label", pred.get("labels", pred.get("score")))
        confidence = f" p={pred['probs'][guess]:.2f}" if "label" in pred else ""
        text = ex.text if ex.text_pair is None else f"{ex.text} ||| {ex.text_pair}"
        typer.echo(f"  [{guess}{confidence} | gold {ex.label}] {text[:100]}")


@config_command(app, "fewshot", FewshotConfig, COMMON + ("task", "text_column", "text_pair_column", "label_column", "shots", "rounds"), friendly)
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


@config_command(
    app,
    "pretrain",
    PretrainConfig,
    COMMON + ("eval", "documents", "preset", "layers", "hidden", "heads", "tokenizer", "sentence_task", "whole_word_mask"),
    friendly,
)
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
    typer.echo(
        f"held-out: {shown or '(no held-out text)'}  ({metrics['steps']} steps, {metrics['wall_s']:.0f}s, {metrics['tokens_per_s']:.0f} tokens/s)"
    )


@config_command(
    app,
    "multitask",
    MultitaskConfig,
    COMMON + ("sampling", "sampling_temperature", "select", "top_k", "peft", "lora_r"),
    friendly,
    config_required=True,
    config_help="YAML config with a `tasks:` list (see configs/multitask/).",
)
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
    typer.echo(
        f"\nencoder and heads saved to {cfg.output} ({final['steps']} steps, {final['wall_s']:.0f}s, {final['train_samples_per_s']:.1f} samples/s)"
    )
    if final["tasks"]:
        typer.echo(task_table(final))
    typer.echo(f"export one task: bertx multitask-export {cfg.output} --task {cfg.tasks[0].name} --output DIR")


@app.command("multitask-export")
@friendly
def multitask_export(
    mt_dir: str = typer.Argument(..., help="Folder written by `bertx multitask`."),
    task: str = typer.Option(..., help="Task to export."),
    output: str = typer.Option(..., help="Folder for the standalone model."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output folder."),
):
    """Write one task of a multi-task model as a standalone HF model (for predict, evaluate, pipeline).

    Example: bertx multitask-export runs/multitask --task rte --output runs/rte-from-mt
    """
    from bertx.recipes.task_folders import export_task

    export_task(mt_dir, task, output, overwrite=overwrite)
    typer.echo(f"wrote task {task!r} to {output}")


@config_command(
    app,
    "intermediate",
    IntermediateConfig,
    COMMON,
    friendly,
    config_required=True,
    config_help="YAML config with a `tasks:` list (see configs/intermediate/).",
)
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


@config_command(
    app,
    "transfer",
    TransferConfig,
    COMMON + ("methods",),
    friendly,
    config_required=True,
    config_help="YAML config with `sources:` and `targets:` (see configs/transfer/).",
)
def transfer(
    cfg,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of reusing finished runs."),
):
    """Cross-domain / cross-lingual transfer: train on sources, score zero-shot on targets; matrices (JSON, MD, PNG) per method.

    Example: bertx transfer configs/transfer/amazon.yaml --methods plain
    """
    from bertx.evaluation.transfer_report import summary_markdown
    from bertx.recipes.transfer import transfer as run_transfer

    summary = run_transfer(cfg, overwrite=overwrite, show_progress=False)
    for method in summary["methods"]:
        typer.echo("\n" + (Path(cfg.output) / f"matrix-{method}.md").read_text(encoding="utf-8"))
    typer.echo(summary_markdown(summary))
    _echo_predicted(cfg.output)
    typer.echo(f"matrices written to {cfg.output}/matrix-<method>.json, .md and .png; summary in {cfg.output}/summary.json")


@config_command(
    app,
    "distill",
    DistillConfig,
    COMMON
    + (
        "teacher",
        "teachers",
        "student",
        "student_kind",
        "student_layers",
        "student_hidden",
        "kd_temperature",
        "unlabelled",
        "augment",
        "baseline",
        "label_engine",
        "label_address",
        "label_workers",
        "label_precision",
        "teacher_export",
        "augment_rule",
    ),
    friendly,
)
def distill(
    cfg,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
):
    """Distil a fine-tuned teacher into a smaller, faster student (any task kind); write the student and a report.
    A `bertx multitask` teacher gives one multi-task student with the same heads.

    Example: bertx distill configs/distill/sst2-3layer.yaml teacher=runs/sst2
    """
    from bertx.recipes.distill import distill as run_distill

    final = run_distill(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _print_metrics({k: v for k, v in final.items() if k not in ("baseline", "report")}, cfg.output)
    if "kept" in final:  # a multi-task student: each head beside its teacher head
        from bertx.recipes.distill_multitask import REPORT

        typer.echo("\n" + (Path(cfg.output) / REPORT).read_text(encoding="utf-8"))
    if "report" in final:
        from bertx.evaluation.distill_report import markdown

        typer.echo("\n" + markdown(final["report"]))
        typer.echo(f"report written to {cfg.output}/report.md, .json and .png")
