"""Multi-task learning for one target with the sources chosen for it (`bertx multitask` with `select:`).

    every other task --fine-tuned once (recipes.sources)--> its encoder
    target's training file + [plain encoder, source encoders] --rank (select.estimator)--> helpful sources
    target + the top_k helpful sources --multi-task (recipes.multitask)--> shared encoder
    its target model --fine-tuned on the target alone (select.finetune_epochs)--> the result

Joint training on all of GLUE lost 3 points against single-task runs: a source that pulls the encoder
elsewhere costs the target. Keeping only sources whose fine-tuned features already suit the target
(they score above the plain encoder) is the cheap filter; when none does, the target is fine-tuned
alone. Every stage's finished result is reused when the command is run again; an interrupted stage
starts again.
"""

from __future__ import annotations

import json
from pathlib import Path

from bertx import runfolder
from bertx.config import MultitaskConfig
from bertx.models.encoder import resolve_model_path
from bertx.recipes.finetune import finetune
from bertx.recipes.multitask import multitask
from bertx.recipes.task_folders import claimed_task_folder, export_task
from bertx.recipes.sources import rank_encoders, train_sources, with_helpful
from bertx.console import say


def selected_multitask(config: MultitaskConfig, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Select sources for `config.select.target`, train multi-task on them and the target, fine-tune on the target.

    Returns:
        The summary (also `summary.json` / `summary.md` in `config.output`): ranking, selected sources,
        the target's dev metrics after the multi-task stage and after the final fine-tuning.
    """
    with claimed_task_folder(config, overwrite) as out:
        return _stages(config, out, show_progress)


def _stages(config: MultitaskConfig, out: Path, show_progress: bool) -> dict:
    select = config.select
    target = next(entry for entry in config.tasks if entry.name == select.target)
    others = [entry for entry in config.tasks if entry.name != target.name]
    cache = Path(select.sources_cache) if select.sources_cache else out / "sources"
    encoders = train_sources(others, cache, lambda entry, folder: config.task_config(entry, folder), show_progress)

    ranked = out / "selection" / "rank.json"
    if ranked.is_file():
        report = with_helpful(json.loads(ranked.read_text(encoding="utf-8")))
    else:
        report = rank_encoders(
            resolve_model_path(config.model.name_or_path),
            encoders,
            target.files(config.data_dir)[0][1],
            target.kind,
            (select.estimator,),
            select.max_examples,
            target.data.max_length,
            seed=config.train.seed,
            output=str(out / "selection"),
            overwrite=True,
            data=target.data,
        )
    chosen = report["helpful"][: select.top_k]
    say(f"[select] {target.name}: sources ranked {', '.join(report['sources_ranked'])}; selected: {', '.join(chosen) or 'none'}")

    train = config.train.model_copy(update={"epochs": select.finetune_epochs}) if chosen else config.train
    multi, final, model_dir = joint_then_alone(
        config, target, [e for e in others if e.name in chosen], out, train if select.finetune_epochs > 0 or not chosen else None, show_progress
    )
    metric = final["metric_for_best"] if "metric_for_best" in final else (target.metric or "main")
    summary = {
        "target": target.name,
        "estimator": select.estimator,
        "ranking": report["sources_ranked"],
        "scores": {r["candidate"]: r["scores"][select.estimator] for r in report["candidates"]},
        "selected": chosen,
        "metric": metric,
        "after_multitask": multi,
        "final": final,
        "model": str(model_dir),
    }
    runfolder.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    lines = [
        f"Target **{target.name}**: sources ranked by {select.estimator} (plain encoder = none): "
        + ", ".join(f"{name} {summary['scores'][name]:.4f}" for name in ["none", *report["sources_ranked"]]),
        f"selected: {', '.join(chosen) or 'none (fine-tuned alone)'}",
        f"final {metric}: {100 * final[metric]:.2f}" if metric in final else "final: see summary.json",
    ]
    runfolder.write_text(out / "summary.md", "\n\n".join(lines) + "\n")
    return summary


def joint_then_alone(config: MultitaskConfig, target, chosen: list, out: Path, final_train, show_progress: bool = True):
    """Multi-task training of `target` with the `chosen` source entries (into `out/multitask`, exported as
    `out/multitask-target`), then fine-tuning on the target alone with `final_train` (into `out/target`;
    None: none). Without sources, the target is fine-tuned alone. Finished runs are reused.

    Returns:
        (the target's metrics after the multi-task stage or None, the final metrics, the final model folder).
    """
    start, multi = None, None
    if chosen:
        mt_dir = out / "multitask"
        if not (mt_dir / "metrics.json").is_file():
            multitask(
                config.model_copy(update={"select": None, "output": str(mt_dir), "tasks": [target, *chosen]}),
                overwrite=True,
                show_progress=show_progress,
            )
        multi = json.loads((mt_dir / "metrics.json").read_text(encoding="utf-8"))["tasks"][target.name]
        start = out / "multitask-target"
        if not (start / runfolder.RUN_FILE).is_file():
            export_task(mt_dir, target.name, start, overwrite=True)
    if final_train is None and chosen:
        return multi, multi, start
    final_dir = out / "target"
    if not (final_dir / "metrics.json").is_file():
        model = config.model.model_copy(update={"name_or_path": str(start)}) if start else config.model
        finetune(
            target.finetune_config(config.data_dir, model, final_train or config.train, str(final_dir)), overwrite=True, show_progress=show_progress
        )
    return multi, json.loads((final_dir / "metrics.json").read_text(encoding="utf-8")), final_dir
