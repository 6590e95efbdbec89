"""The bad-input catalogue: every command, every kind of mistake a careless user makes.

Each case must exit with code 2, print exactly one `error:` line that names the file or option and the
problem, show no traceback, and leave every file that existed before byte-identical (and create none).
The commands run in-process through `bertx.cli.main`, exactly as the `bertx` console script runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bertx.cli import main
from tests.conftest import write_toy_classification

# (case id, command line with {placeholders}, a piece of the expected error line)
CASES = [
    # ---- data files ----------------------------------------------------------------------------
    ("empty file", "finetune {base} --train {empty}", "empty.tsv: file is empty"),
    ("header only", "finetune {base} --train {header_only}", "header_only.tsv: file has a header but no rows"),
    ("directory instead of file", "finetune {base} --train {ws}", "is a folder, not a data file"),
    ("missing file", "finetune {base} --train {ws}/nope.tsv", "nope.tsv: file not found"),
    ("non-UTF-8", "finetune {base} --train {latin1}", "latin1.tsv:3: not valid UTF-8"),
    ("NUL bytes", "finetune {base} --train {nul}", "nul.tsv:2: NUL byte"),
    ("5 MB single line", "finetune {base} --train {huge_line}", "huge_line.tsv:2: row has 1 columns, the header has 2"),
    ("CRLF endings, bad row", "finetune {base} --train {crlf}", "crlf.tsv:3: row has 3 columns"),
    ("CSV with an open quote", "finetune {base} --train {bad_csv}", "bad.csv:2:"),
    ("unknown dev label", "finetune {base} --dev {dev_unknown}", "dev_unknown.tsv:2: label 'meh' was never seen in training"),
    ("one class only", "finetune {base} --train {one_class}", "needs at least two classes"),
    ("JSONL list label for single-label", "finetune {base} --train {list_labels}", "list_labels.jsonl:1: label ['neg'] is a list"),
    ("JSONL text with a lone surrogate", "finetune {base} --train {surrogate}", "surrogate.jsonl:2: holds an unpaired surrogate"),
    ("predict JSONL with a lone surrogate", "predict {finished} --input {surrogate}", "surrogate.jsonl:2: holds an unpaired surrogate"),
    (
        "multi-label with every label empty",
        "finetune {base} --task multilabel --train {empty_multilabel} --dev {empty_multilabel}",
        "every example's label list is empty",
    ),
    ("NaN regression label", "finetune {base} --task regression --train {nan_scores}", "nan_scores.tsv:3: regression target 'nan' is not finite"),
    ("inf regression label", "finetune {base} --task regression --train {inf_scores}", "inf_scores.tsv:2: regression target 'inf' is not finite"),
    ("QA answer outside its context", "finetune {base} --task qa --train {bad_qa}", "answer 'Paris' is not at answer_start"),
    ("CoNLL line without a tag", "finetune {base} --task ner --train {no_tag}", "no_tag.txt:2: word 'Paris' has no tag"),
    (
        "CoNLL line that lost one column",
        "finetune {base} --task ner --train {short_conll}",
        "short_conll.txt:3: 3 columns, but the file's word lines have 4",
    ),
    ("no such text column", "finetune {base} --text-column body", "no text column 'body'"),
    # ---- config and options ----------------------------------------------------------------------
    ("unknown YAML key", "finetune {unknown_key_yaml}", "train.learning_rate: Extra inputs are not permitted"),
    ("not YAML", "finetune {broken_yaml}", "broken.yaml: not valid YAML"),
    ("config not found", "finetune {ws}/none.yaml", "none.yaml: config file not found"),
    ("wrong type in override", "finetune {base} train.epochs=many", "train.epochs: Input should be a valid number"),
    ("wrong type in option", "finetune {base} --epochs many", "Invalid value for '--epochs'"),
    ("negative epochs", "finetune {base} --epochs -1", "train.epochs: Input should be greater than 0"),
    ("batch size 0", "finetune {base} --batch-size 0", "train.batch_size: Input should be greater than or equal to 1"),
    ("unknown option", "finetune {base} --learning-rate 3", "No such option: --learning-rate"),
    ("unknown task kind", "finetune {base} --task sentiment", "unknown task 'sentiment'"),
    ("override without =", "finetune {base} train.lr", "override 'train.lr' is not of the form key=value"),
    # ---- models --------------------------------------------------------------------------------
    ("max_length beyond the model", "finetune {base} --max-length 2048", "data.max_length 2048 exceeds the 128 positions"),
    ("a folder that is not a model", "finetune {base} --model {ws}/data", "config.json: missing"),
    ("model without a vocabulary", "finetune {base} --model {no_vocab_model}", "no tokenizer vocabulary"),
    ("empty model.safetensors", "finetune {base} --model {empty_weights_model}", "model.safetensors: truncated or not safetensors"),
    # ---- output folders ------------------------------------------------------------------------
    ("output is an existing file", "finetune {base} --output {empty}", "--output is an existing file"),
    ("output inside a file", "finetune {base} --output {empty}/run", "is a file, so --output"),
    ("overwrite a folder that is not a run", "finetune {base} --output {ws}/models --overwrite", "not a bertx run folder"),
    ("overwrite the working directory", "finetune {base} --output . --overwrite", "would delete the working directory"),
    ("overwrite the data the run reads", "finetune {base} --output {ws}/data --overwrite", "data/train.tsv, which this run reads"),
    ("overwrite the run the model comes from", "finetune {base} --model {finished} --output {finished} --overwrite", "which this run reads"),
    ("an existing run without --resume", "finetune {base} --output {finished}", "holds another run"),
    ("resume with nothing to resume", "finetune {base} --output {ws}/fresh --resume", "nothing to resume"),
    # ---- evaluate / predict --------------------------------------------------------------------
    ("evaluate a folder that is not a model", "evaluate {ws}/data --data {train}", "config.json: missing"),
    ("evaluate a missing file", "evaluate {finished} --data {ws}/nope.tsv", "nope.tsv: file not found"),
    ("predict into a missing folder", "predict {finished} --input {texts} --output {ws}/no/such/pred.jsonl", "--output folder"),
    ("predict over its own input", "predict {finished} --input {texts} --output {texts}", "which this command reads"),
    ("predict a file with an empty line", "predict {finished} --input {texts_blank}", "texts_blank.txt:2: empty text"),
    ("predict a format that does not exist", "predict {finished} --input {texts} --format xml", "--format 'xml'"),
    # ---- pretraining and tokenizers --------------------------------------------------------------
    ("pretrain on an empty text", "pretrain --model {tiny} --train {empty_txt} --output {ws}/pt", "holds no text"),
    (
        "pretrain beyond the model's positions",
        "pretrain --model {tiny} --train {texts} --max-length 4096 --output {ws}/pt",
        "exceeds the model's 128 positions",
    ),
    ("tokenizer into a model folder", "tokenizer train --input {texts} --output {finished}", "holds a model"),
    ("tokenizer from a missing text", "tokenizer train --input {ws}/nope.txt --output {ws}/tok", "nope.txt: text file not found"),
    # ---- multi-task, distillation, matrices ------------------------------------------------------
    ("multitask: duplicated task name", "multitask {mt_duplicate}", "task name 'a' appears twice"),
    ("multitask: missing train file", "multitask {mt_missing}", "task 'a': train file"),
    ("distill from a non-model teacher", "distill --teacher {ws}/data --train {train} --dev {dev} --output {ws}/d", "config.json: missing"),
    (
        "distill: keep_layers with a random student",
        "distill --teacher {finished} --train {train} student.hidden=16 student.keep_layers=[0]",
        "student.keep_layers applies to students made from the teacher's layers only",
    ),
    ("transfer: missing target file", "transfer {transfer_missing}", "target 'b': eval file"),
    ("intermediate: unknown target", "intermediate {intermediate_unknown}", "target 'zz' is not one of the tasks"),
    ("multitask-export of a non-multitask folder", "multitask-export {finished} --task a --output {ws}/x", "not a multi-task run folder"),
    # ---- issue 26: found by a hostile user, each fixed by the shared guarantees --------------------
    ("predict over the model it reads", "predict {finished} --input {texts} --output {finished}/model.safetensors", "which this command reads"),
    ("export into the run it reads", "export {finished} --output {finished}/onnx", "which this command reads"),
    ("export --overwrite over a training run", "export {finished} --output {other_run} --overwrite", "replaces only an earlier export folder"),
    (
        "vocab extend --overwrite over a training run",
        "vocab extend --model {tiny} --text {texts} --add 5 --output {other_run} --overwrite",
        "replaces only an earlier vocabulary folder",
    ),
    ("predict --batch-size 0", "predict {finished} --input {texts} --batch-size 0", "Invalid value for '--batch-size'"),
    ("export --opset 5", "export {finished} --output {ws}/e --opset 5", "Invalid value for '--opset'"),
    ("export --format tflite", "export {finished} --output {ws}/e --format tflite", "--format 'tflite': choose one of onnx, openvino"),
    (
        "export --format openvino --quantize int8",
        "export {finished} --output {ws}/e --format openvino --quantize int8",
        "--format openvino --quantize int8: not offered",
    ),
    ("serve --adapter-runtime tf", "serve {finished} --adapter-runtime tf", "--adapter-runtime 'tf': choose one of onnx, pytorch"),
    ("evaluate --limit -1", "evaluate {finished} --data {dev} --limit -1", "Invalid value for '--limit'"),
    ("evaluate --limit 0", "evaluate {finished} --data {dev} --limit 0", "Invalid value for '--limit'"),
    ("a YAML key given twice", "finetune {dup_yaml}", "key 'task' appears twice"),
    ("tune: a choice the schema refuses", "tune {base} --space {bad_space} --output {ws}/tune", "train.batch_size = 0 is not a valid setting"),
    ("tune: a log scale from 0", "tune {base} --space {log_space} --output {ws}/tune", "needs low > 0"),
    ("tune into the data folder", "tune {base} --output {ws}/data", "which this command reads"),
    ("predict an empty --text", "predict {finished} --text=", "--text 1: empty text"),
    ("report with a missing --dev", "report {finished} --dev {ws}/nope.tsv --output {ws}/r.html", "--dev file not found"),
    ("rank with one example per class", "rank {tiny} --train {one_each}", "one_each.tsv: class"),
    ("an argument that is not UTF-8", "predict {finished} --text \udcff", "is not valid UTF-8"),
]


def _write(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


@pytest.fixture(scope="module")
def workspace(tiny_bert, tmp_path_factory):
    """Files for every case, and a finished run (on the tiny BERT) that must survive every case untouched."""
    ws = tmp_path_factory.mktemp("catalogue")
    d = ws / "data"
    d.mkdir()
    train = write_toy_classification(d / "train.tsv", 64, seed=1)
    dev = write_toy_classification(d / "dev.tsv", 32, seed=2)
    base = {
        "task": "classification",
        "output": str(ws / "out"),
        "data": {"train": str(train), "dev": str(dev), "max_length": 32},
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "train": {"epochs": 1, "batch_size": 16, "save_steps": None},
    }
    files = {
        "ws": str(ws),
        "tiny": tiny_bert,
        "train": str(train),
        "dev": str(dev),
        "base": _write(ws / "base.yaml", yaml.safe_dump(base)),
        "empty": _write(d / "empty.tsv", ""),
        "header_only": _write(d / "header_only.tsv", "sentence\tlabel\n"),
        "latin1": _write(d / "latin1.tsv", b"sentence\tlabel\ngood film\tpos\ncaf\xe9 bad\tneg\n"),
        "nul": _write(d / "nul.tsv", b"sentence\tlabel\ngood\x00 film\tpos\n"),
        "huge_line": _write(d / "huge_line.tsv", "sentence\tlabel\n" + "word " * 1_000_000 + "\n"),
        "crlf": _write(d / "crlf.tsv", "sentence\tlabel\r\ngood film\tpos\r\nbad\tfilm\tneg\r\n"),
        "bad_csv": _write(d / "bad.csv", 'sentence,label\n"an open quote,pos\n'),
        "dev_unknown": _write(d / "dev_unknown.tsv", "sentence\tlabel\ngood film\tmeh\n"),
        "one_class": _write(d / "one_class.tsv", "sentence\tlabel\ngood\tpos\nfine\tpos\n"),
        "list_labels": _write(d / "list_labels.jsonl", '{"text": "bad film", "label": ["neg"]}\n{"text": "good", "label": ["pos"]}\n'),
        "surrogate": _write(d / "surrogate.jsonl", '{"text": "bad film", "label": "neg"}\n{"text": "good \\udc80 one", "label": "pos"}\n'),
        "empty_multilabel": _write(d / "empty_multilabel.tsv", "sentence\tlabel\ngood film\t\nbad film\t\n"),
        "nan_scores": _write(d / "nan_scores.tsv", "sentence\tlabel\ngood\t1.0\nbad\tnan\n"),
        "inf_scores": _write(d / "inf_scores.tsv", "sentence\tlabel\ngood\tinf\n"),
        "bad_qa": _write(
            d / "bad_qa.jsonl",
            json.dumps({"id": "q1", "question": "Where?", "context": "It was in Rome.", "answers": {"text": ["Paris"], "answer_start": [10]}}) + "\n",
        ),
        "no_tag": _write(d / "no_tag.txt", "Angela B-PER\nParis\n"),
        "short_conll": _write(d / "short_conll.txt", "Angela NNP B-NP B-PER\nvisited VBD B-VP O\nParis NNP B-NP\n"),
        "unknown_key_yaml": _write(ws / "unknown_key.yaml", yaml.safe_dump({**base, "train": {"learning_rate": 1e-3}})),
        "broken_yaml": _write(ws / "broken.yaml", "task: [classification\n"),
        "texts": _write(d / "texts.txt", "a good film\na bad film\n" * 40),
        "texts_blank": _write(d / "texts_blank.txt", "a good film\n\na bad film\n"),
        "empty_txt": _write(d / "empty.txt", "\n\n"),
        "dup_yaml": _write(ws / "dup.yaml", "task: classification\noutput: x\ntask: regression\n"),
        "bad_space": _write(ws / "bad_space.yaml", "train.batch_size: {type: categorical, choices: [0, -5]}\n"),
        "log_space": _write(ws / "log_space.yaml", "train.lr: {type: float, low: 0, high: 1, log: true}\n"),
        "one_each": _write(d / "one_each.tsv", "sentence\tlabel\ngood film\tpos\nbad film\tneg\n"),
        "mt_duplicate": _write(
            ws / "mt_dup.yaml",
            yaml.safe_dump(
                {
                    "tasks": [
                        {"name": "a", "kind": "classification", "train": str(train)},
                        {"name": "a", "kind": "classification", "train": str(train)},
                    ]
                }
            ),
        ),
        "mt_missing": _write(
            ws / "mt_missing.yaml",
            yaml.safe_dump({"output": str(ws / "mt"), "tasks": [{"name": "a", "kind": "classification", "train": str(d / "gone.tsv")}]}),
        ),
        "transfer_missing": _write(
            ws / "transfer.yaml",
            yaml.safe_dump(
                {"output": str(ws / "tr"), "sources": [{"name": "a", "train": str(train)}], "targets": [{"name": "b", "eval": str(d / "gone.tsv")}]}
            ),
        ),
        "intermediate_unknown": _write(
            ws / "inter.yaml",
            yaml.safe_dump(
                {
                    "output": str(ws / "im"),
                    "targets": ["zz"],
                    "tasks": [
                        {"name": "a", "kind": "classification", "train": str(train), "dev": str(dev)},
                        {"name": "b", "kind": "classification", "train": str(train), "dev": str(dev)},
                    ],
                }
            ),
        ),
    }
    # Broken copies of the tiny model: a vocabulary-less tokenizer, and empty weights.
    for name, breaks in (("no_vocab_model", ("tokenizer.json", "vocab.txt")), ("empty_weights_model", ())):
        folder = ws / "models" / name
        folder.mkdir(parents=True)
        for item in Path(tiny_bert).iterdir():
            if item.name not in breaks:
                (folder / item.name).write_bytes(item.read_bytes())
        if name == "empty_weights_model":
            (folder / "model.safetensors").write_bytes(b"")
        files[name] = str(folder)
    finished = ws / "finished"
    assert main(["finetune", files["base"], "--output", str(finished), "--show-examples", "0"]) == 0
    files["finished"] = str(finished)
    import shutil

    shutil.copytree(finished, ws / "other_run")  # a second complete run, for the careless --overwrite cases
    files["other_run"] = str(ws / "other_run")
    return ws, files


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with a digest of its bytes (folders too, so a new empty folder shows)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return found


@pytest.mark.parametrize("case,command,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(workspace, capsys, monkeypatch, case, command, expected):
    ws, files = workspace
    monkeypatch.chdir(ws)
    before = snapshot(ws)
    argv = [part.format(**files) for part in command.split()]
    code = main(argv)
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, f"exit {code}\n{err[-3000:]}"
    assert len(errors) == 1, err[-3000:]
    assert expected in errors[0], errors[0]
    assert "Traceback" not in err + out
    assert snapshot(ws) == before, "the command changed files"


def test_the_catalogue_covers_every_command_and_forty_cases():
    commands = {case[1].split()[0] if case[1].split()[0] != "tokenizer" else "tokenizer train" for case in CASES}
    assert {
        "finetune",
        "evaluate",
        "predict",
        "pretrain",
        "tokenizer train",
        "multitask",
        "multitask-export",
        "distill",
        "transfer",
        "intermediate",
    } <= commands
    assert len(CASES) >= 40


def test_a_read_only_output_parent_is_one_line(workspace, capsys, tmp_path):
    ws, files = workspace
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
    try:
        assert main(["finetune", files["base"], "--output", str(ro / "run")]) == 2
        assert "cannot create the --output folder (read-only file system)" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_lines_split_only_at_newlines(workspace, capsys, tmp_path):
    """Text holding \\x0b, \\x0c, \\x1c, U+0085, U+2028, U+2029 keeps one prediction per input line."""
    _, files = workspace
    junk = ["a good\x0bfilm", "bad\x0cfilm", "a\x1cgood film", "dull\u0085film", "fine\u2028film", "sad\u2029film"]
    source = tmp_path / "junk.txt"
    source.write_text("\n".join(junk) + "\n", encoding="utf-8")
    target = tmp_path / "pred.jsonl"
    assert main(["predict", files["finished"], "--input", str(source), "--output", str(target)]) == 0
    predictions = [json.loads(line) for line in target.read_text(encoding="utf-8").split("\n") if line]
    assert [p["text"] for p in predictions] == junk
    table = tmp_path / "junk.tsv"  # the same characters inside TSV rows: a bad row is reported at its own line
    table.write_text("sentence\tlabel\n" + "\n".join(f"{t}\tpos" for t in junk) + "\nbroken row\n", encoding="utf-8")
    assert main(["evaluate", files["finished"], "--data", str(table)]) == 2
    assert f"junk.tsv:{len(junk) + 2}: row has 1 columns" in capsys.readouterr().err


def test_csv_fields_may_hold_newlines(workspace, tmp_path):
    _, files = workspace
    table = tmp_path / "multi.csv"
    table.write_text('sentence,label\n"a good\nfilm",pos\n"a bad film",neg\n', encoding="utf-8")
    from bertx.data.readers import read_rows

    header, rows = read_rows(table)
    assert header == ["sentence", "label"] and [r.fields["sentence"] for r in rows] == ["a good\nfilm", "a bad film"]
    assert [r.line for r in rows] == [2, 4]
    assert main(["evaluate", files["finished"], "--data", str(table)]) == 0


def test_signals_leave_no_lock_behind_on_errors(workspace):
    """A run that fails before training removes what it wrote, lock included: the folder is free again."""
    ws, files = workspace
    out = ws / "gone-after-error"
    assert main(["finetune", files["base"], "--dev", files["dev_unknown"], "--output", str(out)]) == 2
    assert not out.exists()
    assert os.listdir(ws / "finished")  # and the finished run is still there
