"""Generated inputs, not a list (issue 26): Hypothesis draws paths, texts, numbers, YAML values and file
contents, and every command and reader must answer each with either success or exit 2 and exactly one
`error:` line: never a traceback, never a file changed outside `--output`. Request bodies and serve options:
`tests/serve/test_generated_requests.py`.

The example count is bounded for CI (tests/conftest.py, profile "ci"); `BERTX_HYPOTHESIS=long` runs
the longer profile. Commands run in-process through `bertx.cli.main`, as the console script runs them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bertx.cli import main
from bertx.cli.options import OPTION_KEYS, field_at
from bertx.config import DistillConfig, FewshotConfig, FinetuneConfig, PlanConfig, PretrainConfig
from bertx.errors import BertxError, DataError
from tests.conftest import tiny_config, write_toy_classification

# Each training command, its schema, and the recipe function the command calls once the config is valid.
COMMANDS = {
    "finetune": (FinetuneConfig, "bertx.recipes.finetune", "finetune"),
    "fewshot": (FewshotConfig, "bertx.recipes.fewshot", "fewshot"),
    "pretrain": (PretrainConfig, "bertx.recipes.pretrain", "pretrain"),
    "distill": (DistillConfig, "bertx.recipes.distill", "distill"),
    "plan": (PlanConfig, "bertx.recipes.plan", "plan"),
}
# `bertx plan` takes a YAML first (its task and files): a minimal one, written once.
_PLAN_YAML = Path(__import__("tempfile").mkdtemp(prefix="bertx-plan-yaml-")) / "plan.yaml"
_PLAN_YAML.write_text("task: classification\ntrain: t.tsv\n", encoding="utf-8")


def _command(command: str) -> list[str]:
    return [command, str(_PLAN_YAML)] if command == "plan" else [command]


REACHED = "reached the recipe"

# Characters a path segment may hold on Linux: anything but NUL and "/". Colons, quotes, spaces,
# emoji, leading dashes, control characters, and the lone surrogates Python makes of undecodable bytes.
_SEGMENT_CHARS = st.one_of(
    st.characters(blacklist_characters="\x00/", blacklist_categories=("Cs",)),
    st.sampled_from(list(":\"' -~$*?[]{}\\#\t\u2028\x1b😀") + [chr(c) for c in range(0xDC80, 0xDCFF, 17)]),
)
SEGMENT = st.text(_SEGMENT_CHARS, min_size=1, max_size=10).filter(lambda s: s not in (".", "..") and len(s.encode("utf-8", "surrogateescape")) < 200)
PATHS = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)
SPECIAL_PATHS = ["runs/exp:1", "tr:ain.tsv", "hf:glue:sst2:train", "o/rün 😀 x", '"quoted"', "-leading-dash", "a\\b", "x=y"]


def _dotted(cfg, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _run(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err[-3000:]
    return code, err, [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def captured(monkeypatch):
    """Stub every training recipe: record the config it would have received, then stop with one line."""
    seen = {}
    for name, (_, module, function) in COMMANDS.items():

        def stub(cfg, *args, _name=name, **kwargs):
            seen[_name] = cfg
            raise BertxError(REACHED)

        monkeypatch.setattr(importlib.import_module(module), function, stub)
    return seen


def _option_key(schema, option: str) -> str | None:
    return next((k for k in OPTION_KEYS[option] if field_at(schema, k) is not None), None)


@given(
    command=st.sampled_from(sorted(COMMANDS)),
    option=st.sampled_from(["output", "train", "dev", "model", "teacher", "sources"]),
    value=st.one_of(PATHS, st.sampled_from(SPECIAL_PATHS)),
    joined=st.booleans(),
)
@example(command="finetune", option="output", value="runs/exp:1", joined=False)
@example(command="finetune", option="train", value="hf:NAME:CONFIG:SPLIT", joined=False)
@example(command="finetune", option="output", value="o/rün 😀 x", joined=False)
def test_a_path_option_reaches_its_field_exactly(captured, capsys, command, option, value, joined):
    """Issue 26 (2): an option's value is a typed value, never text parsed again as YAML."""
    schema = COMMANDS[command][0]
    key = _option_key(schema, option)
    assume(key is not None)
    flag = "--" + option
    argv = _command(command) + ([f"{flag}={value}"] if joined or value.startswith("-") else [flag, value])
    if command == "distill" and option != "teacher":
        argv += ["--teacher", "some/teacher"]
    code, err, errors = _run(argv, capsys)
    assert code == 2 and len(errors) == 1, err
    if errors[0] == f"error: {REACHED}":
        got = _dotted(captured[command], key)
        assert got == ([value] if isinstance(got, list) else value)  # a repeatable option gives a list
    elif "is not valid UTF-8" in errors[0]:  # bytes from a non-UTF-8 path: refused once, for every command
        assert not _encodable(value)
    else:  # the schema refused it: the line names the field or option
        assert key.split(".")[-1] in errors[0] or flag in errors[0], errors[0]


NUMBER_OPTIONS = [
    "batch_size",
    "epochs",
    "lr",
    "max_length",
    "max_steps",
    "grad_accum",
    "seed",
    "eval_steps",
    "max_train_examples",
    "shots",
    "rounds",
    "student_layers",
    "kd_temperature",
    "augment",
    "labelled",
]
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0", "-1", "1e309", "nan", "1_000", "0x10", " 3", "3 ", "", "١٢"]),
)


@given(command=st.sampled_from(sorted(COMMANDS)), option=st.sampled_from(NUMBER_OPTIONS), value=NUMBERS)
@example(command="finetune", option="batch_size", value=0)
@example(command="finetune", option="max_length", value=100_000)
def test_a_number_option_is_within_the_schema_bounds_or_one_line(captured, capsys, command, option, value):
    schema = COMMANDS[command][0]
    key = _option_key(schema, option)
    assume(key is not None)
    argv = _command(command) + [f"--{option.replace('_', '-')}={value}"]
    if command == "distill":
        argv += ["--teacher", "t"]
    code, err, errors = _run(argv, capsys)
    assert code == 2 and len(errors) == 1, err
    if errors[0] == f"error: {REACHED}":
        got = _dotted(captured[command], key)
        field = field_at(schema, key)
        for bound in field.metadata:  # what the schema allows is what arrived
            for name, check in (("ge", lambda b: got >= b), ("gt", lambda b: got > b), ("le", lambda b: got <= b), ("lt", lambda b: got < b)):
                if getattr(bound, name, None) is not None:
                    assert check(getattr(bound, name)), (key, got, bound)


@given(value=st.one_of(st.text(max_size=12), st.sampled_from(["45m", "1h30m", "90s", "2h", "0", "-5m", "m", "1e3m", "nan", "45"])))
@example(value="45m")
def test_a_plan_budget_is_a_duration_or_one_line(captured, capsys, value):
    code, err, errors = _run(_command("plan") + [f"--budget={value}"], capsys)
    assert code == 2 and len(errors) == 1, err
    if errors[0] == f"error: {REACHED}":
        assert captured["plan"].budget_s > 0


YAML_VALUES = st.one_of(
    st.text(max_size=30), st.sampled_from(["[1, 2", "{a: 1}", "!!python/object:os.system x", "&a [*a]", "yes", "~", "1e3", "0:30", "'quoted'", "- a"])
)


@given(
    key=st.sampled_from(
        ["train.lr", "train.epochs", "data.max_length", "output", "data.train", "task", "model.dropout", "train.nothing", "nothing.at.all", "train"]
    ),
    value=YAML_VALUES,
)
def test_a_dotted_override_is_valid_or_one_line(captured, capsys, key, value):
    assume("\x00" not in value)
    code, err, errors = _run(["finetune", f"{key}={value}"], capsys)
    assert code == 2 and len(errors) == 1, err


# ---- readers: generated file contents ----------------------------------------------------------------

LINE_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
FILE_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.lists(LINE_TEXT, min_size=1, max_size=4).map("\t".join), max_size=8).map(lambda rows: "\n".join(["text\tlabel", *rows]).encode()),
    st.lists(
        st.dictionaries(
            st.sampled_from(["text", "label", "tokens", "question", "context", "x"]),
            st.one_of(LINE_TEXT, st.integers(), st.none(), st.lists(LINE_TEXT, max_size=3)),
            max_size=4,
        ),
        max_size=6,
    ).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
)


@given(
    content=FILE_BYTES,
    suffix=st.sampled_from([".tsv", ".csv", ".jsonl", ".txt", ".conll", ".json"]),
    task=st.sampled_from(["classification", "multilabel", "regression", "pair-classification", "ner", "qa"]),
)
def test_every_reader_answers_with_rows_or_one_located_line(tmp_path_factory, content, suffix, task):
    from bertx.data.conll import read_tagged
    from bertx.data.examples import read_examples
    from bertx.data.squad import read_qa
    from bertx.tasks import get_task

    path = tmp_path_factory.mktemp("reader") / f"data{suffix}"
    path.write_bytes(content)
    try:
        if task == "ner":
            read_tagged(str(path))
        elif task == "qa":
            read_qa(str(path))
        else:
            read_examples(str(path), get_task(task), text_column=None, text_pair_column=None, label_column="label")
    except BertxError as err:
        message = str(err)
        assert "\n" not in message and message.startswith(str(path)), message
        if isinstance(err, DataError) and isinstance(err.line, int):
            assert 1 <= err.line <= content.count(b"\n") + 1


# ---- plan configs: generated YAML, dry runs ------------------------------------------------------------

PLAN_VALUES = {
    "budget": st.sampled_from(["45m", "1m", "30s", "2h", "0m", "soon", 45, None]),
    "labelled": st.one_of(st.integers(-5, 200), st.none(), st.just("many")),
    "report_fraction": st.one_of(st.floats(-0.5, 1.5), st.just(float("nan")), st.none()),
    "dev_fraction": st.one_of(st.floats(-0.5, 1.5), st.none()),
    "ship": st.one_of(st.fixed_dictionaries({}, optional={"latency_ratio": st.floats(-1, 2), "size_mb": st.floats(-1, 500)}), st.just("fast")),
    "students": st.one_of(st.lists(st.sampled_from(["bert-1", "bert-3", "cnn", "bilstm", "bag", "gpt"]), max_size=3), st.just("cnn")),
    "regime": st.sampled_from(["auto", "full", "fewshot", "adapters", "multitask", "magic"]),
    "task": st.sampled_from(["classification", "regression", "ner", "qa", "sentiment"]),
    "unlabelled_rest": st.one_of(st.booleans(), st.integers(-3, 300)),
    "seed": st.one_of(st.integers(-2, 10**6), st.text(max_size=3)),
    "dev": st.sampled_from([None, "dev.tsv", "missing.tsv"]),
    "test": st.sampled_from([None, "dev.tsv", "missing.tsv"]),
}


@pytest.fixture(scope="module")
def plan_files(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("plan-generated")
    write_toy_classification(root / "train.tsv", 120, seed=1)
    write_toy_classification(root / "dev.tsv", 40, seed=2)
    return root


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(st.sampled_from(sorted(PLAN_VALUES)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: PLAN_VALUES[k] for k in keys})
    )
)
def test_a_generated_plan_config_dry_runs_or_is_one_line(tiny_bert, plan_files, capsys, changes):
    """Issue 40: a plan config, whatever its values, is scheduled (--dry-run, exit 0) or refused with exactly
    one line naming the problem (exit 2), before any training and without a traceback."""
    config = {
        "task": "classification",
        "train": "train.tsv",
        "encoders": [tiny_bert],
        "budget": "30m",
        "labelled": 100,
        "output": str(plan_files / "out"),
        **changes,
    }
    config = {k: v for k, v in config.items() if v is not None}
    (plan_files / "plan.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code, err, errors = _run(["plan", str(plan_files / "plan.yaml"), "--dry-run"], capsys)
    assert (code == 0 and not errors) or (code == 2 and len(errors) == 1), err[-2000:]
    assert not (plan_files / "out").exists()  # a dry run writes nothing


# ---- commands on a trained tiny model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    train = write_toy_classification(root / "train.tsv", 96, seed=1)
    dev = write_toy_classification(root / "dev.tsv", 32, seed=2)
    import bertx

    bertx.finetune(tiny_config(tiny_bert, str(train), str(dev), str(root / "run"), epochs=1), show_progress=False)
    return root


def _snapshot(root: Path, skip: Path | None = None) -> dict:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
        for p in sorted(root.rglob("*"))
        if skip is None or (p != skip and skip not in p.parents)
    }


TEXTS = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(["a good film", "\ud800 lone", "x\u2028y", "tab\tinside", "\x0c", "😀" * 50, "good " * 400, "  ", "-dash"]),
    ),
    min_size=1,
    max_size=4,
)


@given(texts=TEXTS)
def test_predict_texts_give_one_record_each_or_one_line(trained, capsys, texts):
    """--text values: lone surrogates, control characters, U+2028, very long strings."""
    assume(all("\x00" not in t for t in texts))
    before = _snapshot(trained)
    argv = ["predict", str(trained / "run")]
    for text in texts:
        argv += [f"--text={text}"]
    code, err, errors = _run(argv, capsys)
    out_lines = []
    if code == 0:
        assert not errors
    else:
        assert code == 2 and len(errors) == 1 and ("--text" in errors[0] or "not valid UTF-8" in errors[0]), err
    assert _snapshot(trained) == before
    del out_lines


@given(
    raw=st.one_of(st.binary(max_size=200), st.lists(st.text(max_size=20), max_size=5).map(lambda t: "\n".join(t).encode("utf-8", "surrogatepass")))
)
def test_predict_from_stdin_reads_bytes_like_a_file(trained, capsys, monkeypatch, raw):
    """Issue 26 (8): stdin is decoded like the file readers (same errors, `\\n`-only lines), errors name <stdin>."""
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, err, errors = _run(["predict", str(trained / "run"), "--input", "-"], capsys)
    if code != 0:
        assert code == 2 and len(errors) == 1 and "<stdin>" in errors[0], err
        assert "stdin.txt" not in errors[0] and "/tmp" not in errors[0]


@given(
    option=st.sampled_from(["--batch-size", "--limit"]),
    command=st.sampled_from(["predict", "evaluate"]),
    value=st.one_of(st.integers(-3, 3), st.sampled_from(["-1", "0", "x", "1e2", "99999999999999999999"])),
)
def test_numbers_of_use_commands_are_bounded(trained, capsys, option, command, value):
    """Issue 26 (9): --batch-size 0, --limit -1 and --limit 0 are refused in one line, not a traceback or a silent slice."""
    assume(not (command == "predict" and option == "--limit"))
    argv = [command, str(trained / "run"), option, str(value)]
    argv += ["--text", "a good film"] if command == "predict" else ["--data", str(trained / "dev.tsv")]
    code, err, errors = _run(argv, capsys)
    try:
        number = int(str(value))
    except ValueError:
        number = None
    if number is not None and number >= 1:
        assert code == 0, err
    else:
        assert code == 2 and len(errors) == 1 and option in errors[0], err


@given(name=SEGMENT)
@example(name="exp:1")
@example(name="rün 😀 x")
def test_a_real_run_in_a_generated_folder_works_from_another_directory(tiny_bert, trained, tmp_path_factory, monkeypatch, capsys, name):
    """A real (tiny) run whose --output is a generated name lands exactly there, and its folder travels:
    evaluated from another working directory, it finds its data (paths stored absolute)."""
    assume(not name.startswith("-") and _encodable(name))
    work = tmp_path_factory.mktemp("work")
    monkeypatch.chdir(work)
    (work / "data").mkdir()
    for part in ("train.tsv", "dev.tsv"):
        (work / "data" / part).write_bytes((trained / part).read_bytes())
    argv = [
        "finetune",
        "--model",
        tiny_bert,
        "--train",
        "data/train.tsv",
        "--dev",
        "data/dev.tsv",
        "--output",
        name,
        "--epochs",
        "1",
        "--max-length",
        "32",
        "--show-examples",
        "0",
    ]
    code, err, errors = _run(argv, capsys)
    assert code == 0, err
    run_dir = work / name
    assert (run_dir / "bertx_run.yaml").is_file() and (run_dir / "model.safetensors").is_file()
    run = yaml.safe_load((run_dir / "bertx_run.yaml").read_text(encoding="utf-8"))
    assert run["data"]["dev"] == str(work / "data" / "dev.tsv")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    code, err, _ = _run(["report", str(run_dir), "--output", str(elsewhere / "r.html")], capsys)
    assert code == 0 and "warning" not in err, err
    assert "Predictions on" in (elsewhere / "r.html").read_text(encoding="utf-8")


def test_the_hypothesis_profile_is_bounded_for_ci():
    from hypothesis import settings

    if not os.environ.get("BERTX_HYPOTHESIS_EXAMPLES"):
        assert settings().max_examples <= (600 if os.environ.get("BERTX_HYPOTHESIS") == "long" else 30)
