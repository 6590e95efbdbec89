"""`bertx tune`: hyper-parameter search over a fine-tuning config with Optuna.

    config + search space -> Optuna study (TPE sampler, median pruner, RDB storage) -> per trial: the
    config with the sampled values -> `bertx finetune` into OUTPUT/trial-N, every dev evaluation
    reported to the study; a trial below the median of earlier trials at the same step is pruned
    (stopped there) -> best.yaml: the config of the best trial, which `bertx finetune` takes as it is

The study lives in its storage (default: sqlite:///OUTPUT/tune.db), so a killed search continues where
it stopped when the command is run again, and several processes or machines pointing at one shared
database work on one study (Optuna's own mechanism). A trial whose process died is marked failed by
Optuna's heartbeat and tried again once. `--trials N` counts finished (complete or pruned) trials of
the whole study, whoever ran them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from bertx import runfolder
from bertx.config import FinetuneConfig, validate_config
from bertx.errors import BertxError, RunStopped
from bertx.recipes.finetune import finetune
from bertx.console import say

# The space searched when none is given: what the fine-tuning recipe notes varied by hand. For short runs
# (one epoch on a few thousand examples) a narrower one does better: configs/tune/sst2-space.yaml.
DEFAULT_SPACE = {
    "train.lr": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True},
    "train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    "train.batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    "train.layer_decay": {"type": "float", "low": 0.6, "high": 1.0},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.2},
}
KINDS = ("float", "int", "categorical")
# A search whose trials keep failing stops instead of drawing failures forever.
MAX_FAILURES_IN_A_ROW = 3


def check_space(space: dict, config: dict, source: str) -> dict:
    """Every dimension names a config key and a valid distribution; one line per problem."""
    if not isinstance(space, dict) or not space:
        raise BertxError(f"{source}: the search space is empty; give `key: {{type: float, low: .., high: ..}}` entries")
    for key, spec in space.items():
        parent, _, leaf = key.rpartition(".")
        node = config
        for part in parent.split(".") if parent else []:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise BertxError(f"{source}: {key!r} is not a key of the fine-tuning config")
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in KINDS:
            raise BertxError(f"{source}: {key}: type must be one of {', '.join(KINDS)}")
        if kind == "categorical" and not spec.get("choices"):
            raise BertxError(f"{source}: {key}: a categorical dimension needs `choices`")
        if kind != "categorical" and not (
            isinstance(spec.get("low"), (int, float)) and isinstance(spec.get("high"), (int, float)) and spec["low"] < spec["high"]
        ):
            raise BertxError(f"{source}: {key}: needs numbers low < high")
        if kind == "int" and not all(isinstance(spec[end], int) and not isinstance(spec[end], bool) for end in ("low", "high")):
            raise BertxError(f"{source}: {key}: an int dimension needs whole numbers low and high")
        if spec.get("log") and kind != "categorical" and spec["low"] <= 0:
            raise BertxError(f"{source}: {key}: a log-scaled dimension needs low > 0 (got {spec['low']})")
        unknown = set(spec) - {"type", "low", "high", "log", "choices", "step"}
        if unknown:
            raise BertxError(f"{source}: {key}: unknown fields {sorted(unknown)} (type, low, high, log, choices)")
        # Every value the sampler can draw must make a valid config: the ends of a range, each choice.
        for value in spec["choices"] if kind == "categorical" else (spec["low"], spec["high"]):
            try:
                validate_config(with_values(config, {key: value}), schema=FinetuneConfig)
            except BertxError as err:
                problem = str(err).split(": ", 2)[-1]
                raise BertxError(f"{source}: {key} = {value!r} is not a valid setting ({problem})") from None
    return space


def sample(trial, space: dict) -> dict:
    values = {}
    for key, spec in space.items():
        if spec["type"] == "categorical":
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return values


def with_values(config: dict, values: dict) -> dict:
    """A deep copy of the config dict with dotted keys set."""
    result = json.loads(json.dumps(config))
    for key, value in values.items():
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return result


def tune(
    config: FinetuneConfig,
    trials: int,
    output: str,
    space: dict | None = None,
    storage: str | None = None,
    study_name: str = "bertx-tune",
    seed: int = 0,
    prune: bool = True,
    show_progress: bool = False,
    log=say,
) -> dict:
    """Search `space` for the fine-tuning `config`; returns the summary written to OUTPUT/tune.json.

    Args:
        config: the fine-tuning config every trial starts from (its output is replaced per trial).
        trials: finished trials the study should hold (complete or pruned, by any process).
        output: folder for trial runs, tune.json, best.yaml (and the default SQLite storage).
        space: `{dotted.key: {type: float|int|categorical, low, high, log, choices}}`; default DEFAULT_SPACE.
        storage: an Optuna storage URL shared by every worker of the study.
    """
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if trials < 1:
        raise BertxError(f"--trials {trials}: give at least one trial")
    if not config.data.dev:
        raise BertxError("tune: the config has no dev file; trials are compared on its dev metric (set data.dev)")
    base = config.model_dump(mode="json")
    space = check_space(space or DEFAULT_SPACE, base, "the search space")
    out = Path(output)
    runfolder.check_writable_target(out)
    # The trials' folders are replaced on each rerun: never where the model or the data lives.
    data = config.data
    runfolder.check_not_read(out, [config.model.name_or_path, data.resolve(data.train), data.resolve(data.dev)])
    out.mkdir(parents=True, exist_ok=True)
    study = _study(storage or f"sqlite:///{(out / 'tune.db').resolve()}", study_name, seed, prune)
    trial_runs = Trials(base, space, out, show_progress, log)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    if sum(t.state in finished for t in study.trials) < trials:
        study.optimize(trial_runs.objective, callbacks=[MaxTrialsCallback(trials, states=finished)])
    if trial_runs.stopped is not None:
        stop = trial_runs.stopped
        raise RunStopped(stop.signum, stop.step, out, "run the same command again to continue the study")
    if trial_runs.failed_in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise BertxError(f"tune: {trial_runs.failed_in_a_row} trials in a row failed, so the search stopped; the last, {trial_runs.last_failure}")
    return write_summary(study, base, out, config)


def _study(url: str, name: str, seed: int, prune: bool):
    """The Optuna study in its storage (created, or loaded to continue): TPE, the median pruner after 3 trials,
    and a heartbeat so that a trial whose worker died is retried once."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # bertx logs each trial's outcome itself, in one line
    rdb = RDBStorage(url, heartbeat_interval=30, grace_period=90, heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    return optuna.create_study(
        study_name=name,
        storage=rdb,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3) if prune else optuna.pruners.NopPruner(),
    )


class Trials:
    """One fine-tuning run per trial, in OUTPUT/trial-N, its dev evaluations reported for pruning. A trial whose
    settings fail is recorded as failed and others are tried, but not forever; a stop signal ends the study."""

    def __init__(self, base: dict, space: dict, out: Path, show_progress: bool, log):
        self.base, self.space, self.out, self.show_progress, self.log = base, space, out, show_progress, log
        self.failed_in_a_row, self.last_failure, self.stopped = 0, None, None

    def objective(self, trial) -> float:
        try:
            return self.run(trial)
        except BertxError as err:  # this trial's settings failed (e.g. out of memory)
            self.failed_in_a_row += 1
            self.last_failure = f"trial {trial.number}: {err}"
            self.log(f"[tune] trial {trial.number} failed: {err}")
            if self.failed_in_a_row >= MAX_FAILURES_IN_A_ROW:
                trial.study.stop()
            return float("nan")  # Optuna records the trial as failed; it does not count towards --trials
        except RunStopped as stop:  # SIGTERM / Ctrl-C inside a trial: end the study cleanly; rerunning continues it
            self.stopped = stop
            trial.study.stop()
            return float("nan")

    def run(self, trial) -> float:
        import optuna

        values = sample(trial, self.space)
        folder = self.out / f"trial-{trial.number}"
        run_config = validate_config(with_values(self.base, {**values, "output": str(folder)}), schema=FinetuneConfig)
        started = time.perf_counter()
        trial.set_user_attr("output", str(folder))

        def report(step: int, value: float, metrics: dict) -> None:
            trial.report(value, step)
            if trial.should_prune():
                trial.set_user_attr("wall_s", round(time.perf_counter() - started, 1))
                trial.set_user_attr("steps", step)
                raise optuna.TrialPruned(f"step {step}: {value:.4f}")

        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        self.log(f"[tune] trial {trial.number}: {shown}")
        metrics = finetune(run_config, overwrite=True, show_progress=self.show_progress, on_eval=report)
        trial.set_user_attr("wall_s", round(time.perf_counter() - started, 1))
        trial.set_user_attr("steps", metrics["steps"])
        value = metrics[metrics["metric_for_best"]]
        self.log(f"[tune] trial {trial.number}: {metrics['metric_for_best']}={value:.4f}")
        self.failed_in_a_row = 0
        return value


def write_summary(study, base: dict, out: Path, config: FinetuneConfig) -> dict:
    from optuna.trial import TrialState

    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    if not done:
        raise BertxError(f"{out}: no trial finished; see the trial folders' log.jsonl")
    best = study.best_trial
    full = sum(t.user_attrs.get("wall_s", 0) for t in done) / len(done)
    spent = sum(t.user_attrs.get("wall_s", 0) for t in done + pruned)
    best_config = with_values(base, {**best.params, "output": config.output})
    runfolder.write_text(
        out / "best.yaml",
        "# the best trial's config (bertx tune); run it with: bertx finetune best.yaml\n" + yaml.safe_dump(best_config, sort_keys=False),
    )
    summary = {
        "metric": config.train.metric_for_best or "main",
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": best.params,
        "best_output": best.user_attrs.get("output"),
        "trials": len(study.trials),
        "complete": len(done),
        "pruned": len(pruned),
        "wall_s": round(spent, 1),
        # what the pruned trials would have cost had they run to the end, at the mean complete trial's time
        "wall_saved_by_pruning_s": round(max(0.0, sum(full - t.user_attrs.get("wall_s", full) for t in pruned)), 1),
        "table": [
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": t.params,
                "wall_s": t.user_attrs.get("wall_s"),
                "steps": t.user_attrs.get("steps"),
            }
            for t in study.trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ],
    }
    runfolder.write_json(out / "tune.json", summary)
    return summary
