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

import json
import tempfile
import time
from pathlib import Path

from bertx import runfolder
from bertx.config.plan import PlanConfig
from bertx.errors import BertxError
from bertx.recipes.plan import stages
from bertx.recipes.plan.costs import Costs, minutes
from bertx.recipes.plan.inputs import prepare_inputs
from bertx.recipes.plan.profile import encoder_path, probe_lengths, probe_points, profile_data
from bertx.console import say

PLAN_FILE = "plan.json"
ORDER = ("profile", "baseline", "choose", "adapt", "teacher", "compress", "ship", "report")
REPORT_S = 5.0
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


def schedule(ctx: stages.Context, elapsed: float = 0.0) -> list[dict]:
    """Every stage with its settings, estimated seconds, and whether it fits the budget (with the reason)."""
    config, costs = ctx.config, ctx.costs
    budget = config.budget_s
    helpful_possible = bool(config.sources) and config.regime in ("auto", "multitask") and config.task in stages.RANKABLE
    regime, why = stages.teacher_regime(ctx, ["(sources)"] if helpful_possible else [])
    epochs = stages.teacher_epochs(ctx.examples)
    plan = {
        "baseline": {"estimate_s": stages.baseline_estimate(ctx)},
        "choose": {"estimate_s": stages.choose_estimate(ctx)} if (len(config.encoders) > 1 or config.sources) else None,
        "adapt": {"estimate_s": costs.pretrain(stages.adapt_steps(ctx), length=stages.adapt_length(ctx))
                  + costs.rank(2, ctx.examples), "steps": stages.adapt_steps(ctx)} if stages.adapt_sequences(ctx) >= 64 else None,
        "teacher": {"estimate_s": stages.teacher_estimate(ctx, regime, epochs), "regime": regime, "regime_reason": why,
                    "epochs": epochs},
        "compress": {"estimate_s": stages.compress_estimate(ctx), "students_at_most": stages.MAX_STUDENTS,
                     "transfer_examples": stages.transfer_size(ctx)} if config.task != "qa" and config.students else None,
        "ship": {"estimate_s": costs.ship(export=False)},
        "report": {"estimate_s": REPORT_S},
    }
    reasons = {"choose": "no sources and one encoder: nothing to choose",
               "adapt": f"too little unlabelled text for masked LM ({stages.adapt_sequences(ctx)} blocks of "
                        f"{stages.adapt_length(ctx)} tokens; 64 needed)",
               "compress": "QA is shipped as the teacher (students of extractive QA are not built)" if config.task == "qa"
               else "no student kinds allowed (students: [])"}
    rows = []
    for name in ORDER[1:]:
        entry = plan[name]
        rows.append({"stage": name, "run": entry is not None, "reason": None if entry else reasons[name], **(entry or {})})
    for row in rows:
        if row["run"]:
            row["estimate_s"] = round(row["estimate_s"] * costs.scale, 1)

    def total() -> float:
        return elapsed + sum(r["estimate_s"] for r in rows if r["run"])

    by_name = {r["stage"]: r for r in rows}
    # Over budget: shorten or drop what is worth least first (adapt, then sources, then a second student).
    if total() > budget and by_name["adapt"]["run"]:
        adapt = by_name["adapt"]
        spare = budget - (total() - adapt["estimate_s"])
        steps = int(adapt["steps"] * max(0.0, spare - costs.rank(2, ctx.examples)) / max(1.0, adapt["estimate_s"]))
        if steps >= 50:
            adapt.update(steps=steps, estimate_s=round(costs.pretrain(steps, length=stages.adapt_length(ctx)) * costs.scale + costs.rank(2, ctx.examples), 1),
                         note=f"shortened to {steps} steps to fit the budget")
        else:
            adapt.update(run=False, reason=f"does not fit the budget ({minutes(adapt['estimate_s'])} min; "
                         f"{minutes(max(0.0, spare))} min left for it)")
    if total() > budget and by_name["choose"]["run"] and config.sources:
        choose = by_name["choose"]
        choose.update(run=False, reason=f"does not fit the budget ({minutes(choose['estimate_s'])} min for the sources)")
        teacher = by_name["teacher"]
        regime, why = stages.teacher_regime(ctx, [], ranked=False)
        teacher.update(regime=regime, regime_reason=why, estimate_s=round(stages.teacher_estimate(ctx, regime, epochs) * costs.scale, 1))
    _shorten_teacher(ctx, by_name["teacher"], budget - (total() - by_name["teacher"]["estimate_s"]), floor=3.0)
    if total() > budget and by_name["compress"]["run"]:
        by_name["compress"].update(run=False, reason="does not fit the budget: the teacher is shipped")
    if not by_name["compress"]["run"] and by_name["ship"]["run"]:  # the teacher is exported at the ship stage
        by_name["ship"]["estimate_s"] = round(costs.ship(export=True) * costs.scale, 1)
    _shorten_teacher(ctx, by_name["teacher"], budget - (total() - by_name["teacher"]["estimate_s"]), floor=1.0)
    return rows


def _shorten_teacher(ctx: stages.Context, teacher: dict, spare: float, floor: float) -> None:
    """Fewer teacher epochs (not below `floor`) when its estimate exceeds the `spare` seconds."""
    if teacher["estimate_s"] <= spare or teacher["epochs"] <= floor:
        return
    epochs = float(max(floor, int(teacher["epochs"] * max(0.0, spare) / teacher["estimate_s"])))
    teacher.update(epochs=epochs, note=f"shortened to {epochs:g} epochs to fit the budget",
                   estimate_s=round(stages.teacher_estimate(ctx, teacher["regime"], epochs) * ctx.costs.scale, 1))


def describe_schedule(ledger: dict) -> str:
    profile = ledger["stages"]["profile"]["result"]["profile"]
    spent = ledger["stages"]["profile"]["seconds"]
    lines = [f"profile: {profile['train_examples']} training / {profile['dev_examples']} dev examples, "
             f"{profile['unlabelled_lines']} unlabelled lines; lengths p50 {profile['lengths']['p50']}, "
             f"p95 {profile['lengths']['p95']} -> max_length {profile['max_length']}; "
             f"{profile['probe']['train_tokens_per_s']} training tokens/s at {profile['probe']['length']} tokens "
             f"(probed at {', '.join(str(p['length']) for p in profile['probe'].get('points', [profile['probe']]))}; {spent:.0f} s)"]
    total = spent
    for row in ledger["schedule"]:
        if row["run"]:
            total += row["estimate_s"]
            extra = {k: row[k] for k in ("regime", "epochs", "steps", "students_at_most", "transfer_examples", "note") if k in row}
            lines.append(f"  {row['stage']:<9} {minutes(row['estimate_s']):>6.1f} min  " + ", ".join(f"{k} {v}" for k, v in extra.items()))
        else:
            lines.append(f"  {row['stage']:<9}   skip      {row['reason']}")
    lines.append(f"estimated total {minutes(total)} min of a {minutes(ledger['budget_s'])} min budget")
    return "\n".join(lines)


# ---- running --------------------------------------------------------------------------------------------
def _run(config: PlanConfig, out: Path, ledger: dict, show_progress: bool, log) -> dict:
    ctx = _profiled(config, out, ledger, show_progress)
    ledger["elapsed_s"] = _elapsed(ledger)
    if "schedule" not in ledger:
        ledger["schedule"] = schedule(ctx, ledger["elapsed_s"])
        ledger["estimate_s"] = round(ledger["elapsed_s"] + sum(r["estimate_s"] for r in ledger["schedule"] if r["run"]), 1)
    _save(out, ledger)
    log(describe_schedule(ledger))
    rows = {r["stage"]: r for r in ledger["schedule"]}
    done = lambda name: ledger["stages"].get(name, {}).get("status") in ("done", "skipped")  # noqa: E731

    def run_stage(name: str, body, trains: bool = True):
        if done(name):
            return ledger["stages"][name].get("result")
        log(f"[plan] {name} ...")
        started = time.perf_counter()
        result = body()
        seconds = round(time.perf_counter() - started, 1)
        estimate = rows[name].get("estimate_s")
        ledger["stages"][name] = {"status": "done", "estimate_s": estimate, "seconds": seconds, "trains": trains, "result": result}
        if trains and estimate:
            ctx.costs.calibrate(estimate, seconds)
        ledger["elapsed_s"] = _elapsed(ledger)
        _save(out, ledger)
        log(f"[plan] {name} done in {minutes(seconds)} min (estimated {minutes(estimate or 0)}); "
            f"{minutes(config.budget_s - ledger['elapsed_s'])} min of the budget left")
        return result

    def skip(name: str, reason: str) -> None:
        if not done(name):
            ledger["stages"][name] = {"status": "skipped", "reason": reason, "estimate_s": rows[name].get("estimate_s"), "seconds": 0.0}
            ctx.decide(name, "skip", reason)
            _save(out, ledger)

    def left_after(*later: str) -> float:
        """Seconds of the budget left once the later mandatory stages are reserved."""
        reserved = sum(rows[n]["estimate_s"] * ctx.costs.scale for n in later if rows[n]["run"] and not done(n))
        return config.budget_s - _elapsed(ledger) - reserved

    base = run_stage("baseline", lambda: stages.baseline(ctx))
    ship_spec = _ship_targets(config, base)
    encoder = encoder_path(config.encoders[0])
    helpful: list[str] = []
    if rows["choose"]["run"]:
        chosen = run_stage("choose", lambda: stages.choose(ctx))
        encoder, helpful = chosen["encoder"], chosen["helpful"]
    else:
        skip("choose", rows["choose"]["reason"])
    if rows["adapt"]["run"] and left_after("teacher", "compress", "ship", "report") >= rows["adapt"]["estimate_s"] * ctx.costs.scale:
        adapted = run_stage("adapt", lambda: stages.adapt(ctx, encoder, rows["adapt"]["steps"]))
        if adapted["kept"]:
            encoder = adapted["folder"]
    else:
        skip("adapt", rows["adapt"]["reason"] or "the budget left does not fit it after the earlier stages ran long")
    regime, why = stages.teacher_regime(ctx, helpful, ranked=rows["choose"]["run"])
    if not done("teacher"):
        ctx.decide("teacher", f"regime {regime}, {rows['teacher']['epochs']:g} epochs", why)
    teacher = run_stage("teacher", lambda: stages.teacher(ctx, encoder, regime, helpful, rows["teacher"]["epochs"]))
    chosen_model = {**teacher, "kind": "teacher"}
    if rows["compress"]["run"]:
        compressed = run_stage("compress", lambda: _compress(ctx, teacher, ship_spec, left_after, out, ledger))
        if compressed.get("chosen"):
            chosen_model = compressed["chosen"]
    else:
        skip("compress", rows["compress"]["reason"])
    shipped = run_stage("ship", lambda: stages.ship(ctx, chosen_model), trains=False)
    _flag_below_baseline(ctx, base, teacher, shipped)
    ledger["summary"] = _summary(ledger, base, teacher, shipped, ship_spec)
    _save(out, ledger)
    from bertx.evaluation.plan_report import write_report

    run_stage("report", lambda: {"html": str(write_report(out, ledger))}, trains=False)
    ledger["summary"]["wall_s"] = ledger["elapsed_s"]
    _save(out, ledger)
    log(f"[plan] shipped {shipped['folder']}: {shipped['metric']} {100 * shipped['score']:.2f} "
        f"(baseline {100 * base['score']:.2f}, teacher {100 * teacher['score']:.2f}); latency {shipped['latency_ms']:.2f} ms "
        f"(baseline {base['latency_ms']:.2f} ms); {minutes(ledger['elapsed_s'])} of {minutes(config.budget_s)} min")
    log(f"serve it: {shipped['serve']}")
    return ledger


def _flag_below_baseline(ctx: stages.Context, base: dict, teacher: dict, shipped: dict) -> None:
    """A shipped model that scores under the plain baseline is said so, once: the ship constraints cost
    more than the transfer gained, and the user should know before relying on it."""
    if shipped["score"] >= base["score"] or any(d["stage"] == "ship" for d in ctx.decisions):
        return
    ctx.decide("ship", "below the baseline", f"the shipped model scores {100 * (base['score'] - shipped['score']):.2f} points "
               f"under the baseline ({100 * shipped['score']:.2f} against {100 * base['score']:.2f}): meeting `ship` cost more than "
               f"the transfer gained; the teacher scores {100 * teacher['score']:.2f} at {teacher['latency_ms']:.2f} ms, so relax "
               "`ship` to ship it")


def _elapsed(ledger: dict) -> float:
    return round(sum(r.get("seconds") or 0.0 for r in ledger["stages"].values()), 1)


def _ship_targets(config: PlanConfig, base: dict) -> dict:
    ship = config.ship.model_dump()
    if ship.get("latency_ratio"):
        ship["latency_ms"] = round(ship["latency_ratio"] * base["latency_ms"], 3)
    return ship


def _compress(ctx: stages.Context, teacher: dict, ship: dict, left_after, out: Path, ledger: dict) -> dict:
    """Distil students best-first until one meets every ship constraint or the budget runs out."""
    kinds, predicted = stages.students_to_try(ctx, teacher["latency_ms"], ship.get("latency_ms"))
    transfer = stages.transfer_size(ctx)
    epochs = stages.student_epochs(transfer)
    ctx.decide("compress", f"try {', '.join(kinds)}", "best expected dev score first among students predicted to meet the "
               "latency (" + ", ".join(f"{k} ~{v:.2f} ms" for k, v in predicted.items()) + ")"
               + (f"; target {ship['latency_ms']:.2f} ms" if ship.get("latency_ms") else ""))
    partial = ledger["stages"].setdefault("compress-students", {"status": "partial", "rows": []})
    rows = partial["rows"]
    tried = {r["student"] for r in rows}
    for kind in kinds:
        if any(not r["missed"] for r in rows):  # the best-first search found a student that ships
            break
        if kind in tried:
            continue
        estimate = ctx.costs.student(kind, transfer, epochs)
        if len(rows) and left_after("ship", "report") < estimate * ctx.costs.scale:
            ctx.decide("compress", f"stop before {kind}", f"{minutes(estimate * ctx.costs.scale)} min needed, "
                       f"{minutes(left_after('ship', 'report'))} min of the budget left")
            break
        started = time.perf_counter()
        result = stages.distill_student(ctx, teacher["folder"], kind, epochs)
        result["seconds"], result["estimate_s"], result["predicted_latency_ms"] = round(time.perf_counter() - started, 1), round(estimate, 1), predicted[kind]
        result["missed"] = stages.meets(result, ship, teacher["score"])
        rows.append(result)
        ledger["elapsed_s"] = _elapsed(ledger) + sum(r["seconds"] for r in rows)
        _save(out, ledger)
    ok = [r for r in rows if not r["missed"]]
    if ok:
        best = max(ok, key=lambda r: (r["score"], -r["latency_ms"]))
        ctx.decide("compress", f"ship student {best['student']}", f"best dev {best['metric']} ({100 * best['score']:.2f}) among "
                   f"students meeting every ship constraint; teacher {100 * teacher['score']:.2f}")
        chosen = {**best, "kind": "student"}
    else:
        misses = "; ".join(f"{r['student']}: {', '.join(r['missed'])}" for r in rows) or "no student trained"
        ctx.decide("compress", "ship the teacher", f"no student met every ship constraint ({misses})")
        chosen = None
    ledger["stages"].pop("compress-students", None)
    return {"students": rows, "chosen": chosen}


def _summary(ledger: dict, base: dict, teacher: dict, shipped: dict, ship: dict) -> dict:
    return {"metric": shipped["metric"], "baseline": base["score"], "teacher": teacher["score"], "shipped": shipped["score"],
            "gain_pts": round(100 * (shipped["score"] - base["score"]), 2),
            "baseline_latency_ms": base["latency_ms"], "shipped_latency_ms": shipped["latency_ms"],
            "latency_ratio": round(shipped["latency_ms"] / base["latency_ms"], 3), "shipped_dir": shipped["folder"],
            "shipped_size_mb": shipped["size_mb"], "baseline_size_mb": base["size_mb"], "ship": ship,
            "estimate_s": ledger.get("estimate_s"), "budget_s": ledger["budget_s"]}
