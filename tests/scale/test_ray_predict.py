"""`bertx predict --engine ray` on a local Ray cluster (2 CPUs): the same predictions as single-process
`bertx predict`, row by row, in every input format and for NER; bad rows skipped and listed; a killed job
redoes only its missing shards; the output folder is guarded like every other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bertx.cli import main
from bertx.inference.predict_file import predict_file
from tests.conftest import write_toy_classification
from tests.scale.conftest import read_parts

pytest.importorskip("ray", reason="Ray is not installed: pip install 'bertx[ray]'")
REPO = Path(__file__).resolve().parents[2]


def _same(single: list[dict], corpus: list[dict]) -> None:
    assert len(single) == len(corpus)
    for a, b in zip(single, corpus):
        shown = ("input", "row", "probs")  # single-process records have no input and row
        assert {k: v for k, v in b.items() if k not in shown} == {k: v for k, v in a.items() if k not in shown}
        for label, p in a.get("probs", {}).items():
            assert b["probs"][label] == pytest.approx(p, abs=1e-5)


def _single(model, path, tmp_path, name) -> list[dict]:
    out = tmp_path / f"single-{name}.jsonl"
    predict_file(str(model), str(path), str(out))
    return [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n")[:-1]]


def test_every_format_predicts_as_single_process_row_by_row(ray_cluster, classifier, tmp_path, capsys):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    tsv = write_toy_classification(tmp_path / "a.tsv", 90, seed=3)
    lines = tsv.read_text().splitlines()[1:]
    texts = [line.split("\t")[0] for line in lines]
    (tmp_path / "b.txt").write_text("\n".join(texts[:40]) + "\n")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"sentence": t, "label": "x"}) + "\n" for t in texts[40:70]))
    (tmp_path / "d.csv").write_text("sentence,label\n" + "".join(f'"{t}",pos\n' for t in texts[70:]))
    pq.write_table(pa.table({"sentence": texts[:25]}), tmp_path / "e.parquet", row_group_size=10)
    code = main(
        [
            "predict",
            str(classifier),
            "--engine",
            "ray",
            "--input",
            str(tmp_path / "*.tsv"),
            "--input",
            str(tmp_path / "b.txt"),
            "--input",
            str(tmp_path / "[cde].*"),
            "--output",
            str(tmp_path / "out"),
            "--shard-rows",
            "16",
        ]
    )
    assert code == 0, capsys.readouterr().err
    corpus = read_parts(tmp_path / "out")
    by_input = {}
    for record in corpus:
        by_input.setdefault(Path(record["input"]).name, []).append(record)
    assert [r["row"] for r in by_input["a.tsv"]] == list(range(2, 92))  # every row numbered as its line
    for name in ("a.tsv", "b.txt", "c.jsonl", "d.csv"):
        _same(_single(classifier, tmp_path / name, tmp_path, name), by_input[name])
    assert [r["text"] for r in by_input["e.parquet"]] == texts[:25]
    _same(by_input["b.txt"][:25], by_input["e.parquet"])

    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["predictions"] == 90 + 40 + 30 + 20 + 25 and manifest["bad_rows"] == 0
    import hashlib

    for shard in manifest["shards"]:
        data = (tmp_path / "out" / shard["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"] and data.count(b"\n") == shard["predictions"]


def test_ner_text_and_token_rows_predict_as_single_process(ray_cluster, tagger, tmp_path):
    from bertx.scale.predict import CorpusJob, predict_corpus

    sentences = [["alice", "went", "to", "paris"], ["bob", "likes", "rome", "and", "film"]] * 6
    (tmp_path / "t.txt").write_text("".join(" ".join(s) + "\n" for s in sentences))
    (tmp_path / "k.jsonl").write_text("".join(json.dumps({"tokens": s}) + "\n" for s in sentences))
    predict_corpus(CorpusJob(str(tagger), [str(tmp_path / "t.txt"), str(tmp_path / "k.jsonl")], str(tmp_path / "out"), shard_rows=5))
    corpus = read_parts(tmp_path / "out")
    _same(_single(tagger, tmp_path / "t.txt", tmp_path, "t"), [r for r in corpus if r["input"].endswith("t.txt")])
    _same(_single(tagger, tmp_path / "k.jsonl", tmp_path, "k"), [r for r in corpus if r["input"].endswith("k.jsonl")])


def test_bad_rows_are_skipped_and_listed_until_the_limit(ray_cluster, classifier, tmp_path, capsys):
    rows = [
        json.dumps({"sentence": "a good film"}),
        "{broken",
        json.dumps({"sentence": ""}),
        json.dumps({"sentence": 3}),
        json.dumps({"other": "x"}),
        json.dumps({"sentence": "dull and bad"}),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")
    argv = [
        "predict",
        str(classifier),
        "--engine",
        "ray",
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(tmp_path / "out"),
        "--shard-rows",
        "2",
    ]
    assert main([*argv, "--max-bad-rows", "1"]) == 2
    err = capsys.readouterr().err
    assert "more than --max-bad-rows 1" in err and "Traceback" not in err
    assert main([*argv, "--max-bad-rows", "10"]) == 0  # continues: the shards already done are kept
    err = capsys.readouterr().err
    assert "4 bad rows skipped" in err
    bad = [json.loads(line) for line in (tmp_path / "out/bad_rows.jsonl").read_text().splitlines()]
    assert [(b["row"], b["problem"].split(":")[0]) for b in bad] == [
        (2, "not valid JSON"),
        (3, "empty text in column 'sentence'"),
        (4, "'sentence' must be a string, got int"),
        (5, "missing 'sentence'"),
    ]
    assert [r["row"] for r in read_parts(tmp_path / "out")] == [1, 6]


def test_a_killed_job_redoes_only_its_missing_shards(ray_cluster, classifier, tmp_path):
    write_toy_classification(tmp_path / "in.tsv", 120, seed=4)
    script = tmp_path / "killer.py"
    script.write_text(
        "import os, signal, sys\nimport bertx.scale.predict as job\nfrom bertx.cli import main\nreal, seen = job._record, []\n"
        "def record(progress, entry):\n    real(progress, entry)\n    seen.append(entry)\n"
        "    if len(seen) == 3:\n        os.kill(os.getpid(), signal.SIGKILL)\n"
        "job._record = record\nsys.exit(main(sys.argv[1:]))\n"
    )
    argv = [
        "predict",
        str(classifier),
        "--engine",
        "ray",
        "--input",
        str(tmp_path / "in.tsv"),
        "--output",
        str(tmp_path / "out"),
        "--shard-rows",
        "10",
        "--workers",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "out/manifest.json").exists()
    again = subprocess.run([sys.executable, "-m", "bertx.cli", *argv], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "12 shards in 1 file(s); 3 done before, 9 to do" in again.stderr
    _same(_single(classifier, tmp_path / "in.tsv", tmp_path, "single"), read_parts(tmp_path / "out"))


def test_the_output_folder_is_resumed_refused_or_replaced(ray_cluster, classifier, tmp_path, capsys):
    write_toy_classification(tmp_path / "in.tsv", 30, seed=5)
    argv = ["predict", str(classifier), "--engine", "ray", "--input", str(tmp_path / "in.tsv"), "--output", str(tmp_path / "out")]
    assert main([*argv, "--output-format", "parquet"]) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out/part-00000-00000.parquet").num_rows == 30
    assert main([*argv, "--output-format", "parquet"]) == 0  # the same job again: nothing to do
    assert "1 done before, 0 to do" in capsys.readouterr().err
    assert main(argv) == 2 and "other settings" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0 and (tmp_path / "out/part-00000-00000.jsonl").is_file()
    assert not (tmp_path / "out/part-00000-00000.parquet").exists()
    # never over a training run, never over what the job reads
    assert main([*argv[:-1], str(classifier), "--overwrite"]) == 2
    assert (classifier / "model.safetensors").is_file()
    assert main([*argv[:-1], str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


def test_without_ray_one_line_says_how_to_install_it(classifier, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    code = main(["predict", str(classifier), "--engine", "ray", "--input", str(tmp_path / "x.txt"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'bertx[ray]'" in err and err.count("\n") == 1


def test_an_int8_export_predicts_exactly_as_single_process(ray_cluster, classifier, tmp_path, monkeypatch):
    """int8 dynamic quantisation scales each batch by its largest activation, so a text's probabilities depend
    on its batch-mates: both engines predict in the same chunks of lines (CSV: records), hence the same
    batches, hence the same bits."""
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import export
    from bertx.inference import predict_file as single
    from bertx.scale.predict import CorpusJob, predict_corpus

    export(str(classifier), tmp_path / "int8", quantize="int8", min_agreement=0.0, max_metric_drop=100.0)
    monkeypatch.setattr(single, "CHUNK_LINES", 7)  # small chunks, so every file spans several
    tsv = write_toy_classification(tmp_path / "a.tsv", 40, seed=6)
    texts = [line.split("\t")[0] for line in tsv.read_text().splitlines()[1:]]
    (tmp_path / "b.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"sentence": t}) + ("\n\n" if i % 5 == 0 else "\n") for i, t in enumerate(texts)))
    (tmp_path / "d.csv").write_text("sentence,label\n" + "".join(f'"{t}{chr(10) if i % 6 == 0 else ""}",pos\n' for i, t in enumerate(texts)))
    names = ["a.tsv", "b.txt", "c.jsonl", "d.csv"]
    predict_corpus(CorpusJob(str(tmp_path / "int8"), [str(tmp_path / n) for n in names], str(tmp_path / "out"), shard_rows=7))
    corpus = read_parts(tmp_path / "out")
    for name in names:
        expected = _single(tmp_path / "int8", tmp_path / name, tmp_path, name)
        got = [{k: v for k, v in r.items() if k not in ("input", "row")} for r in corpus if r["input"].endswith(name)]
        assert got == expected, name  # bit for bit


def test_a_model_that_cannot_load_is_one_line(ray_cluster, classifier, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(classifier, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")  # caught by the driver, before Ray
    (tmp_path / "in.txt").write_text("a good film\n")
    argv = ["predict", str(broken), "--engine", "ray", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: {broken / 'model.safetensors'}: truncated or not safetensors (11 bytes)"

    # A failure only the workers meet (here: weights whose shapes the config contradicts) ends in one line too.
    shutil.copy(classifier / "model.safetensors", broken / "model.safetensors")
    config = json.loads((broken / "config.json").read_text())
    config["intermediate_size"] *= 2
    (broken / "config.json").write_text(json.dumps(config))
    assert main(argv[:-1] + [str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err.splitlines()[-1]
    assert err.strip().splitlines()[-1].startswith("error: a Ray worker failed: ")
