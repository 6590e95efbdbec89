"""`bertx plan`: from a target task to the best small model that meets `ship`, within a wall-clock budget.

    profile  -> data, lengths (max_length), seconds per token on this machine (what each stage will cost)
    baseline -> `bertx finetune` defaults: the score and latency the plan must beat
    choose   -> encoder and sources, ranked from frozen features      (skipped: nothing to choose)
    adapt    -> masked LM on the unlabelled text, kept if it ranks up  (skipped: no text, or no time)
    teacher  -> few-shot | multi-task with helpful sources | adapters | full fine-tuning
    compress -> students distilled on the transfer set, exported, measured; the best that meets `ship`
    ship     -> its int8 export in OUTPUT/ship, and the `bertx serve` line
    report   -> OUTPUT/plan.json and OUTPUT/report.html: every decision with its measured reason

Every stage is a run folder under the output. plan.json is written after each stage: a rerun reuses the
finished stages and the decisions already taken, and an interrupted stage continues from its checkpoint.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
import time
from pathlib import Path

from bertx import runfolder
from bertx.config.plan import PlanConfig
from bertx.errors import BertxError
from bertx.recipes.plan import budget, stages
from bertx.recipes.plan.costs import Costs, minutes
from bertx.recipes.plan.inputs import check_unchanged, prepare_inputs
from bertx.recipes.plan.profile import encoder_path, probe_lengths, probe_points, profile_data
from bertx.console import say

PLAN_FILE = "plan.json"
ORDER = ("profile", "baseline", "choose", "adapt", "teacher", "compress", "ship", "score", "report")
REPORT_S = 5.0
WIDER_MARGIN = 1.8  # a lever: a student predicted up to this far over the latency target is still measured
# Settings that may change between a plan and its rerun: they do not change what a finished stage means.
RERUN_CHANGES = {"budget", "output"}


def plan(config: PlanConfig, dry_run: bool = False, overwrite: bool = False, show_progress: bool = True, log=say) -> dict:
    """Run (or, with `dry_run`, only schedule) the plan; returns plan.json's content."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="bertx-plan-") as scratch:
            ledger = _new_ledger(config)
            ctx = _profiled(config, Path(scratch), ledger, show_progress=False)
            ledger["schedule"] = schedule(ctx)
            log(describe_schedule(ledger))
            return ledger
    from bertx.training import outputs

    out = Path(config.output)
    reads = [config.resolve(config.train), config.resolve(config.dev) if config.dev else None,
             config.resolve(config.test) if config.test else None,
             *[config.resolve(p) for p in config.unlabelled], config.resolve(config.sources) if config.sources else None,
             *[encoder_path(e) for e in config.encoders]]
    with outputs.claimed_folder(out, config.model_dump(mode="json"), overwrite, [r for r in reads if r]):
        ledger = _load_ledger(out, config)
        return _run(config, out, ledger, show_progress, log)


# ---- the ledger (plan.json) -----------------------------------------------------------------------------
def _new_ledger(config: PlanConfig) -> dict:
    return {"config": config.model_dump(mode="json"), "budget_s": config.budget_s, "stages": {}, "decisions": [],
            "elapsed_s": 0.0}


def _load_ledger(out: Path, config: PlanConfig) -> dict:
    path = out / PLAN_FILE
    if not path.is_file():
        return _new_ledger(config)
    ledger = json.loads(path.read_text(encoding="utf-8"))
    old, new = ledger.get("config", {}), config.model_dump(mode="json")
    changed = sorted(k for k in set(old) | set(new) if k not in RERUN_CHANGES and old.get(k) != new.get(k))
    if changed:
        raise BertxError(f"{path}: this folder holds a plan with other settings ({', '.join(changed)}); pass --overwrite to "
                         "start again, or choose another --output")
    ledger["config"], ledger["budget_s"] = new, config.budget_s
    return ledger


def _save(out: Path, ledger: dict) -> None:
    runfolder.write_json(out / PLAN_FILE, ledger)


# ---- scheduling ---------------------------------------------------------------------------------------
def _profiled(config: PlanConfig, folder: Path, ledger: dict, show_progress: bool) -> stages.Context:
    """The profile stage (reused when done): inputs, data profile, throughput probe."""
    record = ledger["stages"].get("profile")
    if record and record.get("status") == "done":
        result = record["result"]
        check_unchanged(result["inputs"])
    else:
        started = time.perf_counter()
        inputs = prepare_inputs(config, folder / "profile")
        profile = profile_data(config, inputs)
        from bertx.training.accelerator import resolve_precision

        sources = stages.load_sources(config)
        longest = max([profile["max_length"], *(e.data.max_length for e in (sources.tasks if sources else []))])
        lengths = probe_lengths(profile["mean_length_at_max"], longest)
        main = int(min(profile["max_length"], max(16, profile["mean_length_at_max"])))
        profile["probe"] = probe_points(encoder_path(config.encoders[0]), lengths, main if main in lengths else lengths[0],
                                        resolve_precision("auto"))
        result = {"inputs": inputs, "profile": profile}
        ledger["stages"]["profile"] = {"status": "done", "estimate_s": None, "seconds": round(time.perf_counter() - started, 1),
                                       "result": result}
    profile = result["profile"]
    check_reachable(config, profile)
    ctx = stages.Context(config, folder, result["inputs"], profile, Costs(profile["probe"], profile), show_progress,
                         ledger["decisions"])
    for record in ledger["stages"].values():
        if record.get("estimate_s") and record.get("seconds") is not None and record.get("trains"):
            ctx.costs.calibrate(record["estimate_s"], record["seconds"])
    return ctx


def check_reachable(config: PlanConfig, profile: dict) -> None:
    """A ship constraint no model can meet is refused before any training: below the time tokenising one
    input takes, or below the smallest student's int8 embedding table (the vocabulary x 8 dimensions)."""
    ship = config.ship
    if ship.latency_ms is not None and ship.latency_ms < profile["tokenize_ms"]:
        raise BertxError(f"ship latency_ms {ship.latency_ms:g}: tokenising one input alone takes {profile['tokenize_ms']:.3f} ms "
                         "on this machine, so no model can meet it; raise it or use latency_ratio")
    smallest_mb = profile["vocab_size"] * 8 / 2**20
    if ship.size_mb is not None and ship.size_mb < smallest_mb:
        raise BertxError(f"ship size_mb {ship.size_mb:g}: the smallest student's embedding table alone ({profile['vocab_size']} "
                         f"word pieces x 8 dimensions, int8) takes {smallest_mb:.2f} MB; raise it")


def schedule(ctx: stages.Context, elapsed: float = 0.0, kept: dict | None = None, done: frozenset = frozenset()) -> list[dict]:
    """Every stage with its settings, estimated seconds, and whether it runs (with the reason when not).

    The optional stages (choose, adapt, compress) and the teacher's length are chosen together for the most
    expected gain that fits the budget (`budget.best_schedule`). `kept`: rows of stages already started or
    finished (`done`: those finished, already in `elapsed`), which keep their settings: a plan re-plans what
    has not started after each stage, with the costs calibrated on the stages that ran."""
    config, costs, kept = ctx.config, ctx.costs, kept or {}
    scale = costs.scale
    helpful_possible = bool(config.sources) and config.regime in ("auto", "multitask") and config.task in stages.RANKABLE
    regime, why = stages.teacher_regime(ctx, ["(sources)"] if helpful_possible else [])
    alone, alone_why = stages.teacher_regime(ctx, [], ranked=False)
    epochs = stages.teacher_epochs(ctx.examples)
    # Once the sources have been chosen, the teacher is priced in the regime they lead to (re-planning after
    # the choose stage); before, its multi-task extra is priced with the sources (`_choose_options`).
    sources_ran = "choose" in kept and kept["choose"].get("run") and helpful_possible
    teacher_regime = (regime, why) if sources_ran else (alone, alone_why)
    fixed = {"baseline": {"estimate_s": stages.baseline_estimate(ctx)}, "ship": {"estimate_s": costs.ship(export=False)},
             "score": {"estimate_s": costs.score(ctx.profile.get("report_examples") or ctx.profile["dev_examples"])},
             "report": {"estimate_s": REPORT_S}}
    choices = {name: options for name, options in (
        ("choose", _choose_options(ctx, regime, alone, epochs)), ("adapt", _adapt_options(ctx)),
        ("teacher", _teacher_options(ctx, *teacher_regime, epochs)), ("compress", _compress_options(ctx))) if options}
    for options in choices.values():
        for i, option in enumerate(options):
            options[i] = budget.Option(option.label, option.seconds * scale, option.value, option.settings, option.runs)
    reserved = elapsed + scale * sum(row["estimate_s"] for name, row in fixed.items() if name not in kept)
    reserved += sum(row["estimate_s"] for name, row in kept.items() if row.get("run") and name not in done)
    picked = budget.best_schedule({n: o for n, o in choices.items() if n not in kept}, reserved, config.budget_s)
    left = config.budget_s - reserved - sum(o.seconds for o in picked.values())
    rows = []
    for name in ORDER[1:]:
        if name in kept:
            rows.append(kept[name])
        elif name in fixed:
            rows.append({"stage": name, "run": True, "reason": None, "estimate_s": round(fixed[name]["estimate_s"] * scale, 1)})
        elif name not in picked:
            rows.append({"stage": name, "run": False, "reason": _NOT_APPLICABLE[name](ctx)})
        else:
            option = picked[name]
            reason = option.settings.get("reason")
            if not option.runs and reason is None:
                reason = (f"does not fit the budget beside the stages worth more ({minutes(max(o.seconds for o in choices[name]))} "
                          f"min; {minutes(max(0.0, left))} min left)")
            settings = {k: v for k, v in option.settings.items() if k != "reason"}
            rows.append({"stage": name, "run": option.runs, "reason": reason, "estimate_s": round(option.seconds, 1),
                         "option": option.label, **settings})
    by_name = {r["stage"]: r for r in rows}
    extra = by_name["choose"].pop("teacher_extra_s", 0.0) * scale if "choose" not in kept else 0.0
    if by_name["choose"]["run"] and "choose" not in kept and "teacher" not in kept and helpful_possible:
        # the multi-task teacher's extra time was priced with the sources; it belongs to the teacher's estimate
        by_name["choose"]["estimate_s"] = round(by_name["choose"]["estimate_s"] - extra, 1)
        by_name["teacher"].update(regime=regime, regime_reason=why, estimate_s=round(by_name["teacher"]["estimate_s"] + extra, 1))
    if not by_name["compress"]["run"] and "ship" not in kept:  # the teacher is exported at the ship stage
        by_name["ship"]["estimate_s"] = round(costs.ship(export=True) * scale, 1)
    return rows


_NOT_APPLICABLE = {
    "choose": lambda ctx: "no sources and one encoder: nothing to choose",
    "adapt": lambda ctx: (f"too little unlabelled text for masked LM ({stages.adapt_sequences(ctx)} blocks of "
                          f"{stages.adapt_length(ctx)} tokens; 64 needed)"),
    "compress": lambda ctx: ("QA is shipped as the teacher (students of extractive QA are not built)" if ctx.config.task == "qa"
                             else "no student kinds allowed (students: [])"),
}
SOURCE_CAPS = (stages.SOURCE_EXAMPLES, 1000)
# Expected points each option adds (budget.py's docstring says where they come from).
VALUE = {"sources": 1.5, "capped sources": 1.2, "closest sources": 1.3, "closest capped sources": 1.0, "encoders": 0.5, "adapt": 1.0, "language": 3.0, "teacher": 2.0, "compress": 4.0}


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
            seconds = stages.choose_estimate(ctx, cap, closest) + extra
            label = ("closest " if closest else "") + ("sources" if cap == stages.SOURCE_EXAMPLES else "capped sources")
            # a cheaper way that saves nothing over one worth more is not offered
            if not any(o.seconds <= seconds and o.value >= VALUE[label] for o in options):
                options.append(budget.Option(label, seconds, VALUE[label], {"source_examples": cap, "closest": closest,
                                                                            "teacher_extra_s": extra}))
    else:
        options.append(budget.Option("encoders", stages.choose_estimate(ctx), VALUE["encoders"]))
    return options + [budget.Option("skip", 0.0, 0.0, runs=False)]


def _adapt_options(ctx: stages.Context) -> list[budget.Option]:
    if stages.adapt_sequences(ctx) < 64:
        return []
    full = stages.adapt_steps(ctx)
    foreign = bool(ctx.profile.get("foreign_text"))
    fixed = ctx.costs.rank(2, ctx.examples) + (ctx.costs.vocabulary(ctx.profile["unlabelled_lines"]) if foreign else 0.0)
    steps_cost = lambda steps: ctx.costs.pretrain(int(steps), length=stages.adapt_length(ctx)) + fixed  # noqa: E731
    value = VALUE["language"] if foreign else VALUE["adapt"]
    options = [budget.Option("adapt", seconds, value * (steps / full) ** 0.5,
                             {"steps": int(steps), "vocabulary": foreign,
                              **({"note": f"shortened to {int(steps)} steps to fit the budget"} if steps < full else {})})
               for steps, seconds in budget.fractions_of(steps_cost, full, floor=min(full, 50))]
    return options + [budget.Option("skip", 0.0, 0.0, runs=False)]


def _teacher_options(ctx: stages.Context, regime: str, why: str, epochs: float) -> list[budget.Option]:
    """The teacher always runs: in full, or shortened (to two thirds, half, a third, 3 epochs, 1 epoch)."""
    lengths = sorted({float(max(1, round(epochs * f))) for f in (1.0, 0.67, 0.5, 0.33)} | {e for e in (3.0, 1.0) if e < epochs},
                     reverse=True)
    return [budget.Option("teacher", stages.teacher_estimate(ctx, regime, e), VALUE["teacher"] * (e / epochs) ** 0.5,
                          {"regime": regime, "regime_reason": why, "epochs": e,
                           **({"note": f"shortened to {e:g} epochs to fit the budget"} if e < epochs else {})})
            for e in lengths]


def _compress_options(ctx: stages.Context) -> list[budget.Option]:
    if ctx.config.task == "qa" or not ctx.config.students:
        return []
    export_teacher = ctx.costs.ship(export=True) - ctx.costs.ship(export=False)
    return [budget.Option("compress", stages.compress_estimate(ctx), VALUE["compress"],
                          {"students_at_most": stages.MAX_STUDENTS, "transfer_examples": stages.transfer_size(ctx)}),
            budget.Option("skip", export_teacher, 0.0, {"reason": "does not fit the budget: the teacher is shipped"}, runs=False)]


def describe_schedule(ledger: dict) -> str:
    profile = ledger["stages"]["profile"]["result"]["profile"]
    spent = ledger["stages"]["profile"]["seconds"]
    lines = [f"profile: {profile['train_examples']} training / {profile['dev_examples']} dev examples, "
             f"{profile['unlabelled_lines']} unlabelled lines; lengths p50 {profile['lengths']['p50']}, "
             f"p95 {profile['lengths']['p95']} -> max_length {profile['max_length']}; "
             f"{profile['probe']['train_tokens_per_s']} training tokens/s at {profile['probe']['length']} tokens "
             f"(probed at {', '.join(str(p['length']) for p in profile['probe'].get('points', [profile['probe']]))}; {spent:.0f} s)"]
    if "pieces_per_word" in profile:
        lines.append(f"  {profile['pieces_per_word']:.2f} word pieces per word" + (
            ": another language than the encoder's (the adapt stage gives it the text's word pieces first)"
            if profile.get("foreign_text") else ""))
    inputs = ledger["stages"]["profile"]["result"]["inputs"]
    if inputs.get("report_role"):
        count = profile.get("report_examples")
        lines.append(f"  scores reported on the {inputs['report_role']}" + (f" ({count} examples, held out from every "
                     "decision)" if count else ""))
    total = spent
    for row in ledger["schedule"]:
        if row["run"]:
            total += row["estimate_s"]
            extra = {k: row[k] for k in ("option", "regime", "epochs", "steps", "vocabulary", "source_examples", "students_at_most",
                                         "transfer_examples", "note") if row.get(k) not in (None, False)}
            lines.append(f"  {row['stage']:<9} {minutes(row['estimate_s']):>6.1f} min  " + ", ".join(f"{k} {v}" for k, v in extra.items()))
        else:
            lines.append(f"  {row['stage']:<9}   skip      {row['reason']}")
    lines.append(f"estimated total {minutes(total)} min of a {minutes(ledger['budget_s'])} min budget")
    return "\n".join(lines)


# ---- running --------------------------------------------------------------------------------------------
class Stages:
    """Runs a plan's stages in order against its ledger: a finished stage is reused, each one is recorded
    when it ends (plan.json rewritten), and the stages not started yet are re-planned after it."""

    def __init__(self, config: PlanConfig, out: Path, ledger: dict, ctx: stages.Context, log):
        self.config, self.out, self.ledger, self.ctx, self.log = config, out, ledger, ctx, log
        self.started = ledger.setdefault("started", [])

    @property
    def rows(self) -> dict:
        return {r["stage"]: r for r in self.ledger["schedule"]}

    def done(self, name: str) -> bool:
        return self.ledger["stages"].get(name, {}).get("status") in ("done", "skipped")

    def ran(self, name: str) -> bool:
        return self.ledger["stages"].get(name, {}).get("status") == "done"

    def run(self, name: str, body, trains: bool = True):
        if self.done(name):
            return self.ledger["stages"][name].get("result")
        if name not in self.started:
            self.started.append(name)
            _save(self.out, self.ledger)
        self.log(f"[plan] {name} ...")
        begun = time.perf_counter()
        result = body()
        seconds = round(time.perf_counter() - begun, 1)
        estimate = self.rows[name].get("estimate_s")
        self.ledger["stages"][name] = {"status": "done", "estimate_s": estimate, "seconds": seconds, "trains": trains, "result": result}
        if trains and estimate:
            self.ctx.costs.calibrate(estimate, seconds)
        self.ledger["elapsed_s"] = _elapsed(self.ledger)
        self.replan()
        _save(self.out, self.ledger)
        self.log(f"[plan] {name} done in {minutes(seconds)} min (estimated {minutes(estimate or 0)}); "
                 f"{minutes(self.config.budget_s - self.ledger['elapsed_s'])} min of the budget left")
        return result

    def skip(self, name: str, reason: str) -> None:
        if not self.done(name):
            self.started.append(name)
            self.ledger["stages"][name] = {"status": "skipped", "reason": reason, "estimate_s": self.rows[name].get("estimate_s"),
                                           "seconds": 0.0}
            self.ctx.decide(name, "skip", reason)
            _save(self.out, self.ledger)

    def replan(self) -> None:
        """The stages not started yet are chosen again with the costs calibrated on those that ran and the
        time actually left: a stage dropped at the start is re-admitted when the earlier ones ran short."""
        before = self.rows
        kept = {n: before[n] for n in self.started if n in before}
        self.ledger["schedule"] = schedule(self.ctx, _elapsed(self.ledger), kept, frozenset(n for n in self.started if self.done(n)))
        for name, row in self.rows.items():
            if name not in kept and row["run"] != before[name]["run"]:
                self.ctx.decide("plan", f"re-plan: {'run' if row['run'] else 'drop'} {name}",
                                f"after {self.started[-1]}: {minutes(self.config.budget_s - _elapsed(self.ledger))} min left, "
                                f"costs scaled x{self.ctx.costs.scale:.2f} by the stages that ran")

    def left_after(self, *later: str) -> float:
        """Seconds of the budget left once the later mandatory stages are reserved."""
        reserved = sum(self.rows[n]["estimate_s"] for n in later if self.rows[n]["run"] and not self.done(n))
        return self.config.budget_s - _elapsed(self.ledger) - reserved


def _run(config: PlanConfig, out: Path, ledger: dict, show_progress: bool, log) -> dict:
    ctx = _profiled(config, out, ledger, show_progress)
    ledger["elapsed_s"] = _elapsed(ledger)
    if "schedule" not in ledger:
        ledger["schedule"] = schedule(ctx, ledger["elapsed_s"])
        ledger["estimate_s"] = round(ledger["elapsed_s"] + sum(r["estimate_s"] for r in ledger["schedule"] if r["run"]), 1)
    _save(out, ledger)
    log(describe_schedule(ledger))
    plan = Stages(config, out, ledger, ctx, log)
    base = plan.run("baseline", lambda: stages.baseline(ctx))
    ship_spec = _ship_targets(config, base)
    encoder, helpful = _transfer_stages(plan, ctx)
    regime, why = stages.teacher_regime(ctx, helpful, ranked=plan.ran("choose"))
    if not plan.done("teacher"):
        ctx.decide("teacher", f"regime {regime}, {plan.rows['teacher']['epochs']:g} epochs", why)
    teacher = plan.run("teacher", lambda: stages.teacher(ctx, encoder, regime, helpful, plan.rows["teacher"]["epochs"]))
    chosen_model = {**teacher, "kind": "teacher"}
    if plan.rows["compress"]["run"]:
        compressed = plan.run("compress", lambda: _compress(ctx, base, teacher, ship_spec, plan.left_after, out, ledger))
        chosen_model = compressed.get("chosen") or chosen_model
    else:
        plan.skip("compress", plan.rows["compress"]["reason"])
    shipped = plan.run("ship", lambda: stages.ship(ctx, chosen_model), trains=False)
    _flag_below_baseline(ctx, base, teacher, shipped, ledger)
    scores = plan.run("score", lambda: stages.held_out_scores(ctx, base, teacher, shipped), trains=False)
    ledger["summary"] = _summary(ledger, base, teacher, shipped, ship_spec, scores)
    _save(out, ledger)
    from bertx.evaluation.plan_report import write_report

    plan.run("report", lambda: {"html": str(write_report(out, ledger))}, trains=False)
    ledger["summary"]["wall_s"] = ledger["elapsed_s"]
    _save(out, ledger)
    log(shipped_line(ledger["summary"], base, config))
    log(f"serve it: {shipped['serve']}")
    return ledger


def _transfer_stages(plan: Stages, ctx: stages.Context) -> tuple[str, list[str]]:
    """The choose and adapt stages, each run or skipped as scheduled: (the teacher's encoder, helpful sources)."""
    encoder, helpful = encoder_path(ctx.config.encoders[0]), []
    if plan.rows["choose"]["run"]:
        row = plan.rows["choose"]
        chosen = plan.run("choose", lambda: stages.choose(ctx, row.get("source_examples", stages.SOURCE_EXAMPLES), row.get("closest")))
        encoder, helpful = chosen["encoder"], chosen["helpful"]
    else:
        plan.skip("choose", plan.rows["choose"]["reason"])
    if plan.rows["adapt"]["run"]:
        row = plan.rows["adapt"]
        adapted = plan.run("adapt", lambda: stages.adapt(ctx, encoder, row["steps"], row.get("vocabulary", False)))
        encoder = adapted["folder"] if adapted["kept"] else encoder
    else:
        plan.skip("adapt", plan.rows["adapt"]["reason"])
    return encoder, helpful


def shipped_line(summary: dict, base: dict, config: PlanConfig) -> str:
    """The plan's last word: the shipped model's held-out score with its interval, the gain and whether it is noise."""
    reported = summary["reported"]
    low, high = reported["shipped_interval"] or (None, None)
    interval = f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None else ""
    noise = ""
    if reported.get("gain_interval_pts"):
        g_low, g_high = reported["gain_interval_pts"]
        noise = f", gain {reported['gain_pts']:+.2f} [{g_low:+.1f}, {g_high:+.1f}]" + (" (inside the noise)" if reported["within_noise"] else "")
    return (f"[plan] shipped {summary['shipped_dir']}: {summary['metric']} {100 * reported['shipped']:.2f}{interval} on "
            f"{reported['examples']} {reported['on']} (baseline {100 * reported['baseline']:.2f}, teacher "
            f"{100 * reported['teacher']:.2f}{noise}); latency {summary['latency_ratio']:.2f}x the baseline's "
            f"({summary['shipped_latency_ms']:.2f} ms); {minutes(summary.get('wall_s') or 0)} of {minutes(config.budget_s)} min")


def _flag_below_baseline(ctx: stages.Context, base: dict, teacher: dict, shipped: dict, ledger: dict) -> None:
    """A shipped model that scores under the plain baseline on dev is said so, once, with the nearest
    alternative the plan measured: the constraint to relax and what it would have shipped."""
    if shipped["score"] >= base["score"] or any(d["stage"] == "ship" for d in ctx.decisions):
        return
    tried = (ledger["stages"].get("compress", {}).get("result") or {}).get("students") or []
    better = [r for r in tried if r["score"] > shipped["score"]]
    if better:
        best = max(better, key=lambda r: r["score"])
        nearest = (f"with `latency_ratio: {math.ceil(100 * best['latency_ratio']) / 100:g}`, {best['student']} at "
                   f"{100 * (best['score'] - base['score']):+.2f} points ({'; '.join(best['missed'])})")
    elif shipped["folder"] and teacher["score"] > shipped["score"]:
        nearest = f"relaxing `ship` to ship the teacher in PyTorch ({100 * (teacher['score'] - base['score']):+.2f} points)"
    else:
        nearest = "none measured: the teacher itself does not beat the baseline; more labelled data or other sources"
    ctx.decide("ship", "below the baseline", f"the shipped model scores {100 * (base['score'] - shipped['score']):.2f} points "
               f"under the baseline on dev ({100 * shipped['score']:.2f} against {100 * base['score']:.2f}) after the levers "
               f"tried; nearest alternative: {nearest}")


def _elapsed(ledger: dict) -> float:
    return round(sum(r.get("seconds") or 0.0 for r in ledger["stages"].values()), 1)


def _ship_targets(config: PlanConfig, base: dict) -> dict:
    ship = config.ship.model_dump()
    if ship.get("latency_ratio"):
        ship["latency_ms"] = round(ship["latency_ratio"] * base["latency_ms"], 3)
    return ship


def _compress(ctx: stages.Context, base: dict, teacher: dict, ship: dict, left_after, out: Path, ledger: dict) -> dict:
    """Distil students best-first until one meets every ship constraint or the budget runs out; when the best
    that meets them scores under the baseline, pull the levers that may close the gap (`_levers`)."""
    # Predictions from the baseline's latency timed beside the teacher: one window, one machine state.
    reference = teacher.get("baseline_ms_beside") or base["latency_ms"]
    target = ship["latency_ratio"] * reference if ship.get("latency_ratio") else ship.get("latency_ms")
    kinds, predicted = stages.students_to_try(ctx, reference, target)
    transfer = stages.transfer_size(ctx)
    epochs = stages.student_epochs(transfer)
    partial = ledger["stages"].setdefault("compress-students", {"status": "partial", "rows": []})
    rows = partial["rows"]
    measured_note = ""
    if ship.get("latency_ratio"):
        kinds, measured_note = _measured_kinds(ctx, teacher, ship, kinds, predicted, target, partial, lambda: _save(out, ledger))
    ctx.decide("compress", f"try {', '.join(kinds)}", "best expected dev score first among students predicted to meet the "
               "latency (" + ", ".join(f"{k} ~{v:.2f} ms" for k, v in predicted.items()) + ")"
               + (f"; target {target:.2f} ms (the baseline timed {reference:.2f} ms beside the teacher)" if target else "")
               + measured_note)

    def distil(kind: str) -> bool:
        """Distil, export and measure one student unless done; False when the budget cannot afford it."""
        if any(r["student"] == kind for r in rows):
            return True
        estimate = ctx.costs.student(kind, transfer, epochs)
        if len(rows) and left_after("ship", "score", "report") < estimate * ctx.costs.scale:
            ctx.decide("compress", f"stop before {kind}", f"{minutes(estimate * ctx.costs.scale)} min needed, "
                       f"{minutes(left_after('ship', 'score', 'report'))} min of the budget left")
            return False
        started = time.perf_counter()
        result = stages.distill_student(ctx, teacher["folder"], kind, epochs)
        result["seconds"], result["estimate_s"] = round(time.perf_counter() - started, 1), round(estimate, 1)
        result["predicted_latency_ms"] = predicted.get(kind)
        result["missed"] = stages.meets(result, ship, teacher["score"])
        rows.append(result)
        ledger["elapsed_s"] = _elapsed(ledger) + sum(r["seconds"] for r in rows)
        _save(out, ledger)
        return True

    for kind in kinds:
        if any(not r["missed"] for r in rows) or not distil(kind):  # the best-first search found a student that ships
            break
    _levers(ctx, base, teacher, ship, rows, predicted, distil)
    ok = [r for r in rows if not r["missed"]]
    if ok:
        best = max(ok, key=lambda r: (r["score"], -r["latency_ms"]))
        ctx.decide("compress", f"ship {'student ' if best['student'] != 'teacher-int8' else ''}{best['student']}",
                   f"best dev {best['metric']} ({100 * best['score']:.2f}) among the models meeting every ship constraint; "
                   f"teacher {100 * teacher['score']:.2f}, baseline {100 * base['score']:.2f}")
        chosen = {**best, "kind": "student"}
    else:
        misses = "; ".join(f"{r['student']}: {', '.join(r['missed'])}" for r in rows) or "no student trained"
        ctx.decide("compress", "ship the teacher", f"no student met every ship constraint ({misses})")
        chosen = None
    ledger["stages"].pop("compress-students", None)
    return {"students": rows, "chosen": chosen, "measured": partial.get("measured")}


def _measured_kinds(ctx: stages.Context, teacher: dict, ship: dict, kinds: list[str], predicted: dict, target: float,
                    partial: dict, save) -> tuple[list[str], str]:
    """The students to try once the candidates are measured: predictions are a table of shares, a student
    built and timed beside the baseline is a measurement. Returns (kinds, the note for the decision)."""
    shortlist = [k for k in stages.STUDENT_QUALITY if k in predicted and predicted[k] <= WIDER_MARGIN * target]
    if "measured" not in partial:
        partial["measured"] = stages.measured_candidates(ctx, teacher["folder"], shortlist, ship["latency_ratio"])
        save()
    measured = partial["measured"]
    found = [k for k in shortlist if measured.get(k, {}).get("meets_ratio")] + [k for k in kinds if k not in measured]
    note = "; measured (int8, beside the baseline): " + ", ".join(f"{k} {m['latency_ratio']:.3f}x" for k, m in measured.items())
    return found[:stages.MAX_STUDENTS] or kinds, note


def _levers(ctx: stages.Context, base: dict, teacher: dict, ship: dict, rows: list, predicted: dict, distil) -> None:
    """Never below the baseline without trying: when the best model meeting `ship` scores under the baseline
    on dev, try (1) the teacher's own int8 export, often several times faster than the PyTorch baseline, and
    (2) the widest student not tried yet that the latency may allow, while the budget lasts."""
    def best_ok() -> float:
        return max([r["score"] for r in rows if not r["missed"]], default=-1.0)

    if best_ok() >= base["score"]:
        return
    ctx.decide("compress", "pull the levers", f"the best model meeting `ship` scores {100 * max(best_ok(), 0):.2f} on dev, "
               f"under the baseline's {100 * base['score']:.2f}: trying the teacher's int8 export, then a wider student")
    if not any(r["student"] == "teacher-int8" for r in rows):
        try:
            row = stages.export_candidate(ctx, teacher, "teacher-int8")
        except BertxError as err:
            ctx.decide("compress", "no teacher export", f"the teacher could not be exported: {err}")
        else:
            row["missed"] = stages.meets(row, ship, teacher["score"])
            rows.append(row)
    if best_ok() >= base["score"]:
        return
    target = ship["latency_ratio"] * (teacher.get("baseline_ms_beside") or base["latency_ms"]) if ship.get("latency_ratio") \
        else ship.get("latency_ms")
    untried = [k for k in stages.STUDENT_QUALITY if k in predicted and not any(r["student"] == k for r in rows)
               and (target is None or predicted[k] <= WIDER_MARGIN * target)]
    if untried:
        ctx.decide("compress", f"try the wider {untried[0]}", f"predicted {predicted[untried[0]]:.2f} ms, within "
                   f"{WIDER_MARGIN}x the target: the prediction may be pessimistic, and its measured latency decides")
        distil(untried[0])


def _summary(ledger: dict, base: dict, teacher: dict, shipped: dict, ship: dict, scores: dict) -> dict:
    shipped_ratio = shipped.get("latency_ratio") or round(shipped["latency_ms"] / base["latency_ms"], 3)
    return {"metric": shipped["metric"], "baseline": base["score"], "teacher": teacher["score"], "shipped": shipped["score"],
            "gain_pts": round(100 * (shipped["score"] - base["score"]), 2), "scores_on": "dev (chose checkpoints and students)",
            "reported": _reported(scores),
            "baseline_latency_ms": base["latency_ms"], "shipped_latency_ms": shipped["latency_ms"],
            "latency_ratio": shipped_ratio, "shipped_dir": shipped["folder"],
            "shipped_size_mb": shipped["size_mb"], "baseline_size_mb": base["size_mb"], "ship": ship,
            "estimate_s": ledger.get("estimate_s"), "budget_s": ledger["budget_s"]}


def _reported(scores: dict) -> dict:
    """What the plan reports: the held-out scores, each with its 95% interval, and the shipped model's gain
    over the baseline with its paired interval (inside the noise when that interval holds 0)."""
    gain = scores["shipped"].get("vs_baseline") or {}
    return {"on": scores["on"], "file": scores["file"], "examples": scores["shipped"]["examples"],
            **{name: scores[name]["score"] for name in ("baseline", "teacher", "shipped")},
            **{f"{name}_interval": scores[name]["interval"] for name in ("baseline", "teacher", "shipped")},
            "gain_pts": round(100 * (scores["shipped"]["score"] - scores["baseline"]["score"]), 2),
            "gain_interval_pts": [round(100 * v, 2) for v in gain["interval"]] if gain else None,
            "within_noise": gain.get("within_noise"),
            "teacher_gain_within_noise": (scores["teacher"].get("vs_baseline") or {}).get("within_noise")}
