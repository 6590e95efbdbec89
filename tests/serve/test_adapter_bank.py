"""A folder of LoRA adapters served as one model: a batch mixing adapters answers each row as its adapter
alone does (different label counts and ranks included), adapters are added and removed live under
concurrent requests, and the admin routes are off by default, loopback-only and token-guarded."""

from __future__ import annotations

import json
import random
import shutil
import threading
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import bertx
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE, tiny_config, write_toy_classification

pytest.importorskip("peft")
pytest.importorskip("fastapi")

TEXTS = ["a good film", "the story was dull and sad", "fine acting , great plot", "the movie", "it was very cold"]
TOKEN = "a-test-token-of-enough-length"


def write_three_way(path: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for _ in range(n):
        label = rng.choice(["pos", "neg", "meh"])
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(2, 5))]
        if label != "meh":
            words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def adapters(tiny_bert, tmp_path_factory):
    """adapters/{two, three, rank8}: LoRA adapters of the tiny BERT with 2, 3 and 2 labels, ranks 4, 4, 8;
    and spare/, one more adapter to add live."""
    root = tmp_path_factory.mktemp("bank")
    data = root / "data"
    data.mkdir()
    two = (str(write_toy_classification(data / "t2.tsv", 160, seed=1)), None)
    three = (write_three_way(data / "t3.tsv", 200, seed=2), None)
    for name, files, r, seed, where in (
        ("two", two, 4, 1, "adapters"),
        ("three", three, 4, 2, "adapters"),
        ("rank8", two, 8, 3, "adapters"),
        ("extra", three, 4, 4, "spare"),
    ):
        config = tiny_config(tiny_bert, *files, str(root / where / name), epochs=3, lr=1e-2 / r**0.5, seed=seed)
        config["peft"] = {"method": "lora", "r": r}
        bertx.finetune(config, show_progress=False)
        for leftover in ("checkpoints", "best"):
            shutil.rmtree(root / where / name / leftover, ignore_errors=True)
    return root


def alone(folder: Path, texts: list[str]) -> list[dict]:
    return bertx.Predictor.load(folder).predict(texts)


@pytest.mark.parametrize("runtime", ["onnx", "pytorch"])
def test_a_mixed_batch_answers_each_row_as_its_adapter_alone(adapters, runtime):
    from bertx.serve.main import load_models

    served = load_models({"bank": str(adapters / "adapters")}, adapter_runtime=runtime)["bank"]
    assert served.info["runtime"] == runtime and served.info["mixed_batches"] and set(served.info["adapters"]) == {"two", "three", "rank8"}
    assert len(served.info["adapters"]["three"]["labels"]) == 3 and len(served.info["adapters"]["two"]["labels"]) == 2
    names = ["two", "three", "rank8"]
    items = [(text, None, names[i % 3]) for i, text in enumerate(TEXTS * 3)]
    mixed = served.predict(items)
    expected = {name: alone(adapters / "adapters" / name, TEXTS * 3) for name in names}
    for i, (record, (_, _, name)) in enumerate(zip(mixed, items)):
        want = expected[name][i]
        assert record["adapter"] == name and record["label"] == want["label"]
        assert set(record["probs"]) == set(want["probs"])  # each row its own adapter's labels
        assert record["probs"] == pytest.approx(want["probs"], abs=1e-4)
    # one adapter for the whole batch takes the plain path: the same answers
    single = served.predict([(t, None, "three") for t in TEXTS])
    assert [r["probs"] for r in single] == [pytest.approx(w["probs"], abs=1e-4) for w in expected["three"][: len(TEXTS)]]


def test_http_requests_name_their_adapter(adapters):
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models

    with TestClient(create_app(load_models({"bank": str(adapters / "adapters")}))) as client:
        answer = client.post("/v1/models/bank/predict", json={"inputs": TEXTS, "adapter": "three"})
        assert answer.status_code == 200
        assert [o["label"] for o in answer.json()["outputs"]] == [o["label"] for o in alone(adapters / "adapters" / "three", TEXTS)]
        for body, status, words in (
            ({"inputs": TEXTS}, 422, "name one with `adapter`"),
            ({"inputs": TEXTS, "adapter": "nope"}, 404, "no adapter 'nope'"),
            ({"inputs": TEXTS, "adapter": 3}, 422, "name one with `adapter`"),
            ({"inputs": TEXTS, "adapter": "two", "tasks": ["x"]}, 422, "`tasks` is for multi-task"),
        ):
            refused = client.post("/v1/models/bank/predict", json=body)
            assert refused.status_code == status and words in refused.json()["error"]
        assert client.post("/v1/adapters/x", json={"folder": "y"}).status_code == 404  # admin routes off by default


def test_adapters_are_added_and_removed_live(adapters):
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models

    models = load_models({"bank": str(adapters / "adapters")})
    bank = models["bank"].bank
    before = bank.size_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    expected = {name: [o["label"] for o in alone(adapters / "adapters" / name, TEXTS)] for name in ("two", "rank8")}
    failures: list = []
    with TestClient(create_app(models, admin_token=TOKEN)) as client:
        stop = threading.Event()

        def hammer(name: str) -> None:
            while not stop.is_set():
                answer = client.post("/v1/models/bank/predict", json={"inputs": TEXTS, "adapter": name})
                if answer.status_code != 200 or [o["label"] for o in answer.json()["outputs"]] != expected[name]:
                    failures.append((name, answer.status_code, answer.text[:200]))

        threads = [threading.Thread(target=hammer, args=(name,)) for name in ("two", "rank8", "two")]
        for thread in threads:
            thread.start()
        added = client.post("/v1/adapters/extra", json={"folder": str(adapters / "spare" / "extra")}, headers=auth)
        assert added.status_code == 200 and added.json()["adapters"] == 4
        answer = client.post("/v1/models/bank/predict", json={"inputs": TEXTS, "adapter": "extra"}).json()["outputs"]
        assert [o["label"] for o in answer] == [o["label"] for o in alone(adapters / "spare" / "extra", TEXTS)]
        assert client.delete("/v1/adapters/three", headers=auth).status_code == 200
        gone = client.post("/v1/models/bank/predict", json={"inputs": TEXTS, "adapter": "three"})
        assert gone.status_code == 404
        assert "three" not in client.get("/v1/models").json()["models"][0]["adapters"]
        stop.set()
        for thread in threads:
            thread.join()
        assert client.delete("/v1/adapters/three", headers=auth).status_code == 404
        bad = client.post("/v1/adapters/broken", json={"folder": str(adapters / "data")}, headers=auth)
        assert bad.status_code == 422 and "not an adapter folder" in bad.json()["error"]
        assert client.post("/v1/models/bank/predict", json={"inputs": TEXTS, "adapter": "two"}).status_code == 200
    assert not failures, failures[:3]
    assert bank.size_bytes() == before  # one added, one of the same shape removed: the memory is back


def test_admin_routes_want_the_token_and_a_loopback_peer(adapters):
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models

    app = create_app(load_models({"bank": str(adapters / "adapters")}), admin_token=TOKEN)
    body = {"folder": str(adapters / "spare" / "extra")}
    with TestClient(app) as client:
        assert client.post("/v1/adapters/extra", json=body).status_code == 401
        assert client.post("/v1/adapters/extra", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.delete("/v1/adapters/two").status_code == 401
        assert client.delete("/v1/adapters/two?model=secret").status_code == 401  # no bank names before the token
        assert "bank" not in client.delete("/v1/adapters/two?model=secret").text
        surrogate = client.post(
            "/v1/adapters/extra",
            content=b'{"folder": "/tmp/a\\ud800b"}',
            headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        )
        assert surrogate.status_code == 422 and "unpaired surrogate" in surrogate.json()["error"]
        pair = client.post("/v1/models/bank/predict", json={"inputs": [["a good film", "a pair"]], "adapter": "two"})
        assert pair.status_code == 422 and "adapter 'two' was trained on single texts" in pair.json()["error"]
    with TestClient(app, client=("10.0.0.5", 50000)) as remote:
        answer = remote.post("/v1/adapters/extra", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 403


def test_bad_folders_of_adapters_are_one_line(adapters, tmp_path, tiny_bert):
    from bertx.errors import BertxError
    from bertx.serve.main import read_admin_token

    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(BertxError, match="at least 16 characters"):
        read_admin_token(str(tmp_path / "short"))
    with pytest.raises(BertxError, match="cannot read the admin token"):
        read_admin_token(str(tmp_path / "missing"))
    # an adapter of another base in the same folder
    mixed = tmp_path / "mixed"
    shutil.copytree(adapters / "adapters", mixed)
    config = mixed / "two" / "adapter_config.json"
    config.write_text(config.read_text().replace(tiny_bert, str(tmp_path)))
    run = mixed / "two" / "bertx_run.yaml"
    run.write_text(run.read_text().replace(tiny_bert, str(tmp_path)))
    from bertx.serve.main import load_models

    with pytest.raises(BertxError, match="a bank serves adapters of one base"):
        load_models({"bank": str(mixed)})
    cut = tmp_path / "cut"  # an adapter whose weights were cut short (a full disk, a killed copy)
    shutil.copytree(adapters / "adapters", cut)
    weights = cut / "three" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BertxError, match="three: not a readable LoRA adapter folder"):
        load_models({"bank": str(cut)})


ADAPTER_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["two", "three", "rank8", "", "nope", "../two"]),
    st.integers(),
    st.lists(st.text(max_size=4), max_size=2),
    st.text(max_size=8),
)
INPUT_VALUES = st.one_of(
    st.lists(
        st.one_of(
            st.text(max_size=20),
            st.lists(st.text(max_size=8), max_size=3),
            st.none(),
            st.fixed_dictionaries({"text": st.text(max_size=8)}, optional={"text_pair": st.text(max_size=8)}),
        ),
        max_size=4,
    ),
    st.text(max_size=5),
    st.none(),
)


@pytest.fixture(scope="module")
def bank_client(adapters):
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models
    from bertx.serve.protocol import Limits

    with TestClient(create_app(load_models({"bank": str(adapters / "adapters")}), Limits(max_inputs=8), admin_token=TOKEN)) as client:
        yield client


@given(inputs=INPUT_VALUES, adapter=ADAPTER_VALUES, tasks=st.one_of(st.none(), st.just(["two"])))
def test_any_inputs_and_adapter_names_get_answers_or_one_4xx(bank_client, inputs, adapter, tasks):
    """Issue 21's generated inputs, for the adapter route: never a 5xx; an answer comes from the adapter named."""
    body = {"inputs": inputs, **({"adapter": adapter} if adapter is not None else {}), **({"tasks": tasks} if tasks else {})}
    response = bank_client.post("/v1/models/bank/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code == 200:
        assert {output["adapter"] for output in response.json()["outputs"]} == {adapter}
    else:
        assert set(response.json()) == {"error"}


@given(
    name=st.text(max_size=12),
    body=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=8),
        st.fixed_dictionaries({"folder": st.one_of(st.text(max_size=12), st.integers())}, optional={"model": st.text(max_size=6)}),
    ),
)
def test_the_admin_route_answers_any_change_with_a_4xx_or_a_change(bank_client, name, body):
    """Generated admin requests (with the token): never a 5xx; nothing generated here names a real adapter
    folder, so nothing is added, and the served adapters stay as they were."""
    from urllib.parse import quote

    auth = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    response = bank_client.post(f"/v1/adapters/{quote(name, safe='')}", content=json.dumps(body), headers=auth)
    assert response.status_code < 500 and response.status_code != 200, (response.status_code, response.text[:300])
    assert set(bank_client.get("/v1/models").json()["models"][0]["adapters"]) == {"two", "three", "rank8"}
