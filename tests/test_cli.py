"""The CLI end to end on the tiny model: finetune, evaluate --json, predict; bad input gives one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bertx.cli import app
from tests.conftest import write_toy_classification

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train = write_toy_classification(root / "train.tsv", 240, seed=1)
    dev = write_toy_classification(root / "dev.tsv", 80, seed=2)
    config = root / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "classification",
                "data": {"train": str(train), "dev": str(dev)},
                "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
                "train": {"epochs": 1, "lr": 1e-3},
            }
        )
    )
    out = root / "run"
    # YAML config + dotted overrides + options, the way the README shows it
    result = invoke("finetune", config, "train.lr=3e-3", "train.epochs=3", "train.seed=7", "--batch-size", 16, "--output", out, "--show-examples", 3)
    assert result.exit_code == 0, result.output
    assert "dev: accuracy=" in result.output and "example predictions:" in result.output
    return root, out, dev


def test_finetune_resolves_config_overrides_and_options(trained):
    _, out, _ = trained
    run = yaml.safe_load((out / "bertx_run.yaml").read_text())
    assert run["train"]["lr"] == 3e-3 and run["train"]["epochs"] == 3 and run["train"]["batch_size"] == 16
    assert run["columns"]["text"] == "sentence"


def test_evaluate_json_last_line(trained):
    _, out, dev = trained
    result = invoke("evaluate", out, "--data", dev, "--json")
    assert result.exit_code == 0
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert {"accuracy", "macro_f1", "mcc", "f1"} <= set(metrics) and metrics["accuracy"] > 0.9


def test_predict_writes_jsonl(trained, tmp_path):
    _, out, dev = trained
    target = tmp_path / "pred.jsonl"
    result = invoke("predict", out, "--input", dev, "--output", target)
    assert result.exit_code == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 80 and set(rows[0]) == {"text", "label", "probs"}
    assert set(rows[0]["probs"]) == {"neg", "pos"}
    texts = tmp_path / "texts.txt"
    texts.write_text("great superb film\nawful dull plot\n")
    result = invoke("predict", out, "--input", texts)
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    # the same texts on the command line, and on standard input
    given = invoke("predict", out, "--text", "great superb film", "--text", "awful dull plot")
    assert [json.loads(line) for line in given.output.strip().splitlines()] == rows
    piped = CliRunner().invoke(app, ["predict", str(out), "--input", "-"], input="great superb film\nawful dull plot\n")
    assert [json.loads(line) for line in piped.output.strip().splitlines()] == rows
    assert invoke("predict", out).exit_code == 2  # neither --input nor --text


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"sentence\tlabel\ngood film\tpos\nbad\tneg\textra\n", "bad.tsv:3: row has 3 columns"),
        (b"sentence\tlabel\ngood film\tpos\n\t neg\n", "bad.tsv:3: empty text"),
        (b"sentence\tlabel\ngood \xff film\tpos\n", "bad.tsv:2: not valid UTF-8"),
        (b"", "bad.tsv: file is empty"),
        (b"sentence\tstars\ngood\tpos\n", "bad.tsv:1: no label column 'label'"),
    ],
)
def test_bad_training_file_is_one_line(tiny_bert, tmp_path, content, expected):
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(content)
    result = invoke("finetune", "--train", bad, "--model", tiny_bert, "--output", tmp_path / "o")
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output


def test_unknown_config_key_and_bad_override(tmp_path):
    result = invoke("finetune", "train.learning_rate=1e-4", "--output", tmp_path / "o")
    assert result.exit_code == 2 and "train.learning_rate: Extra inputs are not permitted" in result.output
    result = invoke("finetune", "--task", "ner-ish", "--output", tmp_path / "o")
    assert result.exit_code == 2 and "unknown task 'ner-ish'" in result.output


def test_errors_have_no_traceback_in_a_real_process(tmp_path):
    """The installed entry point, not just the test runner, prints one line and exits 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "bertx.cli", "evaluate", str(tmp_path / "nope"), "--data", "x.tsv"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: model folder not found (pass a local folder, or a hub id such as bert-base-uncased)"
    ]


def test_every_command_help_shows_a_worked_example():
    from typer.testing import CliRunner

    from bertx.cli import app

    commands = [
        "finetune",
        "evaluate",
        "predict",
        "pretrain",
        "multitask",
        "multitask-export",
        "intermediate",
        "transfer",
        "distill",
        "fewshot",
        "export",
        "serve",
        "merge",
        "rank",
        "report",
        "tune",
        "vocab extend",
        "tokenizer train",
    ]
    missing = [c for c in commands if "Example: bertx" not in " ".join(CliRunner().invoke(app, [*c.split(), "--help"]).output.split())]
    assert missing == []


def _main(argv, capsys):
    from bertx.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return code, out, err


def test_predict_writes_through_a_symlink_and_to_dev_null(trained, tmp_path, capsys):
    """Issue 26 (4): the output path's kind is kept: a link stays a link, /dev/null stays a device."""
    import stat

    _, out, _ = trained
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    assert _main(["predict", out, "--text", "good film", "--output", link], capsys)[0] == 0
    assert link.is_symlink() and json.loads(real.read_text())["text"] == "good film"
    assert _main(["predict", out, "--text", "good film", "--output", "/dev/null"], capsys)[0] == 0
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)


def test_stdin_splits_lines_at_newlines_only(trained, capsys, monkeypatch):
    """Issue 26 (8): two lines holding a form feed and U+2028 are two predictions, not three or four."""
    import io

    _, out, _ = trained
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("good\x0cfilm\nbad\u2028film\n".encode())))
    code, stdout, err = _main(["predict", out, "--input", "-"], capsys)
    assert code == 0, err
    assert [json.loads(line)["text"] for line in stdout.split("\n") if line] == ["good\x0cfilm", "bad\u2028film"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good film\ncaf\xe9 bad\n")))
    code, _, err = _main(["predict", out, "--input", "-"], capsys)
    assert code == 2 and "error: <stdin>:2: not valid UTF-8" in err


def test_sigterm_during_a_command_leaves_no_temporaries(trained, tmp_path, capsys, monkeypatch):
    """SIGTERM outside a training loop becomes an exception, so the one writer removes its temporary:
    exit 143, one line, and the folder holds what it held before."""
    import os
    import signal

    import bertx.inference.predict_file as predict_module

    _, out, _ = trained
    real = predict_module._write_jsonl

    def killed_mid_write(records, destination):
        def records_then_term():
            yield next(iter(records))
            os.kill(os.getpid(), signal.SIGTERM)
            yield from records

        return real(records_then_term(), destination)

    monkeypatch.setattr(predict_module, "_write_jsonl", killed_mid_write)
    target = tmp_path / "pred.jsonl"
    target.write_text("the old predictions\n")
    code, _, err = _main(["predict", out, "--text", "good film", "--text", "bad film", "--output", target], capsys)
    assert code == 143 and "stopped by SIGTERM" in err
    assert target.read_text() == "the old predictions\n" and [p.name for p in tmp_path.iterdir()] == ["pred.jsonl"]
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was restored, not left raising


def test_report_says_when_the_runs_dev_file_is_gone(trained, tmp_path, capsys):
    import shutil

    root, out, dev = trained
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    run = yaml.safe_load((copy / "bertx_run.yaml").read_text())
    run["data"]["dev"] = str(tmp_path / "gone.tsv")
    (copy / "bertx_run.yaml").write_text(yaml.safe_dump(run))
    (copy / "notes.md").write_bytes(b"caf\xe9 latin-1 notes\n")  # Issue 26 (10): a non-UTF-8 .md in the folder
    code, _, err = _main(["report", copy, "--output", tmp_path / "r.html"], capsys)
    assert code == 0 and f"warning: the run's dev file {tmp_path / 'gone.tsv'} is not there" in err
    assert "Predictions on" not in (tmp_path / "r.html").read_text()
