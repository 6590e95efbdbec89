"""The plan on a user's own task: scores reported on examples no decision saw (never the split that picked
the winner), a test file read only at the end, a schedule that re-admits a stage when dropping another frees
its time, and levers pulled before a model under the baseline ships."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import bertx
from bertx.recipes.plan import budget, compress, constraints, stages
from tests.recipes.test_plan import plan_config

MIN = 60.0


def lean_plan(tiny_bert: str, root: Path, **changes) -> dict:
    """No dev file, no sources, one encoder, one student: the smallest plan a user may write."""
    config = plan_config(
        tiny_bert, root, dev=None, sources=None, unlabelled=[], unlabelled_rest=False, encoders=[tiny_bert], students=["cnn"], labelled=200
    )
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def records(path: str) -> set[str]:
    return set(Path(path).read_text(encoding="utf-8").splitlines()[1:])


def test_without_a_dev_file_the_reported_scores_come_from_examples_no_decision_saw(tiny_bert, tmp_path):
    ledger = bertx.plan(lean_plan(tiny_bert, tmp_path), show_progress=False)
    inputs = ledger["stages"]["profile"]["result"]["inputs"]
    reported = ledger["summary"]["reported"]
    assert reported["on"] == "held-out share of the labelled examples" and reported["file"] == inputs["report"]
    held, train, dev = records(inputs["report"]), records(inputs["train"]), records(inputs["dev"])
    assert len(held) == 40 and not held & train and not held & dev  # 20% of the 200 drawn
    assert reported["examples"] == 40
    again = bertx.evaluate(ledger["summary"]["shipped_dir"], inputs["report"])["accuracy"]
    assert reported["shipped"] == pytest.approx(again)
    for name in ("baseline", "teacher", "shipped"):
        low, high = reported[f"{name}_interval"]
        assert low <= reported[name] <= high
        assert high - low > 0.05 or reported[name] in (0.0, 1.0)  # 40 examples: a wide interval, unless none missed
    assert reported["gain_interval_pts"][0] <= reported["gain_pts"] <= reported["gain_interval_pts"][1]
    assert isinstance(reported["within_noise"], bool)
    page = (Path(ledger["summary"]["shipped_dir"]).parent / "report.html").read_text(encoding="utf-8")
    assert "held-out share of the labelled examples" in page and "95% interval" in page


def test_a_test_file_is_read_only_once_the_plan_has_shipped(tiny_bert, tmp_path, monkeypatch):
    from tests.conftest import write_toy_classification

    test_file = tmp_path / "test.tsv"
    write_toy_classification(test_file, 50, 9)
    opened: list[bool] = []
    scoring = [False]

    def hook(event, args):  # every open() of the test file, and whether the final scoring had begun
        if event == "open" and args and str(args[0]) == str(test_file):
            opened.append(scoring[0])

    original = stages.held_out_scores

    def scored(*args, **kwargs):
        scoring[0] = True
        return original(*args, **kwargs)

    monkeypatch.setattr(stages, "held_out_scores", scored)
    sys.addaudithook(hook)
    try:
        ledger = bertx.plan(lean_plan(tiny_bert, tmp_path, test=str(test_file)), show_progress=False)
    finally:
        scoring[0], test_file = False, Path("/nonexistent")  # the hook cannot be removed: make it inert
    assert opened and all(opened)
    reported = ledger["summary"]["reported"]
    assert reported["on"] == "test file" and reported["examples"] == 50
    assert "report_split" not in ledger["stages"]["profile"]["result"]["inputs"]["draws"]


def option(label: str, minutes: float, value: float, runs: bool = True) -> budget.Option:
    return budget.Option(label, minutes * MIN, value, runs=runs)


SKIP = option("skip", 0, 0, runs=False)


def test_the_schedule_readmits_a_stage_when_dropping_another_frees_its_time():
    # The cold machine of the user's report: the sources cost 24.8 min, adaptation 9.4 min, budget 45 min.
    choices = {
        "choose": [option("sources", 24.8, 1.5), option("capped sources", 12.0, 1.2), SKIP],
        "adapt": [option("adapt", 9.4, 1.0), option("adapt half", 4.7, 0.7), SKIP],
        "teacher": [option("teacher", 10, 2.0), option("teacher half", 5, 1.4)],
        "compress": [option("compress", 6, 4.0), option("skip", 1, 0.0, runs=False)],
    }
    picked = budget.best_schedule(choices, 5 * MIN, 45 * MIN)
    # Greedy trimming dropped adapt first, then the sources, and never looked back; together, both fit once
    # the sources are capped: 5 + 12 + 9.4 + 10 + 6 = 42.4 min.
    assert {n: o.label for n, o in picked.items()} == {"choose": "capped sources", "adapt": "adapt", "teacher": "teacher", "compress": "compress"}
    without_cap = {**choices, "choose": [choices["choose"][0], SKIP]}
    picked = budget.best_schedule(without_cap, 5 * MIN, 45 * MIN)
    assert not picked["choose"].runs and picked["adapt"].label == "adapt"  # the sources dropped, adaptation re-admitted
    assert all(o.runs for o in budget.best_schedule(choices, 5 * MIN, 60 * MIN).values())
    tight = budget.best_schedule(choices, 5 * MIN, 1 * MIN)  # nothing fits: the cheapest plan, said by the caller
    assert tight["teacher"].label == "teacher half" and not tight["choose"].runs and not tight["adapt"].runs


class Plan:
    """Just enough of a plan context for the levers."""

    def __init__(self):
        self.config = type("C", (), {"students": ["bert-3", "bert-2", "cnn", "bag"], "task": "classification", "sources": None})()
        self.decisions = []

    def decide(self, stage, choice, why):
        self.decisions.append({"stage": stage, "decision": choice, "why": why})


@pytest.mark.parametrize("teacher_ratio, expect_wider", [(0.15, False), (0.5, True)])
def test_a_student_under_the_baseline_pulls_the_levers_before_shipping(monkeypatch, teacher_ratio, expect_wider):
    ctx, rows, distilled = Plan(), [{"student": "bag", "score": 0.70, "missed": [], "latency_ratio": 0.03}], []
    monkeypatch.setattr(
        compress,
        "export_candidate",
        lambda ctx, teacher, name: {
            "student": name,
            "score": 0.82,
            "latency_ratio": teacher_ratio,
            "latency_ms": teacher_ratio * 10,
            "baseline_ms_beside": 10.0,
            "size_mb": 20.0,
        },
    )
    ship = {"latency_ratio": 0.2, "latency_ms": 2.0, "size_mb": None, "min_kept": 0.9}
    predicted = {"bert-3": 3.0, "bert-2": 2.3, "cnn": 1.0, "bag": 0.5}
    compress._levers(
        ctx,
        {"score": 0.80, "latency_ms": 10.0},
        {"score": 0.83, "folder": "t", "metric": "accuracy", "baseline_ms_beside": 10.0},
        ship,
        rows,
        predicted,
        lambda kind, teachers=(): distilled.append(kind) or True,
    )
    assert "pull the levers" in [d["decision"] for d in ctx.decisions]
    tried = next(d for d in ctx.decisions if d["decision"] == "try the teacher's int8 export")
    assert tried["why"].startswith("82.00 on dev") and ("misses latency" in tried["why"]) == expect_wider
    teacher_row = next(r for r in rows if r["student"] == "teacher-int8")
    assert bool(teacher_row["missed"]) == expect_wider
    assert distilled == (["bert-3"] if expect_wider else [])  # the widest untried within 1.8x the 2 ms target


def test_a_student_that_only_ties_the_baseline_pulls_the_levers_too():
    ctx, rows, distilled = Plan(), [{"student": "bag", "score": 0.80, "missed": [], "latency_ratio": 0.03}], []
    ship = {"latency_ratio": 0.2, "latency_ms": 2.0, "size_mb": None, "min_kept": 0.9}
    rows.append({"student": "teacher-int8", "score": 0.83, "missed": ["latency 0.5x"], "latency_ratio": 0.5})  # tried already
    compress._levers(
        ctx,
        {"score": 0.80, "latency_ms": 10.0},
        {"score": 0.83, "folder": "t"},
        ship,
        rows,
        {"bag": 0.5, "cnn": 1.0},
        lambda kind, teachers=(): distilled.append(kind) or True,
    )
    assert "pull the levers" in [d["decision"] for d in ctx.decisions] and distilled == ["cnn"]
    ctx = Plan()
    compress._levers(ctx, {"score": 0.79, "latency_ms": 10.0}, {"score": 0.83, "folder": "t"}, ship, rows, {"bag": 0.5}, lambda *a, **k: True)
    assert ctx.decisions == []  # above the baseline: nothing to pull


def test_after_the_measured_students_come_the_narrower_ones():
    # CoNLL at 40cfb38: bert-5 and bert-4 measured over a 3.03 ms target, bert-3 just under (0.199x); once trained
    # bert-3 timed 0.210x, and with nothing narrower to try the plan shipped the teacher at 0.38x
    predicted = {"bert-5": 3.68, "bert-4": 3.08, "bert-3": 2.47, "bert-2": 1.87, "bilstm": 2.47, "cnn": 1.41, "bert-1": 1.26}
    measured = {"bert-5": {"meets_ratio": False, "latency_ratio": 0.293}, "bert-4": {"meets_ratio": False, "latency_ratio": 0.236}}
    measured["bert-3"] = {"meets_ratio": True, "latency_ratio": 0.199}
    kinds, note = compress._measured_kinds(
        Plan(), {"folder": "t"}, {"latency_ratio": 0.2}, ["bert-5", "bert-4", "bert-3"], predicted, 3.03, {"measured": measured}, lambda: None
    )
    assert kinds == ["bert-3", "bert-2", "bilstm"] and "bert-3 0.199x" in note


def test_a_student_measured_over_the_target_is_no_lever_candidate():
    predicted = {"bert-5": 4.6, "bert-3": 3.1, "cnn": 1.0}
    measured = {"bert-5": {"meets_ratio": False}, "bert-3": {"meets_ratio": True}}
    assert compress.lever_candidates(predicted, measured) == {"bert-3": 3.1, "cnn": 1.0}
    assert compress.lever_candidates(predicted, None) == predicted


def test_the_sources_texts_lever_reteaches_the_best_student_on_a_bigger_transfer_set(monkeypatch):
    from bertx.recipes.plan import source_text

    ctx, distilled = Plan(), []
    rows = [{"student": "bert-3", "student_kind": "bert-3", "score": 0.78, "missed": [], "latency_ratio": 0.18, "export": "e"}]
    rows.append({"student": "teacher-int8", "score": 0.83, "missed": ["latency 0.5x"], "latency_ratio": 0.5})  # tried already
    monkeypatch.setattr(source_text, "source_text_file", lambda ctx: ("/plan/compress/source_texts.jsonl", 9400))
    monkeypatch.setattr(compress, "transfer_size", lambda ctx: 8000)

    def distil(kind, teachers=(), more=None):
        distilled.append((kind, teachers, more))
        rows.append({"student": f"{kind}+sources", "student_kind": kind, "score": 0.81, "missed": [], "latency_ratio": 0.18, "export": "f"})
        return True

    ship = {"latency_ratio": 0.2, "latency_ms": 2.0, "size_mb": None, "min_kept": 0.9}
    compress._levers(ctx, {"score": 0.80, "latency_ms": 10.0, "folder": "b"}, {"score": 0.83, "folder": "t"}, ship, rows, {"bert-3": 1.8}, distil)
    assert distilled == [("bert-3", (), ("/plan/compress/source_texts.jsonl", 9400))]  # above the baseline: no ensemble after it
    assert any("8000 -> 17400" in d["why"] for d in ctx.decisions)


def sources_context(tiny_bert: str, root: Path, pair: bool):
    """A plan context over a target (pairs or single texts) and three sources: single texts, pairs, tagged."""
    from tests.conftest import write_toy_classification

    config = plan_config(tiny_bert, root, dev=None)
    write_toy_classification(root / "target.tsv", 50, 7, pair=pair)
    write_toy_classification(root / "pairs.tsv", 30, 8, pair=True)
    (root / "tagged.txt").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n", encoding="utf-8")
    import yaml

    sources = yaml.safe_load((root / "sources.yaml").read_text(encoding="utf-8"))
    sources["tasks"] += [
        {"name": "pairs", "kind": "pair-classification", "train": str(root / "pairs.tsv")},
        {"name": "tagged", "kind": "ner", "train": str(root / "tagged.txt")},
    ]
    (root / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    config.update(train=str(root / "target.tsv"), task="pair-classification" if pair else "classification")
    plan = bertx.config.PlanConfig(**{k: v for k, v in config.items() if v is not None})
    return stages.Context(plan, root / "plan", {"train": str(root / "target.tsv"), "dev": None}, {"max_length": 32}, None)


@pytest.mark.parametrize("pair", [False, True])
def test_the_sources_texts_are_those_of_the_targets_shape_written_once_and_readable(tiny_bert, tmp_path, pair):
    from bertx.data.transfer_set import unlabelled_examples
    from bertx.recipes.plan.source_text import source_text_file
    from bertx.tasks import get_task

    ctx = sources_context(tiny_bert, tmp_path, pair)
    path, count = source_text_file(ctx)
    assert count == (30 if pair else 200)  # the pair source's pairs, or the single-text source's texts; never the tagged one
    assert Path(path).parent == tmp_path / "plan" / "compress" and Path(path).suffix == (".jsonl" if pair else ".txt")
    read = unlabelled_examples([path], get_task(ctx.config.task), {})
    assert len(read) == count and all((e.text_pair is not None) == pair for e in read)
    stamp = Path(path).stat().st_mtime_ns
    assert source_text_file(ctx) == (path, count) and Path(path).stat().st_mtime_ns == stamp  # a rerun reads what it wrote


def test_a_target_without_text_of_its_own_teaches_every_student_with_the_sources_texts(tiny_bert, tmp_path):
    ctx = sources_context(tiny_bert, tmp_path, pair=True)
    ctx.profile.update(unlabelled_lines=0, train_examples=40)
    path, count = compress._sources_file_from_start(ctx)
    assert count == 30 and path.endswith("source_texts.jsonl")
    assert ctx.decisions[-1]["decision"] == "teach every student with the sources' texts" and "40 labelled" in ctx.decisions[-1]["why"]
    ctx.profile.update(unlabelled_lines=500)  # text of its own: the sources' texts stay a lever
    assert compress._sources_file_from_start(ctx) is None


def test_the_sources_texts_lever_is_skipped_when_every_student_had_them(monkeypatch):
    from bertx.recipes.plan import source_text

    ctx, distilled = Plan(), []
    rows = [{"student": "bert-3+sources", "student_kind": "bert-3", "score": 0.78, "missed": [], "latency_ratio": 0.18, "export": "e"}]
    monkeypatch.setattr(source_text, "source_text_file", lambda ctx: ("/plan/compress/source_texts.jsonl", 9400))
    compress._source_texts(ctx, {"score": 0.80}, {"score": 0.83}, {}, rows, {}, lambda *a, **k: distilled.append(a) or True)
    assert distilled == [] and ctx.decisions == []


FOREIGN = ["bom", "ótimo", "lindo", "feliz", "ruim", "péssimo", "triste", "fraco", "filme", "história", "enredo", "muito"]


def foreign_sentence(rng, positive: bool) -> str:
    words = [rng.choice(FOREIGN[8:]) for _ in range(rng.randint(2, 5))]
    words.insert(rng.randint(0, len(words)), rng.choice(FOREIGN[:4] if positive else FOREIGN[4:8]))
    return " ".join(words)


def test_a_target_in_another_language_goes_through_the_vocabulary_stage(tiny_bert, tmp_path):
    import random

    rng = random.Random(5)
    rows = ["sentence\tlabel"] + [f"{foreign_sentence(rng, y)}\t{'pos' if y else 'neg'}" for y in (rng.random() < 0.5 for _ in range(2000))]
    (tmp_path / "foreign.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = lean_plan(tiny_bert, tmp_path, train=str(tmp_path / "foreign.tsv"), labelled=120, unlabelled_rest=True, students=["cnn"], budget="30m")
    config.pop("dev", None)
    rows_planned = {r["stage"]: r for r in bertx.plan(config, dry_run=True, show_progress=False)["schedule"]}
    assert rows_planned["adapt"]["run"] and rows_planned["adapt"]["vocabulary"]
    ledger = bertx.plan(config, show_progress=False)
    profile = ledger["stages"]["profile"]["result"]["profile"]
    assert profile["foreign_text"] and profile["pieces_per_word"] > 1.4
    out = Path(config["output"])
    assert (out / "vocab" / "vocab_report.json").is_file() and (out / "adapt" / "bertx_run.yaml").is_file()
    decisions = [d["decision"] for d in ledger["decisions"] if d["stage"] == "adapt"]
    assert any(d.startswith("add ") and "word pieces" in d for d in decisions)
    from transformers import AutoTokenizer

    grown = AutoTokenizer.from_pretrained(out / "vocab")
    assert len(grown) > len(AutoTokenizer.from_pretrained(tiny_bert))


def test_an_ensemble_of_teacher_and_baseline_teaches_the_best_student_again(monkeypatch):
    """Issue 42's lever: under the baseline, the best admissible student kind is distilled again from the
    teacher and the baseline together, before a wider student is tried; without a baseline folder, it is not."""
    monkeypatch.setattr(
        compress,
        "export_candidate",
        lambda ctx, teacher, name: {
            "student": name,
            "score": 0.5,
            "latency_ratio": 0.9,
            "latency_ms": 9.0,
            "baseline_ms_beside": 10.0,
            "size_mb": 20.0,
        },
    )
    ship = {"latency_ratio": 0.2, "latency_ms": 2.0, "size_mb": None, "min_kept": 0.9}
    for base_folder, expected in (("runs/baseline", [("bag", ("runs/baseline",))]), (None, [])):
        ctx, calls = Plan(), []
        rows = [{"student": "bag", "student_kind": "bag", "score": 0.70, "missed": [], "latency_ratio": 0.03}]

        def distil(kind, teachers=(), calls=calls, rows=rows):
            calls.append((kind, teachers))
            rows.append({"student": f"{kind}+ensemble", "student_kind": kind, "score": 0.81, "missed": []})
            return True

        base = {"score": 0.80, "latency_ms": 10.0, **({"folder": base_folder} if base_folder else {})}
        compress._levers(ctx, base, {"score": 0.83, "folder": "t", "metric": "accuracy"}, ship, rows, {"bag": 0.5}, distil)
        assert calls == expected
        if expected:  # the ensemble's student closed the gap: no wider student was tried
            assert "try bag from an ensemble" in [d["decision"] for d in ctx.decisions]


def test_the_widest_bert_students_come_first_and_never_wider_than_the_encoder():
    """Issue 39 (3): the widest student the latency allows; a BERT student keeps at most the encoder's layers."""
    from bertx.config.plan import STUDENTS

    ctx = Plan()
    ctx.config.students, ctx.profile = list(STUDENTS), {"probe": {"layers": 4}}
    kinds, predicted = compress.students_to_try(ctx, 10.0, None)
    assert kinds == ["bert-4", "bert-3", "bert-2"] and "bert-5" not in predicted
    kinds, _ = compress.students_to_try(ctx, 10.0, 2.0)  # a fifth of 10 ms: bert-4 (~2.1 ms) is within the margin
    assert kinds[0] == "bert-4"
    ctx.profile = {"probe": {"layers": 6}}
    assert compress.students_to_try(ctx, 10.0, None)[0][:2] == ["bert-5", "bert-4"]


def test_two_students_of_one_architecture_timed_apart_are_timed_again_together(monkeypatch):
    """RTE: a 3-layer student timed 0.189x the baseline and the same student taught by an ensemble 0.256x, a load
    at one moment; timed again together, the figures of that joint run decide for both."""
    calls = []

    def paired(folders, dev, rounds=5):
        calls.append((sorted(folders), rounds))
        return {name: {"latency_ms": 3.0 if name != constraints.BASELINE else 16.0} for name in folders}

    monkeypatch.setattr(constraints, "paired_latency", paired)
    ctx = Plan()
    ctx.out, ctx.inputs = Path("plan"), {"dev": "dev.tsv"}
    ship = {"latency_ratio": 0.2, "latency_ms": None, "size_mb": None, "min_kept": None}

    def row(name, ratio):
        return {"student": name, "student_kind": "bert-3", "export": f"{name}.export", "score": 0.54, "latency_ms": 16 * ratio}

    twins = [row("bert-3", 0.189), row("bert-3+ensemble", 0.256)]
    for r in twins:
        r.update(latency_ratio=r["latency_ms"] / 16, baseline_ms_beside=16.0)
        r["missed"] = constraints.missed_constraints(r, ship, 0.58)
    assert twins[1]["missed"] and not twins[0]["missed"]
    constraints.retime_twins(ctx, twins, ship, 0.58)
    assert calls == [(sorted(["bert-3", "bert-3+ensemble", constraints.BASELINE]), 15)]
    assert [r["latency_ratio"] for r in twins] == [0.188, 0.188] and not any(r["missed"] for r in twins)
    assert "time the twins again" in [d["decision"] for d in ctx.decisions]
    constraints.retime_twins(ctx, twins, ship, 0.58)  # now within the spread: not timed again
    assert len(calls) == 1


@pytest.mark.parametrize("at_ship, timed_longer", [(0.201, True), (0.19, False), (0.25, True)])
def test_a_ship_timing_on_the_other_side_of_the_target_is_settled_by_a_longer_one(monkeypatch, at_ship, timed_longer):
    """RTE: the compress stage timed the shipped student 0.172x the baseline, the ship stage 0.201x against a 0.2x
    target: one moment was loaded, so 15 rounds decide what the plan reports (and a timing on the same side as the
    compress stage's is kept as it is)."""
    calls = []

    def paired(folders, dev, rounds=5):
        calls.append(rounds)
        ratio = at_ship if rounds == 5 else 0.18
        return {"model": {"latency_ms": 20.0 * ratio}, "baseline": {"latency_ms": 20.0}}

    monkeypatch.setattr(stages, "paired_latency", paired)
    ctx = Plan()
    ctx.config.ship = type("S", (), {"latency_ratio": 0.2})()
    ctx.out, ctx.inputs = Path("plan"), {"dev": "dev.tsv"}
    found = stages.timed_again(ctx, Path("plan/ship"), {"latency_ratio": 0.172})
    assert calls == ([5, 15] if timed_longer else [5])
    assert found["latency_ratio"] == (0.18 if timed_longer else at_ship)
    assert ("time the shipped model again" in [d["decision"] for d in ctx.decisions]) == timed_longer


@pytest.mark.parametrize("pair", [False, True])
def test_the_sources_texts_are_priced_by_the_sources_of_the_targets_shape_at_their_own_lengths(tiny_bert, tmp_path, monkeypatch, pair):
    """RTE's estimate counted CoLA's and SST-2's single sentences among its pairs and priced MRPC's and STS-B's
    pairs at RTE's own length: its compress stage ran at half its estimate. Only the sources whose texts have
    the target's shape count, each at its own lengths."""
    from bertx.recipes.plan import source_text

    ctx = sources_context(tiny_bert, tmp_path, pair)
    assert stages.paired_sources(ctx) == {"pairs"}  # found from each source's sample, with its size
    sizes = {"toy": (200, [10.0, 12.0]), "pairs": (30, [40.0, 50.0]), "tagged": (2, [4.0])}
    monkeypatch.setattr(stages, "source_sizes", lambda ctx: sizes)
    found = source_text.estimated_texts(ctx)
    assert found == ([(30, [40.0, 50.0])] if pair else [(200, [10.0, 12.0])])
    assert source_text.estimated_count(ctx) == (30 if pair else 200)
    monkeypatch.setattr(source_text, "CAP", 100)  # scaled down to the cap in all
    assert source_text.estimated_count(ctx) == (30 if pair else 100)


def test_after_the_choose_stage_the_multitask_teacher_is_priced_with_the_sources_it_kept(monkeypatch):
    """Before the choose stage a multi-task teacher is priced with two sources of average size and lengths; after
    it, with the ones it kept (RTE's MRPC and STS-B pairs are longer than the average with single sentences)."""
    from bertx.recipes.plan.costs import Costs

    sizes = {"short": (4000, [10.0]), "long": (4000, [60.0]), "other": (4000, [10.0])}
    monkeypatch.setattr(stages, "source_sizes", lambda ctx: sizes)
    probe = {"length": 32, "points": [{"length": 8, "train_s": 0.01, "infer_s": 0.002}, {"length": 64, "train_s": 0.08, "infer_s": 0.016}]}
    profile = {"max_length": 64, "length_quantiles": [30.0], "dev_length_quantiles": [30.0], "dev_examples": 100, "train_examples": 1000}
    ctx = stages.Context(config=None, out=None, inputs={}, profile=profile, costs=Costs(probe, profile))
    before = stages.teacher_estimate(ctx, "multitask", 3.0)
    ctx.helpful = ["long"]
    one_long = stages.teacher_estimate(ctx, "multitask", 3.0)
    ctx.helpful = ["long", "short"]
    two = stages.teacher_estimate(ctx, "multitask", 3.0)
    assert before < two and one_long < two  # two sources of average length cost less than the long one and another
    ctx.helpful = ["short", "other"]
    assert stages.teacher_estimate(ctx, "multitask", 3.0) < before  # two short ones cost less than the average pair
