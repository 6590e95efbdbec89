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
import math
import tempfile
import time
from pathlib import Path

from bertx.config.plan import PlanConfig
from bertx.errors import BertxError
from bertx.recipes.plan import adapt, choose, compress, stages
from bertx.recipes.plan.schedule import describe_schedule, schedule
from bertx.recipes.plan.ledger import PLAN_FILE, StageRecord, elapsed, record, save_ledger
from bertx.recipes.plan.costs import Costs, minutes
from bertx.recipes.plan.inputs import check_unchanged, prepare_inputs
from bertx.recipes.plan.profile import encoder_path, probe_lengths, probe_points, profile_data
from bertx.console import say

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
    reads = [
        config.resolve(config.train),
        config.resolve(config.dev) if config.dev else None,
        config.resolve(config.test) if config.test else None,
        *[config.resolve(p) for p in config.unlabelled],
        config.resolve(config.sources) if config.sources else None,
        *[encoder_path(e) for e in config.encoders],
    ]
    ledger: dict = {}  # read (and its settings checked) before the folder's run config is written
    with outputs.claimed_folder(
        out,
        config.model_dump(mode="json"),
        overwrite,
        [r for r in reads if r],
        kind="plan",
        check=lambda folder: ledger.update(_load_ledger(folder, config)),
    ):
        return _run(config, out, ledger, show_progress, log)


# ---- the ledger (plan.json) -----------------------------------------------------------------------------
def _new_ledger(config: PlanConfig) -> dict:
    return {"config": config.model_dump(mode="json"), "budget_s": config.budget_s, "stages": {}, "decisions": [], "elapsed_s": 0.0}


def _load_ledger(out: Path, config: PlanConfig) -> dict:
    path = out / PLAN_FILE
    if not path.is_file():
        return _new_ledger(config)
    ledger = json.loads(path.read_text(encoding="utf-8"))
    old, new = ledger.get("config", {}), config.model_dump(mode="json")
    changed = sorted(k for k in set(old) | set(new) if k not in RERUN_CHANGES and old.get(k) != new.get(k))
    if changed:
        raise BertxError(
            f"{path}: this folder holds a plan with other settings ({', '.join(changed)}); pass --overwrite to "
            "start again, or choose another --output"
        )
    ledger["config"], ledger["budget_s"] = new, config.budget_s
    return ledger


# ---- scheduling ---------------------------------------------------------------------------------------
def _profiled(config: PlanConfig, folder: Path, ledger: dict, show_progress: bool) -> stages.Context:
    """The profile stage (reused when done): inputs, data profile, throughput probe."""
    line = StageRecord.of(ledger, "profile")
    if line and line.status == "done":
        result = line.result
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
        profile["probe"] = probe_points(encoder_path(config.encoders[0]), lengths, main if main in lengths else lengths[0], resolve_precision("auto"))
        result = {"inputs": inputs, "profile": profile}
        record(ledger, "profile", StageRecord.done(time.perf_counter() - started, None, result))
    profile = result["profile"]
    check_reachable(config, profile)
    ctx = stages.Context(config, folder, result["inputs"], profile, Costs(profile["probe"], profile), show_progress, ledger["decisions"])
    for name in ledger["stages"]:
        line = StageRecord.of(ledger, name)
        if line and line.estimate_s and line.trains:
            ctx.costs.calibrate(line.estimate_s, line.seconds)
    return ctx


def check_reachable(config: PlanConfig, profile: dict) -> None:
    """A ship constraint no model can meet is refused before any training: below the time tokenising one
    input takes, or below the smallest student's int8 embedding table (the vocabulary x 8 dimensions)."""
    ship = config.ship
    if ship.latency_ms is not None and ship.latency_ms < profile["tokenize_ms"]:
        raise BertxError(
            f"ship latency_ms {ship.latency_ms:g}: tokenising one input alone takes {profile['tokenize_ms']:.3f} ms "
            "on this machine, so no model can meet it; raise it or use latency_ratio"
        )
    smallest_mb = profile["vocab_size"] * 8 / 2**20
    if ship.size_mb is not None and ship.size_mb < smallest_mb:
        raise BertxError(
            f"ship size_mb {ship.size_mb:g}: the smallest student's embedding table alone ({profile['vocab_size']} "
            f"word pieces x 8 dimensions, int8) takes {smallest_mb:.2f} MB; raise it"
        )


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
        return StageRecord.of(self.ledger, name) is not None

    def ran(self, name: str) -> bool:
        line = StageRecord.of(self.ledger, name)
        return line is not None and line.status == "done"

    def run(self, name: str, body, trains: bool = True):
        if self.done(name):
            return StageRecord.of(self.ledger, name).result
        if name not in self.started:
            self.started.append(name)
            save_ledger(self.out, self.ledger)
        self.log(f"[plan] {name} ...")
        begun = time.perf_counter()
        result = body()
        seconds = round(time.perf_counter() - begun, 1)
        estimate = self.rows[name].get("estimate_s")
        record(self.ledger, name, StageRecord.done(seconds, estimate, result, trains))
        if trains and estimate:
            self.ctx.costs.calibrate(estimate, seconds)
        self.ledger["elapsed_s"] = elapsed(self.ledger)
        self.replan()
        save_ledger(self.out, self.ledger)
        self.log(
            f"[plan] {name} done in {minutes(seconds)} min (estimated {minutes(estimate or 0)}); "
            f"{minutes(self.config.budget_s - self.ledger['elapsed_s'])} min of the budget left"
        )
        return result

    def skip(self, name: str, reason: str) -> None:
        if not self.done(name):
            self.started.append(name)
            record(self.ledger, name, StageRecord.skipped(reason, self.rows[name].get("estimate_s")))
            self.ctx.decide(name, "skip", reason)
            save_ledger(self.out, self.ledger)

    def replan(self) -> None:
        """The stages not started yet are chosen again with the costs calibrated on those that ran and the
        time actually left: a stage dropped at the start is re-admitted when the earlier ones ran short."""
        before = self.rows
        kept = {n: before[n] for n in self.started if n in before}
        self.ledger["schedule"] = schedule(self.ctx, elapsed(self.ledger), kept, frozenset(n for n in self.started if self.done(n)))
        for name, row in self.rows.items():
            if name not in kept and row["run"] != before[name]["run"]:
                self.ctx.decide(
                    "plan",
                    f"re-plan: {'run' if row['run'] else 'drop'} {name}",
                    f"after {self.started[-1]}: {minutes(self.config.budget_s - elapsed(self.ledger))} min left, "
                    f"costs scaled x{self.ctx.costs.scale:.2f} by the stages that ran",
                )

    def left_after(self, *later: str) -> float:
        """Seconds of the budget left once the later mandatory stages are reserved."""
        reserved = sum(self.rows[n]["estimate_s"] for n in later if self.rows[n]["run"] and not self.done(n))
        return self.config.budget_s - elapsed(self.ledger) - reserved


def _run(config: PlanConfig, out: Path, ledger: dict, show_progress: bool, log) -> dict:
    ctx = _profiled(config, out, ledger, show_progress)
    ledger["elapsed_s"] = elapsed(ledger)
    if "schedule" not in ledger:
        ledger["schedule"] = schedule(ctx, ledger["elapsed_s"])
        ledger["estimate_s"] = round(ledger["elapsed_s"] + sum(r["estimate_s"] for r in ledger["schedule"] if r["run"]), 1)
    save_ledger(out, ledger)
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
        compressed = plan.run("compress", lambda: compress.run(ctx, base, teacher, ship_spec, plan.left_after, out, ledger))
        chosen_model = compressed.get("chosen") or chosen_model
    else:
        plan.skip("compress", plan.rows["compress"]["reason"])
    shipped = plan.run("ship", lambda: stages.ship(ctx, chosen_model), trains=False)
    _flag_below_baseline(ctx, base, teacher, shipped, ledger)
    _flag_missed_ship(ctx, shipped, ship_spec, teacher, plan.rows["compress"])
    scores = plan.run("score", lambda: stages.held_out_scores(ctx, base, teacher, shipped), trains=False)
    ledger["summary"] = _summary(ledger, base, teacher, shipped, ship_spec, scores)
    save_ledger(out, ledger)
    from bertx.evaluation.plan_report import write_report

    plan.run("report", lambda: {"html": str(write_report(out, ledger))}, trains=False)
    ledger["summary"]["wall_s"] = ledger["elapsed_s"]
    save_ledger(out, ledger)
    log(shipped_line(ledger["summary"], base, config))
    log(f"serve it: {shipped['serve']}")
    return ledger


def _transfer_stages(plan: Stages, ctx: stages.Context) -> tuple[str, list[str]]:
    """The choose and adapt stages, each run or skipped as scheduled: (the teacher's encoder, helpful sources)."""
    encoder, helpful = encoder_path(ctx.config.encoders[0]), []
    if plan.rows["choose"]["run"]:
        row = plan.rows["choose"]
        chosen = plan.run("choose", lambda: choose.choose(ctx, row.get("source_examples", stages.SOURCE_EXAMPLES), row.get("closest")))
        encoder, helpful = chosen["encoder"], chosen["helpful"]
        ctx.helpful = list(helpful)  # a resumed plan reads them from its ledger
    else:
        plan.skip("choose", plan.rows["choose"]["reason"])
    if plan.rows["adapt"]["run"]:
        row = plan.rows["adapt"]
        adapted = plan.run("adapt", lambda: adapt.adapt(ctx, encoder, row["steps"], row.get("vocabulary", False)))
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
    return (
        f"[plan] shipped {summary['shipped_dir']}: {summary['metric']} {100 * reported['shipped']:.2f}{interval} on "
        f"{reported['examples']} {reported['on']} (baseline {100 * reported['baseline']:.2f}, teacher "
        f"{100 * reported['teacher']:.2f}{noise}); latency {summary['latency_ratio']:.2f}x the baseline's "
        f"({summary['shipped_latency_ms']:.2f} ms); {minutes(summary.get('wall_s') or 0)} of {minutes(config.budget_s)} min"
    )


def _flag_below_baseline(ctx: stages.Context, base: dict, teacher: dict, shipped: dict, ledger: dict) -> None:
    """A shipped model that scores under the plain baseline on dev is said so, once, with the nearest
    alternative the plan measured: the constraint to relax and what it would have shipped."""
    if shipped["score"] >= base["score"] or any(d["decision"] == "below the baseline" for d in ctx.decisions):
        return
    compressed = StageRecord.of(ledger, "compress")
    tried = ((compressed.result if compressed else None) or {}).get("students") or []
    better = [r for r in tried if r["score"] > shipped["score"]]
    if better:
        best = max(better, key=lambda r: r["score"])
        nearest = (
            f"with `latency_ratio: {math.ceil(100 * best['latency_ratio']) / 100:g}`, {best['student']} at "
            f"{100 * (best['score'] - base['score']):+.2f} points ({'; '.join(best['missed'])})"
        )
    elif shipped["folder"] and teacher["score"] > shipped["score"]:
        nearest = f"relaxing `ship` to ship the teacher in PyTorch ({100 * (teacher['score'] - base['score']):+.2f} points)"
    else:
        nearest = "none measured: the teacher itself does not beat the baseline; more labelled data or other sources"
    ctx.decide(
        "ship",
        "below the baseline",
        f"the shipped model scores {100 * (base['score'] - shipped['score']):.2f} points "
        f"under the baseline on dev ({100 * shipped['score']:.2f} against {100 * base['score']:.2f}) after the levers "
        f"tried; nearest alternative: {nearest}",
    )


def _flag_missed_ship(ctx: stages.Context, shipped: dict, ship: dict, teacher: dict, compress_row: dict) -> None:
    """A shipped model that misses `ship` (the teacher shipped because the compress stage did not fit the budget,
    or no student met it) is said so, once, with why: the summary's latency alone does not tell a user that
    the constraint they set was not met."""
    from bertx.recipes.plan.constraints import missed_constraints

    missed = missed_constraints(shipped, ship, teacher["score"])
    if not missed or any(d["decision"] == "misses the ship constraints" for d in ctx.decisions):
        return
    why = f"compress: {compress_row['reason']}" if not compress_row["run"] else "as the ship stage measured the shipped model"
    ctx.decide("ship", "misses the ship constraints", f"{'; '.join(missed)} ({why}); a larger budget or a looser `ship` would change it")


def _ship_targets(config: PlanConfig, base: dict) -> dict:
    ship = config.ship.model_dump()
    if ship.get("latency_ratio"):
        ship["latency_ms"] = round(ship["latency_ratio"] * base["latency_ms"], 3)
    return ship


def _summary(ledger: dict, base: dict, teacher: dict, shipped: dict, ship: dict, scores: dict) -> dict:
    shipped_ratio = shipped.get("latency_ratio") or round(shipped["latency_ms"] / base["latency_ms"], 3)
    return {
        "metric": shipped["metric"],
        "baseline": base["score"],
        "teacher": teacher["score"],
        "shipped": shipped["score"],
        "gain_pts": round(100 * (shipped["score"] - base["score"]), 2),
        "scores_on": "dev (chose checkpoints and students)",
        "reported": _reported(scores),
        "baseline_latency_ms": base["latency_ms"],
        "shipped_latency_ms": shipped["latency_ms"],
        "latency_ratio": shipped_ratio,
        "shipped_dir": shipped["folder"],
        "shipped_size_mb": shipped["size_mb"],
        "baseline_size_mb": base["size_mb"],
        "ship": ship,
        "estimate_s": ledger.get("estimate_s"),
        "budget_s": ledger["budget_s"],
    }


def _reported(scores: dict) -> dict:
    """What the plan reports: the held-out scores, each with its 95% interval, and the shipped model's gain
    over the baseline with its paired interval (inside the noise when that interval holds 0)."""
    gain = scores["shipped"].get("vs_baseline") or {}
    return {
        "on": scores["on"],
        "file": scores["file"],
        "examples": scores["shipped"]["examples"],
        **{name: scores[name]["score"] for name in ("baseline", "teacher", "shipped")},
        **{f"{name}_interval": scores[name]["interval"] for name in ("baseline", "teacher", "shipped")},
        "gain_pts": round(100 * (scores["shipped"]["score"] - scores["baseline"]["score"]), 2),
        "gain_interval_pts": [round(100 * v, 2) for v in gain["interval"]] if gain else None,
        "within_noise": gain.get("within_noise"),
        "teacher_gain_within_noise": (scores["teacher"].get("vs_baseline") or {}).get("within_noise"),
    }
