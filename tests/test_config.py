"""Configs: every shipped YAML validates; overrides and unknown keys behave."""

from pathlib import Path

import pytest

from bertx.config import load_config
from bertx.errors import BertxError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path, ["data.data_dir=/data"])
    assert config.data.resolve(config.data.train).startswith("/data/")
    assert config.data.resolve(config.data.dev).startswith("/data/")
    from bertx.tasks import get_task

    metric = config.train.metric_for_best or get_task(config.task).main_metric
    assert metric in {"accuracy", "f1", "mcc", "pearson", "spearman", "macro_f1"}


def test_shipped_configs_cover_the_glue_set():
    assert {p.stem for p in CONFIGS} >= {"sst2", "mrpc", "rte", "stsb", "cola", "conll2003", "squad"}


def test_overrides_are_typed_and_validated(tmp_path):
    config = load_config(None, ["train.lr=5e-5", "train.epochs=2", "model.freeze_word_embeddings=false"])
    assert config.train.lr == 5e-5 and config.train.epochs == 2.0 and not config.model.freeze_word_embeddings
    with pytest.raises(BertxError, match="train.lr: Input should be greater than 0"):
        load_config(None, ["train.lr=-1"])
    with pytest.raises(BertxError, match="not of the form key=value"):
        load_config(None, ["train.lr"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(BertxError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(BertxError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


PRETRAIN_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "pretrain").glob("*.yaml"))


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_pretraining_config_loads(path):
    from bertx.config import PretrainConfig

    config = load_config(path, ["data.data_dir=/data"], schema=PretrainConfig)
    assert config.data.train_paths()[0].startswith("/data/")


def test_pretraining_config_checks_its_starting_point():
    from bertx.config import PretrainConfig

    with pytest.raises(BertxError, match="needs a tokenizer folder"):
        load_config(None, ["model.preset=mini"], schema=PretrainConfig)
    with pytest.raises(BertxError, match="not both"):
        load_config(None, ["model.preset=mini", "model.name_or_path=/x", "model.tokenizer=/t"], schema=PretrainConfig)
    assert not load_config(None, [], schema=PretrainConfig).model.from_scratch  # default: continue MiniLM


MULTITASK_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("multitask/*.yaml"))
INTERMEDIATE_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("intermediate/*.yaml"))


@pytest.mark.parametrize("path", MULTITASK_CONFIGS + INTERMEDIATE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_multitask_config_loads(path):
    from bertx.config import IntermediateConfig, MultitaskConfig

    schema = MultitaskConfig if path.parent.name == "multitask" else IntermediateConfig
    config = load_config(path, ["data_dir=/data"], schema=schema)
    assert len(config.tasks) >= 2
    for entry in config.tasks:
        task = config.task_config(entry, "/tmp/x") if schema is IntermediateConfig else config.task_config(entry)
        assert task.data.resolve(task.data.train).startswith("/data/") and task.data.resolve(task.data.dev).startswith("/data/")
        assert entry.metric in {"accuracy", "f1", "mcc", "pearson"}


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("distill/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_distillation_config_loads(path):
    from bertx.config import DistillConfig

    config = load_config(path, ["data.data_dir=/data"], schema=DistillConfig)
    assert config.data.resolve(config.data.train).startswith("/data/") and config.student.init == "teacher"
    assert config.loss.soft > 0 and config.baseline


def test_distillation_config_refuses_nonsense():
    from bertx.config import DistillConfig

    with pytest.raises(BertxError, match="every loss weight is 0"):
        load_config(None, ["teacher=/t", "loss.soft=0", "loss.hard=0"], schema=DistillConfig)
    with pytest.raises(BertxError, match="keep_layers applies to students made from the teacher"):
        load_config(None, ["teacher=/t", "student.hidden=128", "student.keep_layers=[0, 1]"], schema=DistillConfig)
    with pytest.raises(BertxError, match="loss.temperature: Input should be greater than 0"):
        load_config(None, ["teacher=/t", "loss.temperature=0"], schema=DistillConfig)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("transfer/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_transfer_config_loads(path):
    from bertx.config import TransferConfig

    config = load_config(path, ["data_dir=/data"], schema=TransferConfig)
    files = [s.train for s in config.sources] + [t.eval for t in config.targets] + [f for t in config.targets for f in t.unlabelled]
    assert all(config.resolve(f).startswith("/data/") for f in files)
    assert {s.name for s in config.sources} <= {t.name for t in config.targets}  # every source has an in-domain column
    assert "plain" in config.methods and all(t.unlabelled for t in config.targets)


def test_yaml_merge_keys_merge_and_the_mapping_itself_wins():
    from bertx.config.loading import load_yaml

    text = "tasks:\n  - &first {name: a, kind: classification, train: a.tsv, data: {max_length: 32}}\n  - <<: *first\n    name: b\n    train: b.tsv\n"
    assert load_yaml(text)["tasks"][1] == {"name": "b", "kind": "classification", "train": "b.tsv", "data": {"max_length": 32}}
    with pytest.raises(Exception, match="key 'name' appears twice"):
        load_yaml(text + "    name: c\n")
