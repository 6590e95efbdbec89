"""A multi-task folder served as one model: every requested head from one encoder pass, each answer equal to
the head's standalone model, requests that mix tasks and input forms in one batch, and one line (a 4xx) for
every request that does not fit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from bertx.config import MultitaskConfig, validate_config
from bertx.serve.app import create_app
from bertx.serve.main import load_models
from bertx.serve.protocol import Limits
from bertx.inference.multitask_predictor import MultiTaskPredictor
from bertx.inference.predictor import Predictor
from bertx.recipes.multitask import multitask
from bertx.recipes.task_folders import export_task
from tests.recipes.test_multitask import mt_config

LONG = "good great film " * 6  # longer than the `short` head's 8 tokens: that head reads it cut, as alone
TEXTS = ["a good film", "bad awful plot", "great story", LONG, "poor weak movie", "the film"]
PAIRS = [("a good film", "a great film"), ("bad plot", "a lovely story"), ("fine", "good")]


@pytest.fixture(scope="module")
def mt_folder(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt-serve")
    config = mt_config(tiny_bert, tmp, str(tmp / "run"), epochs=2)
    sent = next(t for t in config["tasks"] if t["name"] == "sent")
    config["tasks"].append({**sent, "name": "short", "data": {"max_length": 8}})  # another head, a shorter window
    multitask(validate_config(config, schema=MultitaskConfig), show_progress=False)
    return tmp


def test_each_head_answers_as_its_standalone_model(mt_folder):
    predictor = MultiTaskPredictor.load(mt_folder / "run")
    assert sorted(predictor.heads) == ["pair", "sent", "short"] and predictor.skipped == ["ner"]
    assert predictor.tasks_for(False) == ["sent", "short"] and predictor.tasks_for(True) == ["pair"]
    together = predictor.predict(TEXTS)
    for task in ("sent", "short"):
        alone = Predictor.load(export_task(mt_folder / "run", task, mt_folder / f"alone-{task}")).predict(TEXTS)
        for both, one in zip(together, alone):
            assert both[task]["label"] == one["label"] and both[task].get("truncated") == one.get("truncated")
            assert both[task]["probs"] == pytest.approx(one["probs"], abs=1e-5)
    assert together[3]["short"]["truncated"] and "truncated" not in together[3]["sent"]
    pairs = predictor.predict([a for a, _ in PAIRS], [b for _, b in PAIRS])
    alone = Predictor.load(export_task(mt_folder / "run", "pair", mt_folder / "alone-pair")).predict([a for a, _ in PAIRS], [b for _, b in PAIRS])
    assert [p["pair"]["label"] for p in pairs] == [a["label"] for a in alone]


def test_one_encoder_pass_serves_every_head(mt_folder, monkeypatch):
    predictor = MultiTaskPredictor.load(mt_folder / "run")
    calls = []
    real = predictor.encoder.forward
    monkeypatch.setattr(predictor.encoder, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    predictor.predict(TEXTS[:3] + TEXTS[4:], tasks=["sent"])  # nothing longer than 8 tokens
    one_head = len(calls)  # a pass per length-sorted batch (batches are cut where padding passes 2x)
    calls.clear()
    predictor.predict(TEXTS[:3] + TEXTS[4:], tasks=["sent", "short"])
    assert len(calls) == one_head >= 1  # two heads, the same passes
    calls.clear()
    predictor.predict(TEXTS, tasks=["sent", "short"])  # the long text again, cut at 8 for `short` alone
    assert len(calls) > one_head


@pytest.fixture(scope="module")
def client(mt_folder):
    from fastapi.testclient import TestClient

    models = load_models({"glue": str(mt_folder / "run"), "one": str(export_task(mt_folder / "run", "sent", mt_folder / "one"))})
    with TestClient(create_app(models, Limits(max_wait_ms=20))) as test_client:
        yield test_client


def test_the_server_answers_the_tasks_each_request_asks(client):
    info = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert info["glue"]["task"] == "multitask" and set(info["glue"]["tasks"]) == {"sent", "short", "pair"}
    assert info["glue"]["not_served"] == ["ner"]
    answer = client.post("/v1/models/glue/predict", json={"inputs": ["a good film"], "tasks": ["sent"]}).json()
    assert list(answer["outputs"][0]["tasks"]) == ["sent"] and answer["outputs"][0]["text"] == "a good film"
    every = client.post("/v1/models/glue/predict", json={"inputs": ["a good film", ["a", "b"]]}).json()["outputs"]
    assert set(every[0]["tasks"]) == {"sent", "short"} and set(every[1]["tasks"]) == {"pair"}
    assert every[1]["text_pair"] == "b"
    one = client.post("/v1/models/one/predict", json={"inputs": ["a good film"]}).json()["outputs"][0]
    assert one["label"] == answer["outputs"][0]["tasks"]["sent"]["label"]


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"inputs": ["x"], "tasks": ["nope"]}, 422, "no task 'nope'"),
        ({"inputs": ["x"], "tasks": "sent"}, 422, "`tasks` must be a non-empty list"),
        ({"inputs": ["x"], "tasks": []}, 422, "`tasks` must be a non-empty list"),
        ({"inputs": ["x"], "tasks": ["pair"]}, 422, "task 'pair' reads a text pair"),
        ({"inputs": [["a", "b"]], "tasks": ["sent"]}, 422, "task 'sent' reads a single text"),
        ({"inputs": ["x"], "task": ["sent"]}, 422, "unknown fields"),
    ],
)
def test_a_request_that_does_not_fit_is_one_4xx(client, body, status, says):
    response = client.post("/v1/models/glue/predict", json=body)
    assert response.status_code == status and says in response.json()["error"]


def test_tasks_on_a_single_task_model_is_a_4xx(client):
    response = client.post("/v1/models/one/predict", json={"inputs": ["x"], "tasks": ["sent"]})
    assert response.status_code == 422 and "multi-task" in response.json()["error"]


TASK_VALUES = st.one_of(
    st.none(), st.text(max_size=8), st.lists(st.one_of(st.sampled_from(["sent", "short", "pair", "ner", ""]), st.integers(), st.none()), max_size=4)
)
INPUT_VALUES = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.lists(st.text(max_size=8), max_size=3),
        st.none(),
        st.fixed_dictionaries({"text": st.text(max_size=8)}, optional={"text_pair": st.text(max_size=8)}),
    ),
    max_size=4,
)


@given(inputs=INPUT_VALUES, tasks=TASK_VALUES)
def test_any_inputs_and_tasks_get_answers_or_one_4xx(client, inputs, tasks):
    """Issue 21's generated inputs, for the multi-task route: never a 5xx, and an answer holds exactly the
    tasks asked for (or every head of the input's form)."""
    body = {"inputs": inputs} if tasks is None else {"inputs": inputs, "tasks": tasks}
    response = client.post("/v1/models/glue/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code == 200:
        for output in response.json()["outputs"]:
            expected = set(tasks) if tasks else ({"pair"} if "text_pair" in output else {"sent", "short"})
            assert set(output["tasks"]) == expected
    else:
        assert set(response.json()) == {"error"}


def test_the_onnx_export_holds_every_head_in_one_graph(mt_folder):
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import describe, export

    report = export(mt_folder / "run", mt_folder / "mt-onnx")
    assert report["task"] == "multitask" and set(report["heads"]) == {"sent", "short", "pair"}
    assert all(h["agreement"] == 1.0 and h["max_abs_logit_diff"] < 1e-4 for h in report["heads"].values())
    assert "3 heads in one graph" in describe(report)
    run, exported = MultiTaskPredictor.load(mt_folder / "run"), MultiTaskPredictor.load(mt_folder / "mt-onnx")
    assert exported.onnx is not None and exported.skipped == ["ner"] and sorted(exported.heads) == ["pair", "sent", "short"]
    for ours, theirs in zip(run.predict(TEXTS), exported.predict(TEXTS)):
        assert set(ours) == set(theirs) == {"sent", "short"}
        for task in ours:
            assert ours[task]["label"] == theirs[task]["label"] and ours[task].get("truncated") == theirs[task].get("truncated")
            assert ours[task]["probs"] == pytest.approx(theirs[task]["probs"], abs=1e-4)
    pairs = ([a for a, _ in PAIRS], [b for _, b in PAIRS])
    assert [p["pair"]["label"] for p in run.predict(*pairs)] == [p["pair"]["label"] for p in exported.predict(*pairs)]
    served = load_models({"glue": str(mt_folder / "mt-onnx")})["glue"]
    assert served.info["runtime"] == "onnx" and served.predict([(TEXTS[0], None, ("sent",))])[0]["tasks"]["sent"]["label"]
    quantized = export(mt_folder / "run", mt_folder / "mt-int8", quantize="int8", min_agreement=0.5, fp32_groups=0)
    assert quantized["quantize"] == "int8" and quantized["quantization"]["quantized_matmuls"] > 0
    assert len(MultiTaskPredictor.load(mt_folder / "mt-int8").predict(TEXTS)) == len(TEXTS)
