"""The compress stage of a plan: students distilled best-first on the transfer set, each exported and timed
beside the baseline, candidates measured before any is trained, and the levers pulled before a model under
the baseline ships."""

from __future__ import annotations

import time
from pathlib import Path

from bertx import runfolder
from bertx.config import DistillConfig, TrainConfig
from bertx.errors import BertxError
from bertx.recipes.plan import stages
from bertx.recipes.plan.constraints import missed_constraints, retime_twins, twins
from bertx.recipes.plan.costs import STUDENT_LATENCY, STUDENT_QUALITY, minutes
from bertx.recipes.plan.ledger import PARTIAL, elapsed, save_ledger
from bertx.recipes.plan.stages import (
    SEQUENCE,
    Context,
    continue_or_start,
    export_model,
    finished,
    main_score,
    timed,
    weights_mb,
)

UNLABELLED_CAP = 50_000  # lines of unlabelled text in a transfer set
MAX_STUDENTS = 3  # students distilled at most
LATENCY_MARGIN = 1.3  # a student predicted up to this far over the latency target is still tried
FIXED_MS = 0.2  # tokenising and decoding one input, on top of a student's share of the teacher's latency
WIDER_MARGIN = 1.8  # a lever: a student predicted up to this far over the latency target is still measured


# ---- compress ---------------------------------------------------------------------------------------
def student_config(kind: str) -> dict:
    return {"layers": int(kind.split("-")[1])} if kind.startswith("bert-") else {"kind": kind}


def students_to_try(ctx: Context, teacher_ms: float, target_ms: float | None, fixed_ms: float = FIXED_MS) -> tuple[list[str], dict]:
    """The students worth distilling, best expected dev score first, and each one's predicted latency."""
    depth = ctx.profile.get("probe", {}).get("layers")  # a BERT student keeps at most the encoder's layers
    kinds = [s for s in STUDENT_QUALITY if s in ctx.config.students and not (depth and s.startswith("bert-") and int(s[5:]) > depth)]
    if ctx.config.task == "ner":
        kinds = [s for s in kinds if s != "bag"]
    predicted = {s: round(teacher_ms * STUDENT_LATENCY[s] + fixed_ms, 2) for s in kinds}
    if target_ms is not None:
        kinds = [s for s in kinds if predicted[s] <= LATENCY_MARGIN * target_ms] or kinds[-1:]
    return kinds[:MAX_STUDENTS], predicted


def measured_candidates(ctx: Context, teacher_dir: str, kinds: list[str], ship_ratio: float) -> dict[str, dict]:
    """Candidate students' latency measured, not predicted, best expected score first until one meets the
    ratio: each built as distillation builds it (one training step on 64 examples: its shape and speed, not
    its score), exported to int8 without the parity gate, and timed in turns with the baseline.
    Returns {kind: {"latency_ms", "latency_ratio", "meets_ratio", ...}} for the kinds measured."""
    from bertx.recipes.distill import distill

    found: dict[str, dict] = {}
    for kind in kinds:
        if any(row["meets_ratio"] for row in found.values()):
            break
        folder = ctx.out / "compress" / "probe" / kind
        export_dir = folder.parent / f"{kind}.export"
        if not (export_dir / "export_report.json").is_file():
            if finished(folder) is None:
                config = DistillConfig(
                    teacher=teacher_dir,
                    output=str(folder),
                    data=ctx.reading().model_copy(update={"max_train_examples": 64}),
                    student=student_config(kind),
                    baseline=False,
                    train=TrainConfig(max_steps=1, batch_size=32, seed=ctx.config.seed, save_steps=None),
                )
                runfolder.make_folder(folder.parent)
                distill(config, show_progress=False, overwrite=True)
            from bertx.export.one_model import export

            export(folder, export_dir, quantize="int8", overwrite=True, max_metric_drop=100.0, sample_size=64)
        timing = timed(ctx, export_dir)
        found[kind] = {**timing, "meets_ratio": timing["latency_ratio"] <= ship_ratio}
    return found


def transfer_size(ctx: Context) -> int:
    unlabelled = min(UNLABELLED_CAP, ctx.profile["unlabelled_lines"]) if ctx.config.task in SEQUENCE + ("ner",) else 0
    augment = ctx.config.augment * ctx.examples if ctx.config.task in SEQUENCE else 0
    return ctx.examples + unlabelled + augment


def student_epochs(transfer: int) -> float:
    """Three passes, more on a small transfer set (at least 300 steps of 32), at most 10."""
    return float(min(10, max(3, -(-300 * 32 // max(1, transfer)))))


def distill_student(
    ctx: Context, teacher_dir: str, kind: str, epochs: float, teachers: tuple[str, ...] = (), name: str | None = None, more_text: tuple[str, ...] = ()
) -> dict:
    """Distil one student (from `teacher_dir`, or from it and `teachers` as an ensemble; `more_text`: files of
    unlabelled text beyond the target's), export it (int8, else fp32), measure the export. `name`: the row's
    and the folder's name (default: the kind)."""
    from bertx.recipes.distill import distill

    name = name or kind
    folder = ctx.out / "compress" / name
    sequence = ctx.config.task in SEQUENCE
    metrics = finished(folder)
    if metrics is None:
        config = DistillConfig(
            teacher=teacher_dir,
            teachers=list(teachers),
            output=str(folder),
            data=ctx.reading(),
            student=student_config(kind),
            train=TrainConfig(epochs=epochs, seed=ctx.config.seed, save_steps=200),
            unlabelled=(_unlabelled_files(ctx) if sequence or ctx.config.task == "ner" else []) + list(more_text),
            augment=ctx.config.augment if sequence else 0,
            baseline=False,
        )
        runfolder.make_folder(folder.parent)
        metrics = distill(config, show_progress=ctx.show_progress, **continue_or_start(folder))
    export_dir = ctx.out / "compress" / f"{name}.export"
    report = export_model(folder, export_dir, ctx)
    metric, pytorch_score = main_score(metrics)
    from bertx.evaluation.evaluate import evaluate

    score = float(evaluate(export_dir, ctx.inputs["dev"])[metric])
    return {
        "student": name,
        "student_kind": kind,
        "folder": str(folder),
        "export": str(export_dir),
        "quantize": report["quantize"],
        "metric": metric,
        "pytorch_score": pytorch_score,
        "score": score,
        **timed(ctx, export_dir),
        "size_mb": weights_mb(export_dir),
    }


def _unlabelled_files(ctx: Context) -> list[str]:
    """The unlabelled text of the transfer set, at most UNLABELLED_CAP lines (a seeded draw beyond)."""
    files = ctx.inputs["unlabelled"]
    if ctx.profile["unlabelled_lines"] <= UNLABELLED_CAP:
        return files
    import random

    lines = [line for path in files for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(ctx.config.seed).shuffle(lines)
    target = ctx.out / "compress" / "unlabelled.txt"
    if not target.is_file():
        runfolder.write_text(target, "\n".join(lines[:UNLABELLED_CAP]) + "\n")
    return [str(target)]


def compress_estimate(ctx: Context) -> float:
    """One student (the plan stops at the first that meets `ship`; more run only while the budget allows):
    the first one tried. With `latency_ratio` that is known before the baseline, since the teacher is the
    baseline's size; with an absolute latency a middle-sized one is assumed."""
    from bertx.recipes.plan.costs import STUDENT_WORK

    costs, own = ctx.costs, transfer_size(ctx)
    more = _sources_from_start(ctx)  # priced at the sources' own lengths, which the target's may be twice
    epochs = student_epochs(own + sum(count for count, _ in more))
    first, _ = _first_student(ctx)
    seconds = costs.student(first, own, epochs) + (costs.measure_student(first) if ctx.config.ship.latency_ratio else 0.0)
    for count, lengths in more:  # the teacher labels them, the student learns from them each epoch
        lengths = [min(n, ctx.profile["max_length"]) for n in lengths]
        seconds += costs.infer_s(count, lengths) + costs.train_s(epochs * count, lengths, share=STUDENT_WORK[first])
    return seconds


def _sources_from_start(ctx: Context) -> list[tuple[int, list[float]]]:
    """(count, lengths) of the sources' texts in every student's transfer set on a target without text of its own."""
    from bertx.recipes.plan.source_text import estimated_texts, text_poor

    return estimated_texts(ctx) if text_poor(ctx) else []


def _sources_count_from_start(ctx: Context) -> int:
    """How many of the sources' texts every student learns from on a target without text of its own (0 otherwise)."""
    return sum(count for count, _ in _sources_from_start(ctx))


def _first_student(ctx: Context) -> tuple[str, dict]:
    """The student tried first, and every kind's latency as a share of the teacher's (empty without a ratio)."""
    ratio = ctx.config.ship.latency_ratio
    kinds, shares = students_to_try(ctx, 1.0, ratio, fixed_ms=0.0) if ratio else (["bert-2"], {})
    return (kinds[0] if kinds else "bert-2"), shares


def levers_estimate(ctx: Context) -> float:
    """What the levers cost when all of them run (`_levers`): the teacher's int8 export, the first student again
    with the sources' texts and again from an ensemble, and one wider student. Priced apart from the stage:
    they run only when the best student does not score above the baseline, which no estimate knows before."""
    from bertx.recipes.plan.source_text import estimated_count

    ratio = ctx.config.ship.latency_ratio
    first, shares = _first_student(ctx)
    start = _sources_count_from_start(ctx)  # the sources' texts already in every student's transfer set: no lever of its own
    transfer, more = transfer_size(ctx) + start, 0 if start else estimated_count(ctx)
    seconds = ctx.costs.ship(export=True) + 1.2 * ctx.costs.student(first, transfer, student_epochs(transfer))
    if more:
        seconds += ctx.costs.student(first, transfer + more, student_epochs(transfer + more))
    # `_wider` takes the widest untried student predicted within WIDER_MARGIN of the target
    wider = [k for k in STUDENT_QUALITY if k != first and k in shares and shares[k] <= WIDER_MARGIN * ratio]
    if wider:
        seconds += ctx.costs.student(wider[0], transfer, student_epochs(transfer))
    return seconds


def export_candidate(ctx: Context, model: dict, name: str) -> dict:
    """A trained model's own export (int8, else fp32) as a candidate to ship, in a student row's form."""
    import time

    from bertx.evaluation.evaluate import evaluate

    started = time.perf_counter()
    export_dir = ctx.out / f"{name.split('-')[0]}.export"
    report = export_model(Path(model["folder"]), export_dir, ctx)
    score = float(evaluate(export_dir, ctx.inputs["dev"])[model["metric"]])
    return {
        "student": name,
        "folder": model["folder"],
        "export": str(export_dir),
        "quantize": report["quantize"],
        "metric": model["metric"],
        "pytorch_score": model["score"],
        "score": score,
        **timed(ctx, export_dir),
        "size_mb": weights_mb(export_dir),
        "seconds": round(time.perf_counter() - started, 1),
        "estimate_s": None,
        "predicted_latency_ms": None,
    }


def run(ctx: stages.Context, base: dict, teacher: dict, ship: dict, left_after, out: Path, ledger: dict) -> dict:
    """Distil students best-first until one meets every ship constraint or the budget runs out; when the best
    that meets them scores under the baseline, pull the levers that may close the gap (`_levers`)."""
    # Predictions from the baseline's latency timed beside the teacher: one window, one machine state.
    reference = teacher.get("baseline_ms_beside") or base["latency_ms"]
    target = ship["latency_ratio"] * reference if ship.get("latency_ratio") else ship.get("latency_ms")
    kinds, predicted = students_to_try(ctx, reference, target)
    transfer = transfer_size(ctx)
    # the students measured so far, kept in plan.json while the stage runs: an interrupted plan does not train them again
    partial = ledger["stages"].setdefault(PARTIAL, {"status": "partial", "rows": []})
    rows = partial["rows"]
    measured_note = ""
    if ship.get("latency_ratio"):
        kinds, measured_note = _measured_kinds(ctx, teacher, ship, kinds, predicted, target, partial, lambda: save_ledger(out, ledger))
    latencies = ", ".join(f"{k} ~{v:.2f} ms" for k, v in predicted.items())
    aim = f"; target {target:.2f} ms (the baseline timed {reference:.2f} ms beside the teacher)" if target else ""
    ctx.decide(
        "compress",
        f"try {', '.join(kinds)}",
        f"best expected dev score first among students predicted to meet the latency ({latencies}){aim}{measured_note}",
    )

    def distil(kind: str, teachers: tuple[str, ...] = (), more: tuple[str, int] | None = None) -> bool:
        """Distil, export and measure one student unless done (from the teacher, or from it and `teachers` as
        an ensemble; `more`: a file of more unlabelled text and its count, by default the sources' texts on a
        target without text of its own); False when the budget cannot afford it."""
        more = more or from_start
        name = kind + ("+ensemble" if teachers else "") + ("+sources" if more else "")
        if any(r["student"] == name for r in rows):
            return True
        size = transfer + (more[1] if more else 0)
        passes = student_epochs(size)
        estimate = ctx.costs.student(kind, size, passes) * (1 + len(teachers) * 0.2)  # each teacher labels the set too
        if len(rows) and left_after("ship", "score", "report") < estimate * ctx.costs.scale:
            ctx.decide(
                "compress",
                f"stop before {name}",
                f"{minutes(estimate * ctx.costs.scale)} min needed, {minutes(left_after('ship', 'score', 'report'))} min of the budget left",
            )
            return False
        started = time.perf_counter()
        result = distill_student(ctx, teacher["folder"], kind, passes, teachers, name, (more[0],) if more else ())
        result["seconds"], result["estimate_s"] = round(time.perf_counter() - started, 1), round(estimate, 1)
        result["predicted_latency_ms"] = predicted.get(kind)
        result["missed"] = missed_constraints(result, ship, teacher["score"])
        rows.append(result)
        ledger["elapsed_s"] = elapsed(ledger) + sum(r["seconds"] for r in rows)
        save_ledger(out, ledger)
        return True

    # The teacher alone teaches first. Teaching every student with the teacher and the baseline whenever the
    # teacher's dev gain was inside the noise was measured and dropped: on SST-2 the students were no better
    # (bert-3: 77.06 from both, 77.29 from the teacher, 77.64 from the baseline), and on the kitchen reviews a
    # gain of +12.5 on 32 dev examples counted as noise and the weaker baseline dragged the targets down.
    from_start = _sources_file_from_start(ctx)
    _best_first(kinds, rows, distil)
    _levers(ctx, base, teacher, ship, rows, lever_candidates(predicted, partial.get("measured")), distil)
    chosen = _chosen(ctx, rows, base, teacher)
    ledger["stages"].pop(PARTIAL, None)
    return {"students": rows, "chosen": chosen, "measured": partial.get("measured")}


def _sources_file_from_start(ctx: stages.Context) -> tuple[str, int] | None:
    """The sources' texts for every student (file, count) when the target has no text of its own, else None."""
    from bertx.recipes.plan.source_text import source_text_file, text_poor

    found = source_text_file(ctx) if text_poor(ctx) else None
    if found:
        ctx.decide(
            "compress",
            "teach every student with the sources' texts",
            f"the target has no text beyond its {ctx.examples} labelled examples: {found[1]} texts of the sources "
            "shaped as its inputs join the transfer set, which the teacher labels",
        )
    return found


def lever_candidates(predicted: dict, measured: dict | None) -> dict:
    """The predicted latencies of the students a lever may still train: not those built and timed over the
    latency target before training (CoNLL: bert-5 measured at 0.293x was otherwise trained as "the wider")."""
    missed = {kind for kind, row in (measured or {}).items() if not row["meets_ratio"]}
    return {kind: ms for kind, ms in predicted.items() if kind not in missed}


def _best_first(kinds: list[str], rows: list, distil) -> None:
    """Students distilled best-first until one meets every ship constraint or the budget stops."""
    for kind in kinds:
        if any(not r["missed"] for r in rows) or not distil(kind):
            break


def _chosen(ctx: stages.Context, rows: list, base: dict, teacher: dict) -> dict | None:
    """The best model meeting every ship constraint (the faster of two equal scores), or None: the teacher ships."""
    ok = [r for r in rows if not r["missed"]]
    if not ok:
        misses = "; ".join(f"{r['student']}: {', '.join(r['missed'])}" for r in rows) or "no student trained"
        ctx.decide("compress", "ship the teacher", f"no student met every ship constraint ({misses})")
        return None
    best = max(ok, key=lambda r: (r["score"], -r["latency_ms"]))
    ctx.decide(
        "compress",
        f"ship {'student ' if best['student'] != 'teacher-int8' else ''}{best['student']}",
        f"best dev {best['metric']} ({100 * best['score']:.2f}) among the models meeting every ship constraint; "
        f"teacher {100 * teacher['score']:.2f}, baseline {100 * base['score']:.2f}",
    )
    return {**best, "kind": "student"}


def _measured_kinds(
    ctx: stages.Context, teacher: dict, ship: dict, kinds: list[str], predicted: dict, target: float, partial: dict, save
) -> tuple[list[str], str]:
    """The students to try once the candidates are measured: predictions are a table of shares, a student
    built and timed beside the baseline is a measurement. Returns (kinds, the note for the decision)."""
    shortlist = [k for k in STUDENT_QUALITY if k in predicted and predicted[k] <= WIDER_MARGIN * target]
    if "measured" not in partial:
        partial["measured"] = measured_candidates(ctx, teacher["folder"], shortlist, ship["latency_ratio"])
        save()
    measured = partial["measured"]
    # after those measured to meet the target, the narrower ones not measured (predicted within the margin), so
    # that a student timed just over the target once trained (CoNLL's bert-3: 0.199x measured, 0.210x trained)
    # is followed by a narrower one, not by the teacher shipped at 0.38x
    narrower = [k for k in STUDENT_QUALITY if k in predicted and predicted[k] <= LATENCY_MARGIN * target and k not in measured]
    found = [k for k in shortlist if measured.get(k, {}).get("meets_ratio")] + narrower
    note = "; measured (int8, beside the baseline): " + ", ".join(f"{k} {m['latency_ratio']:.3f}x" for k, m in measured.items())
    return found[:MAX_STUDENTS] or kinds, note


def _levers(ctx: stages.Context, base: dict, teacher: dict, ship: dict, rows: list, predicted: dict, distil) -> None:
    """Never below the baseline without trying: when the best model meeting `ship` scores no better than the
    baseline on dev (a tie on a dev split of a few hundred examples is no evidence that the smaller model holds:
    RTE's 3-layer student tied its baseline at 54.02 on 398 pairs and lost 3.6 points on the official 277),
    pull the levers in turn while the budget lasts, until one scores above the baseline: the teacher's own int8
    export, the best admissible student again with the sources' texts as more transfer text, the same student
    taught by an ensemble, the widest student the latency may allow."""

    def best_ok() -> float:
        return max([r["score"] for r in rows if not r["missed"]], default=-1.0)

    if best_ok() > base["score"]:
        return
    ctx.decide(
        "compress",
        "pull the levers",
        f"the best model meeting `ship` scores {100 * max(best_ok(), 0):.2f} on dev, not above the baseline's "
        f"{100 * base['score']:.2f}: trying the teacher's int8 export, the sources' texts, an ensemble teacher, then a wider student",
    )
    for lever in (_teacher_export, _source_texts, _ensemble, _wider):
        lever(ctx, base, teacher, ship, rows, predicted, distil)
        if best_ok() > base["score"]:
            return


def _best_admissible_kind(rows: list) -> str | None:
    admissible = [r for r in rows if not r["missed"] and r.get("student_kind")]
    return max(admissible, key=lambda r: r["score"])["student_kind"] if admissible else None


def _teacher_export(ctx: stages.Context, base: dict, teacher: dict, ship: dict, rows: list, predicted: dict, distil) -> None:
    """The teacher's own int8 export: often several times faster than the PyTorch baseline."""
    if any(r["student"] == "teacher-int8" for r in rows):
        return
    try:
        row = export_candidate(ctx, teacher, "teacher-int8")
    except BertxError as err:
        ctx.decide("compress", "no teacher export", f"the teacher could not be exported: {err}")
    else:
        row["missed"] = missed_constraints(row, ship, teacher["score"])
        rows.append(row)
        verdict = f"misses {'; '.join(row['missed'])}" if row["missed"] else "meets every ship constraint"
        ctx.decide("compress", "try the teacher's int8 export", f"{100 * row['score']:.2f} on dev; {verdict}")


def _source_texts(ctx: stages.Context, base: dict, teacher: dict, ship: dict, rows: list, predicted: dict, distil) -> None:
    """The best admissible student again, its transfer set grown by the sources' texts of the target's shape."""
    from bertx.recipes.plan.source_text import source_text_file

    kind = _best_admissible_kind(rows)
    more = source_text_file(ctx) if kind and not any(r["student"].endswith("+sources") for r in rows) else None
    if more is None:  # no admissible student, no source of the target's shape, or every student had them already
        return
    ctx.decide(
        "compress",
        f"try {kind} with the sources' texts",
        f"{more[1]} texts of the sources shaped as the target's inputs join the transfer set "
        f"({transfer_size(ctx)} -> {transfer_size(ctx) + more[1]}); the teacher labels them",
    )
    if distil(kind, more=more):
        retime_twins(ctx, twins(rows, kind), ship, teacher["score"])


def _ensemble(ctx: stages.Context, base: dict, teacher: dict, ship: dict, rows: list, predicted: dict, distil) -> None:
    """The best admissible student again, taught by the ensemble of the teacher and the baseline the plan has
    already trained (their averaged outputs are often better targets than either's)."""
    kind = _best_admissible_kind(rows)
    if not kind or not base.get("folder") or base["folder"] == teacher["folder"]:
        return
    ctx.decide("compress", f"try {kind} from an ensemble", f"the teacher and the baseline, averaged as probabilities, teach {kind} again")
    try:
        taught = distil(kind, (base["folder"],))
    except BertxError as err:  # another encoder or vocabulary: the two cannot be averaged
        ctx.decide("compress", "no ensemble", str(err))
    else:
        if taught:
            retime_twins(ctx, twins(rows, kind), ship, teacher["score"])


def _wider(ctx: stages.Context, base: dict, teacher: dict, ship: dict, rows: list, predicted: dict, distil) -> None:
    """The widest student not tried yet that the latency may allow (its measured latency decides)."""
    reference = teacher.get("baseline_ms_beside") or base["latency_ms"]
    target = ship["latency_ratio"] * reference if ship.get("latency_ratio") else ship.get("latency_ms")
    untried = [
        k
        for k in STUDENT_QUALITY
        if k in predicted
        and not any(r.get("student_kind", r["student"]) == k for r in rows)
        and (target is None or predicted[k] <= WIDER_MARGIN * target)
    ]
    if untried:
        ctx.decide(
            "compress",
            f"try the wider {untried[0]}",
            f"predicted {predicted[untried[0]]:.2f} ms, within "
            f"{WIDER_MARGIN}x the target: the prediction may be pessimistic, and its measured latency decides",
        )
        distil(untried[0])
