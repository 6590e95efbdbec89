"""Cross-domain transfer on the tiny BERT: every method's matrix is complete and its in-domain cells,
gaps and means agree with its values; reruns reuse finished runs; bad input stops before training."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from bertx.cli import app
from bertx.config import TransferConfig, validate_config
from bertx.recipes import transfer as recipe
from tests.conftest import write_toy_classification


def config(tiny_bert, tmp_path, methods, train_on="each") -> dict:
    domains = {}
    for i, name in enumerate(("books", "dvd")):
        train = write_toy_classification(tmp_path / f"{name}-train.tsv", 240, 1 + 2 * i)
        dev = write_toy_classification(tmp_path / f"{name}-dev.tsv", 60, 2 + 2 * i)
        domains[name] = (str(train), str(dev))
    return {
        "output": str(tmp_path / "transfer"),
        "methods": methods,
        "train_on": train_on,
        "sources": [{"name": n, "train": f[0], "dev": f[1]} for n, f in domains.items()],
        "targets": [{"name": n, "eval": f[1], "unlabelled": [f[0]]} for n, f in domains.items()],
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "data": {"max_length": 32},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7},
        "dapt": {"max_steps": 3, "batch_size": 8, "max_length": 32},
        "aux_mlm": {"weight": 0.5, "batch_size": 8, "max_length": 32},
    }


def check_matrix(result: dict, rows: list[str], columns: list[str]) -> None:
    """In-domain cells, gaps and the off-diagonal mean follow from the values."""
    values = result["values"]
    assert len(values) == len(rows) and all(len(r) == len(columns) and all(isinstance(v, float) for v in r) for r in values)
    off = []
    for i, row in enumerate(rows):
        own = columns if row == "all" else [row]
        cells = [values[i][j] for j, c in enumerate(columns) if c in own]
        assert result["in_domain"][i] == pytest.approx(sum(cells) / len(cells), abs=0.01)
        for j, column in enumerate(columns):
            if column in own:
                assert [i, j] in result["in_domain_cells"] and result["gaps"][i][j] is None
            else:
                assert result["gaps"][i][j] == pytest.approx(result["in_domain"][i] - values[i][j], abs=0.01)
                off.append(values[i][j])
    if off:
        assert result["off_diagonal_mean"] == pytest.approx(sum(off) / len(off), abs=0.01)


def test_plain_and_dapt_matrices_with_a_joint_row_and_reruns_reuse_runs(tiny_bert, tmp_path, monkeypatch):
    cfg = validate_config(config(tiny_bert, tmp_path, ["plain", "dapt"], train_on="each+all"), schema=TransferConfig)
    summary = recipe.transfer(cfg, show_progress=False)
    rows, columns = ["books", "dvd", "all"], ["books", "dvd"]
    assert summary["rows"] == rows and summary["columns"] == columns
    for method in ("plain", "dapt"):
        check_matrix(summary["methods"][method], rows, columns)
    assert summary["methods"]["plain"]["in_domain"][0] > 90  # the toy task is learnable: accuracy in points
    out = tmp_path / "transfer"
    dapt = json.loads((out / "matrix-dapt.json").read_text())
    plain = summary["methods"]["plain"]["values"]
    assert dapt["gains"][0][1] == pytest.approx(dapt["values"][0][1] - plain[0][1], abs=0.01)  # against plain, cell by cell
    assert summary["methods"]["dapt"]["off_diagonal_vs_plain"] == pytest.approx(
        summary["methods"]["dapt"]["off_diagonal_mean"] - summary["methods"]["plain"]["off_diagonal_mean"], abs=0.01
    )
    assert (out / "dapt-encoders/dvd/config.json").is_file()  # one adapted encoder per target, kept
    assert (out / "matrix-plain.png").stat().st_size > 2000 and "Transfer gap" in (out / "matrix-plain.md").read_text()
    assert "| dapt |" in (out / "summary.md").read_text()
    assert not (out / "plain/books/model.safetensors").exists()  # scores kept, weights not
    assert not (out / "plain/all/model").exists()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("bertx.recipes.finetune.finetune", no_training)
    monkeypatch.setattr("bertx.recipes.pretrain.pretrain", no_training)
    monkeypatch.setattr("bertx.recipes.multitask.multitask", no_training)
    assert recipe.transfer(cfg, show_progress=False)["methods"]["dapt"]["values"] == summary["methods"]["dapt"]["values"]


def test_aux_mlm_trains_once_per_source_and_target(tiny_bert, tmp_path):
    cfg = validate_config(config(tiny_bert, tmp_path, ["aux-mlm"]), schema=TransferConfig)
    summary = recipe.transfer(cfg, show_progress=False)
    check_matrix(summary["methods"]["aux-mlm"], ["books", "dvd"], ["books", "dvd"])
    out = tmp_path / "transfer" / "aux-mlm"
    assert sorted(p.name for p in out.iterdir()) == ["books-to-books", "books-to-dvd", "dvd-to-books", "dvd-to-dvd"]
    log = [json.loads(line) for line in (out / "books-to-dvd/log.jsonl").read_text().splitlines()]
    assert any("aux_mlm_loss" in entry for entry in log)  # the target's text was modelled during fine-tuning
    run = yaml.safe_load((out / "books-to-dvd/bertx_run.yaml").read_text())
    assert run["aux_mlm"]["text"] == [str(tmp_path / "dvd-train.tsv")]


def run_cli(tmp_path, cfg: dict):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    return CliRunner().invoke(app, ["transfer", str(tmp_path / "bad.yaml")])


def test_bad_input_is_one_line_before_training(tiny_bert, tmp_path):
    base = config(tiny_bert, tmp_path, ["plain", "aux-mlm"])

    other_labels = dict(
        base,
        targets=[
            {
                "name": "pt",
                "eval": str(write_toy_classification(tmp_path / "pt.tsv", 20, 3, labels=("neg", "positive"))),
                "unlabelled": [base["sources"][0]["train"]],
            }
        ],
    )
    result = run_cli(tmp_path, other_labels)
    assert result.exit_code == 2
    assert "target 'pt'" in result.output and "labels positive never occur in source 'books' (neg, pos)" in result.output

    missing = dict(base, targets=[{"name": "de", "eval": str(tmp_path / "dev-de.tsv"), "unlabelled": []}])
    result = run_cli(tmp_path, missing)
    assert result.exit_code == 2 and f"target 'de': eval file {tmp_path / 'dev-de.tsv'}: file not found" in result.output

    (tmp_path / "empty.txt").write_text("\n\n")
    empty = dict(base, targets=[dict(base["targets"][0], unlabelled=[str(tmp_path / "empty.txt")])])
    result = run_cli(tmp_path, empty)
    assert result.exit_code == 2 and "target 'books': unlabelled text" in result.output and "holds no text" in result.output

    no_text = dict(base, targets=[dict(base["targets"][0], unlabelled=[])])
    result = run_cli(tmp_path, no_text)
    assert result.exit_code == 2 and "target 'books': method aux-mlm needs the target's unlabelled text" in result.output

    assert not (tmp_path / "transfer").exists()  # nothing was trained


def test_config_rejects_aux_mlm_on_the_joint_row(tiny_bert, tmp_path):
    result = run_cli(tmp_path, config(tiny_bert, tmp_path, ["aux-mlm"], train_on="all"))
    assert result.exit_code == 2 and "use train_on: each with aux-mlm" in result.output


def test_cli_prints_the_matrix_and_the_summary(tiny_bert, tmp_path):
    cfg = config(tiny_bert, tmp_path, ["plain", "aux-mlm"])
    cfg["sources"] = cfg["sources"][:1]  # one source, two targets: one in-domain column, one zero-shot
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["transfer", str(tmp_path / "t.yaml"), "--methods", "plain", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "Transfer gap" in result.output and "| plain |" in result.output
    summary = json.loads((tmp_path / "transfer" / "summary.json").read_text())
    assert list(summary["methods"]) == ["plain"] and summary["rows"] == ["books"]
    plain = summary["methods"]["plain"]
    assert plain["in_domain"] == [plain["values"][0][0]] and plain["off_diagonal_mean"] == plain["values"][0][1]
    assert plain["gaps"][0] == [None, pytest.approx(plain["values"][0][0] - plain["values"][0][1], abs=0.01)]


def test_predicted_source_ranking_is_set_beside_the_measured_matrix(tiny_bert, tmp_path):
    """A source with shuffled labels teaches nothing: for each target, the estimates made on its
    `rank_on:` examples must rank the learnable source above it, as the measured matrix does."""
    import random

    cfg = config(tiny_bert, tmp_path, ["plain"])
    lines = (tmp_path / "books-train.tsv").read_text().splitlines()
    labels = [line.rsplit("\t", 1)[1] for line in lines[1:]]
    random.Random(3).shuffle(labels)
    noise = tmp_path / "noise-train.tsv"
    noise.write_text("\n".join([lines[0]] + [f"{line.rsplit(chr(9), 1)[0]}\t{y}" for line, y in zip(lines[1:], labels)]) + "\n")
    cfg["sources"].append({"name": "noise", "train": str(noise)})
    for target in cfg["targets"]:
        target["rank_on"] = target["unlabelled"][0]  # the target's own training file: a few target labels
    cfg["predict"] = ["logme", "knn"]
    summary = recipe.transfer(validate_config(cfg, schema=TransferConfig), show_progress=False)
    predicted = json.loads((tmp_path / "transfer/predicted.json").read_text())
    assert predicted == summary["predicted"]
    for target, other in (("books", "dvd"), ("dvd", "books")):
        assert set(predicted["measured"][target]) == {other, "noise"}  # the target itself is not a source
        assert predicted["measured"][target][other] > predicted["measured"][target]["noise"]
        for estimator in ("logme", "knn"):
            assert predicted["scores"][estimator][target][other] > predicted["scores"][estimator][target]["noise"]
            assert predicted["agreement"][estimator]["targets"][target]["regret"] == 0
    assert "| logme |" in (tmp_path / "transfer/predicted.md").read_text()


def test_predict_needs_a_rank_on_file(tiny_bert, tmp_path):
    cfg = config(tiny_bert, tmp_path, ["plain"])
    cfg["predict"] = ["logme"]
    result = run_cli(tmp_path, cfg)
    assert result.exit_code == 2 and "predict: needs `rank_on:`" in result.output
    cfg["targets"][0]["rank_on"] = str(tmp_path / "gone.tsv")
    result = run_cli(tmp_path, cfg)
    assert result.exit_code == 2 and f"target 'books': rank_on file {tmp_path / 'gone.tsv'}: file not found" in result.output
