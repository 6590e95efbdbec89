"""The choose stage: the encoder among the candidates, then the source tasks predicted to help the target
(each fine-tuned once on at most SOURCE_EXAMPLES examples and cached for every plan naming the same sources
file; only the ones closest in text when fine-tuning all of them does not fit), ranked from frozen features."""

from __future__ import annotations

from pathlib import Path

from bertx import runfolder
from bertx.config import SourcesConfig, TaskEntry
from bertx.evaluation.rank import RANKABLE
from bertx.recipes.plan.profile import encoder_path
from bertx.recipes.plan.stages import SOURCE_EXAMPLES, Context, capped_sources, load_sources, source_sizes

SIMILARITY_S = 4.0  # embedding 200 texts of a source (or the target) to rank it by text similarity


def sources_folder(sources: SourcesConfig, cap: int) -> Path:
    """Where the sources fine-tuned on at most `cap` examples each are cached, shared by every plan naming
    the same sources file: its `output`, or `output/first-CAP` for a cheaper cap."""
    return Path(sources.output) if cap >= SOURCE_EXAMPLES else Path(sources.output) / f"first-{cap}"


def cached_cap(sources: SourcesConfig, caps) -> int | None:
    """The largest cap whose sources are all fine-tuned already (a second plan reuses them for free)."""
    for cap in sorted(caps, reverse=True):
        if all((sources_folder(sources, cap) / e.name / "metrics.json").is_file() for e in sources.tasks):
            return cap
    return None


def choose(ctx: Context, source_examples: int = SOURCE_EXAMPLES, closest: int | None = None) -> dict:
    """The encoder among the candidates, then the source tasks (each fine-tuned on at most `source_examples`,
    or found cached; only the `closest` in text to the target when given) predicted to help, from frozen
    features (LogME)."""
    config, folder = ctx.config, ctx.out / "choose"
    runfolder.make_folder(folder)
    result = {"encoder_scores": None, "sources": None, "helpful": []}
    rankable = config.task in RANKABLE
    encoder = _chosen_encoder(ctx, folder, result) if rankable else encoder_path(config.encoders[0])
    if len(config.encoders) > 1 and not rankable:
        ctx.decide("choose", f"encoder {config.encoders[0]}", f"{config.task} is not ranked from frozen features; the first candidate")
    sources = load_sources(config)
    if sources is not None and rankable and config.regime in ("auto", "multitask"):
        _helpful_sources(ctx, sources, folder, source_examples, closest, result)
    elif sources is not None:
        why = f"{config.task} is not ranked from frozen features" if not rankable else f"regime {config.regime} trains no multi-task teacher"
        ctx.decide("choose", "no sources", why)
    result["encoder"] = encoder
    ctx.helpful = list(result["helpful"])  # the re-plan after this stage prices the teacher with these
    return result


def _chosen_encoder(ctx: Context, folder: Path, result: dict) -> str:
    """The candidate encoder with the highest LogME on the target's training data (the only one, when one)."""
    from bertx.evaluation.rank import rank

    config = ctx.config
    if len(config.encoders) < 2:
        return encoder_path(config.encoders[0])
    candidates = [encoder_path(e) for e in config.encoders]
    where, names = str(folder / "encoders"), list(config.encoders)
    report = rank(
        ctx.inputs["train"],
        candidates,
        config.task,
        ("logme",),
        2000,
        ctx.profile["max_length"],
        config.seed,
        where,
        True,
        names=names,
        data=ctx.reading(),
    )
    scores = {r["candidate"]: r["scores"]["logme"] for r in report["candidates"]}
    best = report["candidates"][0]["candidate"]
    result["encoder_scores"] = scores
    shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None)
    ctx.decide("choose", f"encoder {best}", f"highest LogME on the target's training data: {shown}")
    return encoder_path(best)


def _helpful_sources(ctx: Context, sources: SourcesConfig, folder: Path, source_examples: int, closest: int | None, result: dict) -> None:
    """The sources fine-tuned (or found cached), then ranked by LogME against the plain encoder; the two best
    that beat it are the helpful ones (`result["helpful"]`)."""
    from bertx.recipes.sources import rank_encoders, train_sources

    config = ctx.config
    cap = cached_cap(sources, [SOURCE_EXAMPLES, source_examples]) or source_examples
    entries = capped_sources(sources, cap)
    if closest and closest < len(entries) and cached_cap(sources, [cap]) is None:
        entries = closest_entries(ctx, sources, entries, closest, result)
    trained = train_sources(entries, sources_folder(sources, cap), sources.task_config, ctx.show_progress)
    result["source_examples"] = cap
    base = encoder_path(sources.model.name_or_path or "default")
    where = str(folder / "sources")
    report = rank_encoders(
        base, trained, ctx.inputs["train"], config.task, ("logme",), 2000, ctx.profile["max_length"], config.seed, where, True, data=ctx.reading()
    )
    scores = {r["candidate"]: r["scores"]["logme"] for r in report["candidates"]}
    result["sources"], result["helpful"] = scores, report["helpful"][:2]
    dropped = [name for name in report["sources_ranked"] if name not in result["helpful"]]
    ranked = ", ".join(f"{n} {scores[n]:.3f}" for n in report["sources_ranked"])
    why = f"LogME above the plain encoder's ({scores['none']:.3f}): {ranked}" + (f"; dropped {', '.join(dropped)}" if dropped else "")
    ctx.decide("choose", f"sources {', '.join(result['helpful']) or 'none'}", why)


def closest_entries(ctx: Context, sources: SourcesConfig, entries: list[TaskEntry], count: int, result: dict) -> list[TaskEntry]:
    """The `count` sources whose text is closest to the target's (`similarity.py`): only they are fine-tuned."""
    from bertx.recipes.plan.profile import texts_of
    from bertx.recipes.plan.similarity import SAMPLE, source_texts, text_similarity

    encoder = encoder_path(sources.model.name_or_path or "default")
    similarity = text_similarity(
        encoder, texts_of(ctx.config.task, ctx.inputs["train"], ctx.config.data, SAMPLE), {e.name: source_texts(sources, e) for e in entries}
    )
    kept = list(similarity)[:count]
    result["text_similarity"] = similarity
    ctx.decide(
        "choose",
        f"fine-tune {', '.join(kept)}",
        f"the {count} sources closest in text to the target (cosine of "
        "mean sentence embeddings: "
        + ", ".join(f"{n} {v:.3f}" for n, v in similarity.items())
        + "); fine-tuning every source did not fit the budget beside the other stages",
    )
    return [e for e in entries if e.name in kept]


def choose_estimate(ctx: Context, cap: int = SOURCE_EXAMPLES, closest: int | None = None) -> float:
    seconds = ctx.costs.rank(len(ctx.config.encoders), ctx.examples) if len(ctx.config.encoders) > 1 else 0.0
    sources = load_sources(ctx.config)
    if sources is None:
        return seconds
    sizes = source_sizes(ctx)
    cap = cached_cap(sources, [SOURCE_EXAMPLES, cap]) or cap
    entries = capped_sources(sources, cap)
    share = 1.0
    if closest and closest < len(entries) and cached_cap(sources, [cap]) is None:
        share, seconds = closest / len(entries), seconds + SIMILARITY_S * (len(entries) + 1)
    for entry in entries:
        if (sources_folder(sources, cap) / entry.name / "metrics.json").is_file():
            continue
        count, lengths = sizes[entry.name]
        examples = min(entry.data.max_train_examples, count)
        seconds += share * (ctx.costs.finetune(examples, sources.train.epochs, int(sources.train.epochs) + 1, lengths=lengths) + 5.0)
    ranked = round(share * len(entries)) if share < 1 else len(sources.tasks)
    return seconds + ctx.costs.rank(ranked + 1, ctx.examples)
