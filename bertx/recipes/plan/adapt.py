"""The adapt stage: domain-adaptive masked LM on the target's unlabelled text (kept only if it ranks above its
start), and, for a target in another language than the encoder's, a vocabulary extended for that language first."""

from __future__ import annotations

import json

from bertx.config import PretrainConfig
from bertx.evaluation.rank import RANKABLE
from bertx.recipes.plan.stages import Context, continue_or_start, finished

VOCAB_ADD = 5000  # word pieces of the target's language added to the encoder at most
OWN_PIECES_PER_WORD = 1.15  # what a vocabulary extended for the text's language spells it in (Portuguese: 1.12)


def adapt_length(ctx: Context) -> int:
    """Masked-LM blocks as long as the task's inputs, at most 128 tokens."""
    return min(128, ctx.profile["max_length"])


def adapt_sequences(ctx: Context) -> int:
    """Packed masked-LM blocks the unlabelled text makes; fewer once text in another language is spelt in its own pieces."""
    tokens = ctx.profile["unlabelled_lines"] * ctx.profile["mean_length"]
    if ctx.profile.get("foreign_text"):
        tokens *= OWN_PIECES_PER_WORD / ctx.profile["pieces_per_word"]
    return int(tokens // adapt_length(ctx))


def adapt_steps(ctx: Context) -> int:
    """One pass over the unlabelled text in packed blocks, at least 100 steps, at most three passes."""
    per_epoch = max(1, adapt_sequences(ctx) // 32)
    return int(min(3 * per_epoch, max(per_epoch, 100)))


def adapt(ctx: Context, encoder: str, steps: int, vocabulary: bool = False) -> dict:
    """Continue masked-LM pretraining of `encoder` on the unlabelled text, first giving it the text's own word
    pieces when the text is in another language (`vocabulary`); keep it if it ranks above its start."""
    from bertx.evaluation.rank import rank
    from bertx.recipes.pretrain import pretrain

    folder = ctx.out / "adapt"
    start = encoder
    if vocabulary:
        encoder = extend_for_language(ctx, encoder)
    if finished(folder) is None:
        config = PretrainConfig(
            output=str(folder),
            data={
                "train": ctx.inputs["unlabelled"],
                "documents": "line",
                "max_length": adapt_length(ctx),
                "eval_fraction": 0.02,
                "max_eval_sequences": 200,
            },
            model={"name_or_path": encoder},
            train={"max_steps": steps, "batch_size": 32, "lr": 1e-4, "eval_steps": None, "save_steps": 100, "seed": ctx.config.seed},
        )
        pretrain(config, show_progress=ctx.show_progress, **continue_or_start(folder))
    result = {"folder": str(folder), "steps": steps, "kept": False}
    if ctx.config.task not in RANKABLE:
        ctx.decide("adapt", "keep the adapted encoder", f"{ctx.config.task} is not ranked from frozen features; adapted text is in-domain")
        result["kept"] = True
        return result
    report = rank(
        ctx.inputs["train"],
        [start, str(folder)],
        ctx.config.task,
        ("logme",),
        2000,
        ctx.profile["max_length"],
        ctx.config.seed,
        str(ctx.out / "choose" / "adapted"),
        True,
        names=["before", "adapted"],
        data=ctx.reading(),
    )
    scores = {r["candidate"]: r["scores"]["logme"] for r in report["candidates"]}
    result["scores"], result["kept"] = scores, scores["adapted"] > scores["before"]
    ctx.decide(
        "adapt",
        "keep the adapted encoder" if result["kept"] else "drop the adapted encoder",
        f"LogME after {'the new word pieces and ' if vocabulary else ''}{steps} MLM steps {scores['adapted']:.3f} "
        f"against {scores['before']:.3f} before",
    )
    return result


def vocabulary_texts(ctx: Context) -> list[str]:
    """The target language's text the new pieces are chosen from: the unlabelled text, else the training file."""
    return ctx.inputs["unlabelled"] or ([ctx.inputs["train"]] if ctx.config.task != "ner" else [])


def extend_for_language(ctx: Context, encoder: str) -> str:
    """`bertx vocab extend` on the target's text (up to VOCAB_ADD pieces; `aligned` init from the plan's
    `parallel` translations, else `mean`), into OUTPUT/vocab; reused when done."""
    from bertx.recipes.vocab import extend_vocab

    folder = ctx.out / "vocab"
    report_file = folder / "vocab_report.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
    else:
        parallel = tuple(ctx.config.resolve(p) for p in ctx.config.parallel) if ctx.config.parallel else None
        report = extend_vocab(
            encoder,
            vocabulary_texts(ctx),
            VOCAB_ADD,
            str(folder),
            init="aligned" if parallel else "mean",
            documents="line",
            seed=ctx.config.seed,
            overwrite=True,
            parallel=parallel,
            log=lambda line: None,
        )
    first = report["texts"][0]
    before, after = report["tokens_per_word"][first]["before"], report["tokens_per_word"][first]["after"]
    ctx.decide(
        "adapt",
        f"add {report['added']} word pieces ({report['init']} init)",
        f"the target's text takes {ctx.profile['pieces_per_word']:.2f} pieces per word under the encoder's vocabulary "
        f"(its own language about 1.1): another language; {before:.2f} -> {after:.2f} pieces per word with them",
    )
    return str(folder)
