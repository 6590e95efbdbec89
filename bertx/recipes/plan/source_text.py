"""The sources' texts as more transfer text for a student: a lever of the compress stage when the target has
little text of its own (RTE: 1,594 training pairs and no unlabelled text). A student learns its teacher
from the texts the teacher labels; a source's texts of the target's shape are real text of the same form,
which the teacher labels in the target's classes like any unlabelled text.

    sources file -> each source whose inputs have the target's shape (single texts, pairs, tagged sentences)
        -> its training texts, labels dropped -> a seeded draw of at most CAP in all
        -> compress/source_texts.{txt,jsonl} in the plan's folder (written once, read by distillation)
"""

from __future__ import annotations

import json
import random

from bertx import runfolder
from bertx.recipes.plan.stages import SEQUENCE, Context, load_sources

CAP = 10_000  # texts from the sources at most: a student's cost grows with its transfer set


def shaped_sources(ctx: Context) -> tuple:
    """(the sources config, its entries whose inputs can have the target's shape: by task kind; pairs are
    checked on reading)."""
    sources = load_sources(ctx.config)
    if sources is None:
        return None, []
    family = SEQUENCE if ctx.config.task in SEQUENCE else (ctx.config.task,)
    return sources, [entry for entry in sources.tasks if entry.kind in family]


def text_poor(ctx: Context) -> bool:
    """Whether the target has no text beyond its labelled examples (no unlabelled file; augmented variants are
    still its labelled texts): its students then learn from the sources' texts from the start, not only as a lever. Measured: 3-layer RTE
    students distilled from MiniLM teachers on the 2,490 training pairs alone scored 49.5-50.9 on the official
    dev pairs (chance); with 18,125 pairs of other corpora added, 55.2-56.7 (benchmarks/distill, distill_many)."""
    return ctx.profile.get("unlabelled_lines", 0) == 0


def estimated_count(ctx: Context) -> int:
    """How many source texts the lever would add (for the estimate, before any is read)."""
    return sum(count for count, _ in estimated_texts(ctx))


def estimated_texts(ctx: Context) -> list[tuple[int, list[float]]]:
    """(count, quantiles of tokens per text) of each source whose texts have the target's shape, scaled down to
    CAP in all: what the sources' texts cost a student, priced at their own lengths. RTE's sources give pairs
    of MRPC (about 50 tokens) and STS-B (about 30) beside RTE's own 70; its single-sentence sources (CoLA,
    SST-2) give none, as `source_text_file` finds when it reads them."""
    from bertx.recipes.plan.stages import paired_sources, source_sizes

    _, entries = shaped_sources(ctx)
    if not entries:
        return []
    pairs, sizes, paired = target_pairs(ctx), source_sizes(ctx), paired_sources(ctx)
    shaped = [sizes[e.name] for e in entries if ctx.config.task == "ner" or (e.name in paired) == pairs]
    total = sum(count for count, _ in shaped)
    keep = min(1.0, CAP / total) if total else 0.0
    return [(int(count * keep), quantiles) for count, quantiles in shaped]


def source_text_file(ctx: Context) -> tuple[str, int] | None:
    """(the file of the sources' texts shaped as the target's inputs, their count), written once into the plan's
    folder; None when no source has texts of that shape."""
    sources, entries = shaped_sources(ctx)
    if not entries:
        return None
    folder = ctx.out / "compress"
    single, pairs = folder / "source_texts.txt", folder / "source_texts.jsonl"
    for done in (single, pairs):
        if done.is_file():
            return str(done), sum(1 for _ in done.open(encoding="utf-8"))
    pairs_wanted = target_pairs(ctx)
    texts = [t for entry in entries for t in _texts(ctx, sources, entry, pairs_wanted)]
    if not texts:
        return None
    random.Random(ctx.config.seed).shuffle(texts)
    texts = texts[:CAP]
    runfolder.make_folder(folder)
    if pairs_wanted:
        reading = ctx.reading()
        first, second = reading.text_column or "sentence1", reading.text_pair_column or "sentence2"
        runfolder.write_text(pairs, "".join(json.dumps({first: a, second: b}, ensure_ascii=False) + "\n" for a, b in texts))
        return str(pairs), len(texts)
    runfolder.write_text(single, "".join(text + "\n" for text in texts))
    return str(single), len(texts)


def _texts(ctx: Context, sources, entry, pairs: bool) -> list:
    """A source's texts of the target's shape: a line of words (tagged sentences), a text, or a (text, pair)."""
    path = entry.files(sources.data_dir)[0][1]
    if ctx.config.task == "ner":
        from bertx.data.conll import read_tagged

        return [" ".join(s.words) for s in read_tagged(path) if s.words]
    from bertx.data.examples import read_examples
    from bertx.tasks import get_task

    data = entry.data
    examples, _ = read_examples(path, get_task(entry.kind), data.text_column, data.text_pair_column, data.label_column, data.label_separator)
    clean = lambda text: " ".join(text.split())  # noqa: E731  a line each: no tab or line break inside
    if pairs:
        return [(clean(e.text), clean(e.text_pair)) for e in examples if e.text_pair and e.text.strip() and e.text_pair.strip()]
    return [clean(e.text) for e in examples if not e.text_pair and e.text.strip()]


def target_pairs(ctx: Context) -> bool:
    """Whether the target's inputs are text pairs (its first training example has a second text)."""
    if ctx.config.task not in SEQUENCE:
        return False
    from bertx.data.examples import read_examples
    from bertx.tasks import get_task

    data = ctx.config.data
    examples, _ = read_examples(
        ctx.inputs["train"], get_task(ctx.config.task), data.text_column, data.text_pair_column, data.label_column, data.label_separator, limit=1
    )
    return bool(examples) and examples[0].text_pair is not None
