"""A plan's schedule: every stage with its settings and estimated seconds, the optional ones chosen together
(`budget.best_schedule`) for the most expected gain that fits the budget, and the `--dry-run` description."""

from __future__ import annotations

import itertools

from bertx.evaluation.rank import RANKABLE
from bertx.recipes.plan import adapt, budget, choose, compress, stages
from bertx.recipes.plan.ledger import StageRecord
from bertx.recipes.plan.costs import minutes

ORDER = ("profile", "baseline", "choose", "adapt", "teacher", "compress", "ship", "score", "report")

REPORT_S = 5.0


def schedule(ctx: stages.Context, elapsed: float = 0.0, kept: dict | None = None, done: frozenset = frozenset()) -> list[dict]:
    """Every stage with its settings, estimated seconds, and whether it runs (with the reason when not).

    The optional stages (choose, adapt, compress) and the teacher's length are chosen together for the most
    expected gain that fits the budget (`budget.best_schedule`). `kept`: rows of stages already started or
    finished (`done`: those finished, already in `elapsed`), which keep their settings: a plan re-plans what
    has not started after each stage, with the costs calibrated on the stages that ran."""
    config, costs, kept = ctx.config, ctx.costs, kept or {}
    scale = costs.scale
    helpful_possible = bool(config.sources) and config.regime in ("auto", "multitask") and config.task in RANKABLE
    regime, why = stages.teacher_regime(ctx, ["(sources)"] if helpful_possible else [])
    alone, alone_why = stages.teacher_regime(ctx, [], ranked=False)
    epochs = stages.teacher_epochs(ctx.examples)
    # Once the sources have been chosen, the teacher is priced in the regime they lead to (re-planning after
    # the choose stage); before, its multi-task extra is priced with the sources (`_choose_options`).
    sources_ran = "choose" in kept and kept["choose"].get("run") and helpful_possible
    teacher_regime = (regime, why) if sources_ran else (alone, alone_why)
    fixed = {
        "baseline": {"estimate_s": stages.baseline_estimate(ctx)},
        "ship": {"estimate_s": costs.ship(export=False)},
        "score": {"estimate_s": costs.score(ctx.profile.get("report_examples") or ctx.profile["dev_examples"])},
        "report": {"estimate_s": REPORT_S},
    }
    choices = {
        name: options
        for name, options in (
            ("choose", _choose_options(ctx, regime, alone, epochs)),
            ("adapt", _adapt_options(ctx)),
            ("teacher", _teacher_options(ctx, *teacher_regime, epochs)),
            ("compress", _compress_options(ctx)),
        )
        if options
    }
    for options in choices.values():
        for i, option in enumerate(options):
            options[i] = budget.Option(option.label, option.seconds * scale, option.value, option.settings, option.runs)
    reserved = elapsed + scale * sum(row["estimate_s"] for name, row in fixed.items() if name not in kept)
    reserved += sum(row["estimate_s"] for name, row in kept.items() if row.get("run") and name not in done)
    picked = budget.best_schedule({n: o for n, o in choices.items() if n not in kept}, reserved, config.budget_s)
    left = config.budget_s - reserved - sum(o.seconds for o in picked.values())
    rows = [_row(ctx, name, kept, fixed, picked, choices, left, scale) for name in ORDER[1:]]
    by_name = {r["stage"]: r for r in rows}
    extra = by_name["choose"].pop("teacher_extra_s", 0.0) * scale if "choose" not in kept else 0.0
    if by_name["choose"]["run"] and "choose" not in kept and "teacher" not in kept and helpful_possible:
        # the multi-task teacher's extra time was priced with the sources; it belongs to the teacher's estimate
        by_name["choose"]["estimate_s"] = round(by_name["choose"]["estimate_s"] - extra, 1)
        by_name["teacher"].update(regime=regime, regime_reason=why, estimate_s=round(by_name["teacher"]["estimate_s"] + extra, 1))
    if not by_name["compress"]["run"] and "ship" not in kept:  # the teacher is exported at the ship stage
        by_name["ship"]["estimate_s"] = round(costs.ship(export=True) * scale, 1)
    return rows


def _row(ctx: stages.Context, name: str, kept: dict, fixed: dict, picked: dict, choices: dict, left: float, scale: float) -> dict:
    """One stage's row of the schedule: kept as it was, a fixed stage, one that does not apply, or the option
    the budget picked (with the reason when it does not run)."""
    if name in kept:
        return kept[name]
    if name in fixed:
        return {"stage": name, "run": True, "reason": None, "estimate_s": round(fixed[name]["estimate_s"] * scale, 1)}
    if name not in picked:
        return {"stage": name, "run": False, "reason": _NOT_APPLICABLE[name](ctx)}
    option = picked[name]
    reason = option.settings.get("reason")
    if not option.runs and reason is None:
        most = minutes(max(o.seconds for o in choices[name]))
        reason = f"does not fit the budget beside the stages worth more ({most} min; {minutes(max(0.0, left))} min left)"
    settings = {k: v for k, v in option.settings.items() if k != "reason"}
    return {"stage": name, "run": option.runs, "reason": reason, "estimate_s": round(option.seconds, 1), "option": option.label, **settings}


_NOT_APPLICABLE = {
    "choose": lambda ctx: "no sources and one encoder: nothing to choose",
    "adapt": lambda ctx: (
        f"too little unlabelled text for masked LM ({adapt.adapt_sequences(ctx)} blocks of {adapt.adapt_length(ctx)} tokens; 64 needed)"
    ),
    "compress": lambda ctx: (
        "QA is shipped as the teacher (students of extractive QA are not built)"
        if ctx.config.task == "qa"
        else "no student kinds allowed (students: [])"
    ),
}


SOURCE_CAPS = (stages.SOURCE_EXAMPLES, 1000)


# Expected points each option adds (budget.py's docstring says where they come from).
VALUE = {
    "sources": 1.5,
    "capped sources": 1.2,
    "closest sources": 1.3,
    "closest capped sources": 1.0,
    "encoders": 0.5,
    "adapt": 1.0,
    "language": 3.0,
    "teacher": 2.0,
    "compress": 4.0,
}


def _choose_options(ctx: stages.Context, regime: str, alone: str, epochs: float) -> list[budget.Option]:
    config = ctx.config
    if not (len(config.encoders) > 1 or config.sources):
        return []
    extra = stages.teacher_estimate(ctx, regime, epochs) - stages.teacher_estimate(ctx, alone, epochs)
    options = []
    if config.sources:
        count = len(stages.load_sources(config).tasks)
        for closest, cap in itertools.product((None, stages.CLOSEST_SOURCES), SOURCE_CAPS):
            if closest and closest >= count:
                continue
            seconds = choose.choose_estimate(ctx, cap, closest) + extra
            label = ("closest " if closest else "") + ("sources" if cap == stages.SOURCE_EXAMPLES else "capped sources")
            # a cheaper way that saves nothing over one worth more is not offered
            if not any(o.seconds <= seconds and o.value >= VALUE[label] for o in options):
                options.append(budget.Option(label, seconds, VALUE[label], {"source_examples": cap, "closest": closest, "teacher_extra_s": extra}))
    else:
        options.append(budget.Option("encoders", choose.choose_estimate(ctx), VALUE["encoders"]))
    return options + [budget.Option("skip", 0.0, 0.0, runs=False)]


def _adapt_options(ctx: stages.Context) -> list[budget.Option]:
    if adapt.adapt_sequences(ctx) < 64:
        return []
    full = adapt.adapt_steps(ctx)
    foreign = bool(ctx.profile.get("foreign_text"))
    fixed = ctx.costs.rank(2, ctx.examples) + (ctx.costs.vocabulary(ctx.profile["unlabelled_lines"]) if foreign else 0.0)
    steps_cost = lambda steps: ctx.costs.pretrain(int(steps), length=adapt.adapt_length(ctx)) + fixed  # noqa: E731
    value = VALUE["language"] if foreign else VALUE["adapt"]
    options = [
        budget.Option(
            "adapt",
            seconds,
            value * (steps / full) ** 0.5,
            {"steps": int(steps), "vocabulary": foreign, **({"note": f"shortened to {int(steps)} steps to fit the budget"} if steps < full else {})},
        )
        for steps, seconds in budget.fractions_of(steps_cost, full, floor=min(full, 50))
    ]
    return options + [budget.Option("skip", 0.0, 0.0, runs=False)]


def _teacher_options(ctx: stages.Context, regime: str, why: str, epochs: float) -> list[budget.Option]:
    """The teacher always runs: in full, or shortened (to two thirds, half, a third, 3 epochs, 1 epoch)."""
    lengths = sorted({float(max(1, round(epochs * f))) for f in (1.0, 0.67, 0.5, 0.33)} | {e for e in (3.0, 1.0) if e < epochs}, reverse=True)
    return [
        budget.Option(
            "teacher",
            stages.teacher_estimate(ctx, regime, e),
            VALUE["teacher"] * (e / epochs) ** 0.5,
            {"regime": regime, "regime_reason": why, "epochs": e, **({"note": f"shortened to {e:g} epochs to fit the budget"} if e < epochs else {})},
        )
        for e in lengths
    ]


def _compress_options(ctx: stages.Context) -> list[budget.Option]:
    if ctx.config.task == "qa" or not ctx.config.students:
        return []
    export_teacher = ctx.costs.ship(export=True) - ctx.costs.ship(export=False)
    return [
        budget.Option(
            "compress",
            compress.compress_estimate(ctx),
            VALUE["compress"],
            {
                "students_at_most": compress.MAX_STUDENTS,
                "transfer_examples": compress.transfer_size(ctx),
                "levers_s": round(compress.levers_estimate(ctx) * ctx.costs.scale, 1),
            },
        ),
        budget.Option("skip", export_teacher, 0.0, {"reason": "does not fit the budget: the teacher is shipped"}, runs=False),
    ]


def describe_schedule(ledger: dict) -> str:
    profiled = StageRecord.of(ledger, "profile")
    profile, spent = profiled.result["profile"], profiled.seconds
    lines = [
        f"profile: {profile['train_examples']} training / {profile['dev_examples']} dev examples, "
        f"{profile['unlabelled_lines']} unlabelled lines; lengths p50 {profile['lengths']['p50']}, "
        f"p95 {profile['lengths']['p95']} -> max_length {profile['max_length']}; "
        f"{profile['probe']['train_tokens_per_s']} training tokens/s at {profile['probe']['length']} tokens "
        f"(probed at {', '.join(str(p['length']) for p in profile['probe'].get('points', [profile['probe']]))}; {spent:.0f} s)"
    ]
    if "pieces_per_word" in profile:
        lines.append(
            f"  {profile['pieces_per_word']:.2f} word pieces per word"
            + (": another language than the encoder's (the adapt stage gives it the text's word pieces first)" if profile.get("foreign_text") else "")
        )
    inputs = profiled.result["inputs"]
    if inputs.get("report_role"):
        count = profile.get("report_examples")
        lines.append(f"  scores reported on the {inputs['report_role']}" + (f" ({count} examples, held out from every decision)" if count else ""))
    total = spent
    for row in ledger["schedule"]:
        if row["run"]:
            total += row["estimate_s"]
            extra = {
                k: row[k]
                for k in ("option", "regime", "epochs", "steps", "vocabulary", "source_examples", "students_at_most", "transfer_examples", "note")
                if row.get(k) not in (None, False)
            }
            lines.append(f"  {row['stage']:<9} {minutes(row['estimate_s']):>6.1f} min  " + ", ".join(f"{k} {v}" for k, v in extra.items()))
        else:
            lines.append(f"  {row['stage']:<9}   skip      {row['reason']}")
    lines.append(f"estimated total {minutes(total)} min of a {minutes(ledger['budget_s'])} min budget")
    levers = next((row.get("levers_s") for row in ledger["schedule"] if row["stage"] == "compress" and row["run"]), None)
    if levers:
        # the levers run only when the best student does not beat the baseline; the budget still bounds them
        with_levers = min(total + levers, ledger["budget_s"])
        lines.append(f"  up to {minutes(with_levers)} min if the best student does not beat the baseline and the levers run")
    return "\n".join(lines)
