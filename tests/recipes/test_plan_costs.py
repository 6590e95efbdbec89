"""The plan's cost model on hand-made probes: a sequence's cost follows the probed per-token rate at its
length, a length distribution is priced by its quantiles (a few long inputs cost more than their mean
suggests), the probe times the lengths the stages will train on, and the compress estimate prices the
first student the latency ratio allows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bertx.recipes.plan import compress
from bertx.recipes.plan.costs import STUDENT_WORK, TRAIN_EFFICIENCY, Costs
from bertx.recipes.plan.profile import length_quantiles, probe_lengths

# Per-token training rates like a 2-core machine's: fixed costs dominate short batches, memory traffic long ones.
POINTS = [
    {"length": 16, "train_s": 16 * 3e-4, "infer_s": 16 * 4e-5},
    {"length": 128, "train_s": 128 * 2e-4, "infer_s": 128 * 4e-5},
    {"length": 256, "train_s": 256 * 7e-4, "infer_s": 256 * 6e-5},
]


def costs(**profile) -> Costs:
    base = {"max_length": 256, "mean_length_at_max": 64.0, "dev_mean_length": 64.0, "dev_examples": 100}
    return Costs({"points": POINTS, "length": 16, "train_s_per_token": 3e-4, "infer_s_per_token": 4e-5}, {**base, **profile})


def test_a_sequence_costs_the_rate_interpolated_at_its_length():
    c = costs()
    assert c.per_sequence("train_s", 16) == pytest.approx(16 * 3e-4)
    assert c.per_sequence("train_s", 72) == pytest.approx(72 * 2.5e-4)  # halfway from 16 to 128
    assert c.per_sequence("train_s", 8) == pytest.approx(8 * 3e-4)  # the shortest probe's rate below it
    assert c.per_sequence("train_s", 512) == pytest.approx(512 * 7e-4)  # the longest probe's rate beyond it


def test_a_length_distribution_costs_more_than_its_mean_when_long_inputs_are_dearer():
    c = costs()
    lengths = [32] * 9 + [256]
    mean = sum(lengths) / len(lengths)
    assert c.mean_cost("train_s", lengths) > 1.5 * c.per_sequence("train_s", mean)
    assert c.train_s(1000, lengths) == pytest.approx(1000 * c.mean_cost("train_s", lengths) * TRAIN_EFFICIENCY)


def test_lengths_beyond_the_plans_max_length_are_priced_at_it():
    c = costs(max_length=128, length_quantiles=[20.0, 100.0, 400.0])
    assert c.lengths == [20.0, 100.0, 128]
    assert c.quantiles(max_length=64) == [20.0, 64, 64]


def test_a_ledger_from_before_the_multi_length_probe_is_priced_linearly():
    old = Costs({"length": 32, "train_s_per_token": 3e-4, "infer_s_per_token": 4e-5}, {"mean_length_at_max": 40.0, "max_length": 64})
    assert old.per_sequence("train_s", 64) == pytest.approx(64 * 3e-4)
    assert old.train_s(10) == pytest.approx(10 * 40 * 3e-4 * TRAIN_EFFICIENCY)


def test_quantiles_span_the_distribution():
    found = length_quantiles(list(range(1, 101)))
    assert len(found) == 21 and found[0] == 1 and found[-1] == 100 and found[10] == pytest.approx(50.5)


@pytest.mark.parametrize(
    "mean, longest, expected",
    [
        (20.0, 48, [20, 48]),
        (14.0, 160, [16, 64, 128, 160]),
        (96.0, 256, [64, 96, 128, 256]),
        (40.0, 600, [40, 64, 128, 256]),
    ],
)
def test_the_probe_times_the_mean_the_middle_lengths_and_the_longest(mean, longest, expected):
    assert probe_lengths(mean, longest) == expected


def ratio_plan(ratio: float | None, students=("bert-3", "bert-2", "bilstm", "cnn", "bert-1", "bag")):
    config = SimpleNamespace(
        task="classification",
        students=list(students),
        augment=0,
        sources=None,
        ship=SimpleNamespace(latency_ratio=ratio, latency_ms=None if ratio else 5.0),
    )
    profile = {
        "max_length": 64,
        "mean_length_at_max": 20.0,
        "dev_mean_length": 20.0,
        "dev_examples": 100,
        "train_examples": 1000,
        "unlabelled_lines": 0,
    }
    return SimpleNamespace(config=config, profile=profile, costs=costs(**profile), examples=1000)


@pytest.mark.parametrize("ratio, first", [(0.2, "bert-3"), (0.1, "bert-2"), (0.03, "bag"), (None, "bert-2")])
def test_the_compress_estimate_prices_the_first_student_the_latency_ratio_allows(ratio, first):
    ctx = ratio_plan(ratio)
    transfer = compress.transfer_size(ctx)
    measuring = ctx.costs.measure_student(first) if ratio else 0.0  # the candidate built and timed beside the baseline
    assert compress.compress_estimate(ctx) == pytest.approx(ctx.costs.student(first, transfer, compress.student_epochs(transfer)) + measuring)
    assert STUDENT_WORK[first] > 0


def test_calibration_weights_each_finished_stage_by_its_size():
    c = costs()
    c.calibrate(20.0, 10.0)  # a short stage, mostly fixed costs, ran at half its estimate
    c.calibrate(600.0, 630.0)  # the long one ran 5% over
    assert c.scale == pytest.approx(640 / 620)


def test_a_shipped_model_under_the_baseline_is_flagged_once_with_the_nearest_alternative():
    from bertx.recipes.plan import _flag_below_baseline

    ctx = compress.Context(config=None, out=None, inputs={}, profile={}, costs=None)
    base, teacher = {"score": 0.60}, {"score": 0.61, "latency_ms": 10.0}
    wider = {"student": "bert-3", "score": 0.612, "latency_ratio": 0.341, "missed": ["latency 0.341x the baseline's > 0.2x"]}
    ledger = {"stages": {"compress": {"status": "done", "seconds": 60.0, "result": {"students": [wider]}}}}
    _flag_below_baseline(ctx, base, teacher, {"score": 0.62, "folder": "ship"}, ledger)
    assert ctx.decisions == []
    _flag_below_baseline(ctx, base, teacher, {"score": 0.56, "folder": "ship"}, ledger)
    _flag_below_baseline(ctx, base, teacher, {"score": 0.56, "folder": "ship"}, ledger)  # a rerun says it once
    assert [d["decision"] for d in ctx.decisions] == ["below the baseline"]
    why = ctx.decisions[0]["why"]
    assert "4.00 points under the baseline" in why and "with `latency_ratio: 0.35`, bert-3 at +1.20 points" in why


def test_a_shipped_model_that_misses_ship_is_said_so_once_with_why():
    """RTE on a slower run: the re-plan dropped the compress stage and shipped the teacher at 0.385x the
    baseline's latency against `latency_ratio: 0.2`; the summary's latency alone did not say the constraint failed."""
    from bertx.recipes.plan import _flag_missed_ship

    ctx = compress.Context(config=None, out=None, inputs={}, profile={}, costs=None)
    ship = {"latency_ratio": 0.2, "latency_ms": 3.0, "size_mb": None, "min_kept": None}
    skipped = {"run": False, "reason": "does not fit the budget: the teacher is shipped"}
    fast = {"score": 0.56, "latency_ms": 2.5, "baseline_ms_beside": 15.0, "latency_ratio": 0.167, "size_mb": 60.0}
    _flag_missed_ship(ctx, fast, ship, {"score": 0.56}, skipped)
    assert ctx.decisions == []
    slow = {**fast, "latency_ms": 5.8, "latency_ratio": 0.385}
    _flag_missed_ship(ctx, slow, ship, {"score": 0.56}, skipped)
    _flag_missed_ship(ctx, slow, ship, {"score": 0.56}, skipped)  # a rerun says it once
    assert [d["decision"] for d in ctx.decisions] == ["misses the ship constraints"]
    why = ctx.decisions[0]["why"]
    assert "latency 0.385x the baseline's > 0.2x" in why and "compress: does not fit the budget" in why
