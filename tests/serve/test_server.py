"""`bertx serve` on tiny models: every endpoint, every bad request, the full queue, two models in one
server, micro-batching of concurrent requests, and a real server process that finishes a slow request
after SIGTERM and exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bertx
from bertx.serve.batcher import MicroBatcher, QueueFull
from bertx.serve.app import create_app
from bertx.serve.main import load_models, parse_model_args
from bertx.serve.protocol import Limits
from bertx.errors import BertxError
from tests.export.test_export import _train

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folders(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {task: _train(tiny_bert, root, task) for task in ("classification", "ner", "qa", "pair-classification")}


@pytest.fixture(scope="module")
def client(folders):
    from fastapi.testclient import TestClient

    models = load_models(
        {
            "sentiment": str(folders["classification"]),
            "entities": str(folders["ner"]),
            "answers": str(folders["qa"]),
            "pairs": str(folders["pair-classification"]),
        }
    )
    with TestClient(create_app(models, Limits(max_inputs=4, max_body_bytes=8192))) as test_client:
        yield test_client


def test_health_ready_models_and_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert listed["sentiment"]["task"] == "classification" and listed["sentiment"]["labels"] == ["neg", "pos"]
    assert listed["entities"]["task"] == "ner" and listed["answers"]["task"] == "qa"
    assert client.get("/docs").status_code == 200 and "/v1/models/{name}/predict" in client.get("/openapi.json").json()["paths"]


def test_predictions_are_the_records_bertx_predict_writes(client, folders):
    texts = ["a good film", "a bad dull story"]
    got = client.post("/v1/models/sentiment/predict", json={"inputs": texts}).json()
    expected = bertx.Predictor.load(folders["classification"]).predict(texts)
    assert got["model"] == "sentiment" and [o["text"] for o in got["outputs"]] == texts
    assert [o["label"] for o in got["outputs"]] == [e["label"] for e in expected]
    pairs = client.post("/v1/models/pairs/predict", json={"inputs": [["good film", "great story"], {"text": "bad", "text_pair": "dull"}]}).json()
    assert [o["text_pair"] for o in pairs["outputs"]] == ["great story", "dull"]
    entities = client.post("/v1/models/entities/predict", json={"inputs": ["the film was good and great"]}).json()
    assert set(entities["outputs"][0]) == {"text", "entities"}
    answers = client.post(
        "/v1/models/answers/predict", json={"inputs": [{"question": "which is good", "context": "the film was superb and dark"}]}
    ).json()
    assert {"question", "answer", "start", "end", "score"} <= set(answers["outputs"][0])


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"{not json", 400, "not valid JSON"),
        (b'["a list"]', 422, "JSON object with an `inputs` list"),
        (b'{"texts": ["a"]}', 422, "`inputs` list"),
        (b'{"inputs": "a good film"}', 422, "`inputs` must be a list"),
        (b'{"inputs": []}', 422, "`inputs` is empty"),
        (b'{"inputs": [42]}', 422, "inputs[0]: input must be a string, got int"),
        (b'{"inputs": ["ok", ""]}', 422, "inputs[1]: input is empty"),
        (b'{"inputs": ["a", "b", "c", "d", "e"]}', 413, "5 inputs in one request; the limit is 4"),
        (json.dumps({"inputs": ["x" * 9000]}).encode(), 413, "bytes; the limit is 8,192"),
        (b'{"inputs": ["bad \\ud800 text"]}', 422, "inputs[0]: input holds an unpaired surrogate"),
        (b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}", 400, "nested too deeply"),
        (b'{"inputs": ["a"], "extra": 1}', 422, "unknown fields ['extra']"),
        (b'{"inputs": [["only one"]]}', 422, "a text pair is a list of two strings"),
    ],
    ids=lambda value: value[:40].decode("utf-8", "replace") if isinstance(value, bytes) else str(value)[:40],
)
def test_bad_requests_get_a_4xx_json_error_and_the_server_stays_up(client, body, status, message):
    response = client.post("/v1/models/sentiment/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and message in response.json()["error"], response.text
    assert client.get("/health").status_code == 200


def test_a_model_answers_only_the_form_it_was_trained_on(client):
    """A single-text model given a pair would read both texts as one: refused, as a pair model given one text is."""
    for model, inputs, message in (
        ("sentiment", [["a good film", "great story"]], "was trained on single texts"),
        ("sentiment", [{"text": "good", "text_pair": "fine"}], "was trained on single texts"),
        ("pairs", ["only one text"], "reads text pairs"),
    ):
        answer = client.post(f"/v1/models/{model}/predict", json={"inputs": inputs})
        assert answer.status_code == 422 and message in answer.json()["error"], answer.text


def test_a_text_longer_than_the_model_is_truncated_and_says_so(client):
    long_text = "a good film " * 300  # ~900 tokens against the tiny model's 32
    got = client.post("/v1/models/sentiment/predict", json={"inputs": [long_text, "short and good"]}).json()["outputs"]
    assert got[0]["truncated"] is True and "truncated" not in got[1]


def test_models_are_listed_without_filesystem_paths(client, folders):
    listed = client.get("/v1/models").text
    assert str(folders["classification"]) not in listed and "folder" not in listed


def test_a_poisoned_request_fails_alone(folders):
    """Issue 26 (1): a request that breaks its batch is retried alone, so the others sharing the batch
    still get their results; the 500 says nothing of the server's internals."""
    from fastapi.testclient import TestClient
    from bertx.serve import app as server

    models = load_models({"m": str(folders["classification"])})
    model = models["m"]
    real = model.predict

    def fragile(inputs):  # a fault the input checks did not foresee
        if any(text == "poison" for text, _ in inputs):
            raise TypeError("TextEncodeInput must be Union[...] (internal detail)")
        return real(inputs)

    model.predict = fragile
    with TestClient(server.create_app(models, Limits(max_wait_ms=200))) as test_client:

        async def burst():
            import httpx

            transport = httpx.ASGITransport(app=test_client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                valid = [http.post("/v1/models/m/predict", json={"inputs": [f"a good film {i}"]}) for i in range(30)]
                return await asyncio.gather(http.post("/v1/models/m/predict", json={"inputs": ["poison"]}), *valid)

        poisoned, *others = test_client.portal.call(burst)
    assert poisoned.status_code == 500 and "internal" in poisoned.json()["error"], poisoned.text
    assert "TextEncodeInput" not in poisoned.text
    assert [r.status_code for r in others] == [200] * 30


def test_admission_is_by_expected_wait():
    """A request whose queue wait would pass the deadline is refused at once, with the wait as Retry-After."""

    def run(inputs):
        time.sleep(0.001 * sum(len(x) for x in inputs))
        return inputs

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=4, max_wait_ms=1, max_queue=10_000, deadline_ms=300, seconds_per_token=1e-3, weigh=len)
        batcher.start()
        accepted, refused = [], []

        async def one(i):
            started = time.perf_counter()
            try:
                await batcher.submit(["x" * 100])
                accepted.append(time.perf_counter() - started)
            except QueueFull as full:
                refused.append(full.retry_after_s)

        await asyncio.gather(*(one(i) for i in range(60)))
        await batcher.close()
        return accepted, refused

    accepted, refused = asyncio.run(scenario())
    # refused at once, told to come back when the work ahead has drained enough
    assert refused and accepted and all(r > 0 for r in refused)
    # each request costs ~0.1 s: the ones accepted were answered within the deadline, give or take one request
    assert max(accepted) < 0.3 + 0.15 + 0.2, max(accepted)


def test_a_port_in_use_is_one_line_before_any_model_loads(folders, monkeypatch):
    from bertx.serve import main as server

    monkeypatch.setattr(server, "load_models", lambda named: pytest.fail("models loaded before the port was checked"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(BertxError, match=f"127.0.0.1:{port}: cannot listen there .*address already in use"):
            server.serve([str(folders["classification"])], port=port)


def test_unknown_models_routes_and_qa_shape(client):
    response = client.post("/v1/models/nope/predict", json={"inputs": ["a"]})
    assert response.status_code == 404 and "no model 'nope'" in response.json()["error"]
    assert client.get("/v2/anything").status_code == 404 and "error" in client.get("/v2/anything").json()
    bad_qa = client.post("/v1/models/answers/predict", json={"inputs": ["just a text"]})
    assert bad_qa.status_code == 422 and "`question` and `context`" in bad_qa.json()["error"]


def test_metrics_count_requests_latency_and_batches(client):
    client.post("/v1/models/sentiment/predict", json={"inputs": ["fine"]})
    text = client.get("/metrics").text
    assert 'bertx_requests_total{model="sentiment",status="200"}' in text
    assert 'bertx_requests_total{model="sentiment",status="422"}' in text
    assert "bertx_request_seconds_bucket" in text and "bertx_batch_size_bucket" in text and "bertx_queue_depth" in text


def test_the_batcher_gathers_concurrent_requests_and_refuses_when_full():
    calls = []

    def run(inputs):
        calls.append(len(inputs))
        time.sleep(0.02)
        return [x * 2 for x in inputs]

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=8, max_wait_ms=20, max_queue=10)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(6)))
        assert results == [[2 * i] for i in range(6)]
        assert calls == [6]  # six concurrent requests, one model call
        first = asyncio.ensure_future(batcher.submit(list(range(8))))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit([1, 2, 3])  # 8 waiting + 3 > 10
        assert await first == [2 * i for i in range(8)]
        await batcher.close()

    asyncio.run(scenario())


def test_a_lone_request_does_not_wait_for_company():
    """With nobody else arriving, the batch runs at once: a 60-second max_wait is never waited out."""

    async def scenario():
        batcher = MicroBatcher(lambda inputs: inputs, max_batch_size=8, max_wait_ms=60_000, arriving=lambda: 0)
        batcher.start()
        assert await asyncio.wait_for(batcher.submit(["x"]), timeout=20) == ["x"]
        await batcher.close()

    asyncio.run(scenario())


def test_a_full_queue_is_503_with_retry_after(folders):
    from fastapi.testclient import TestClient

    models = load_models({"m": str(folders["classification"])})
    with TestClient(create_app(models, Limits(max_queue=2))) as test_client:
        response = test_client.post("/v1/models/m/predict", json={"inputs": ["a", "b", "c"]})
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        assert "busy" in response.json()["error"]
        assert test_client.post("/v1/models/m/predict", json={"inputs": ["a"]}).status_code == 200


def test_model_arguments():
    assert parse_model_args(["runs/sst2", "ner=runs/conll"]) == {"sst2": "runs/sst2", "ner": "runs/conll"}
    with pytest.raises(BertxError, match="two models are named 'x'"):
        parse_model_args(["a/x", "b/x"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW_SERVER = r"""
import sys, time
from bertx.serve import main as server
from bertx.serve.single import ServedModel
original = ServedModel.predict
def slow(self, inputs):
    if any(t == "slow request" for t, _ in inputs):
        time.sleep(2.0)
    return original(self, inputs)
ServedModel.predict = slow
server.serve([sys.argv[1]], port=int(sys.argv[2]))
"""


def test_a_real_server_finishes_a_slow_request_after_sigterm_and_exits_0(folders):
    import httpx

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER, f"m={folders['classification']}", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert httpx.post(f"{base}/v1/models/m/predict", json={"inputs": ["good"]}).status_code == 200

        async def slow_then_term():
            async with httpx.AsyncClient(timeout=30) as http:
                slow = asyncio.ensure_future(http.post(f"{base}/v1/models/m/predict", json={"inputs": ["slow request"]}))
                await asyncio.sleep(0.5)  # the request is in flight
                proc.send_signal(signal.SIGTERM)
                return await slow

        response = asyncio.run(slow_then_term())
        assert response.status_code == 200 and response.json()["outputs"][0]["text"] == "slow request"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_cost_model_learns_a_fixed_part_per_batch():
    """One-input batches must not make a full batch look 32 times dearer: the fit separates the per-batch cost."""
    import random

    batcher = MicroBatcher(lambda inputs: inputs, max_batch_size=32, seconds_per_token=1e-5)
    rng = random.Random(0)
    for _ in range(40):  # a quiet server: one short input per batch, 10 ms each, mostly fixed cost
        weight = rng.randint(60, 300)
        batcher._measured(0.010 + 2e-6 * weight, weight)
    assert batcher.seconds_per_batch == pytest.approx(0.010, rel=0.05)
    assert batcher.seconds_per_token == pytest.approx(2e-6, rel=0.05)
    batcher.queued_inputs, batcher.queued_weight = 32, 32 * 160  # then a burst: one full batch ahead
    assert batcher.expected_wait(160) < 0.05  # two batches of work, not 33 lone inputs' worth


def test_an_input_weighs_the_tokens_the_model_reads(tiny_bert):
    """Admission counts tokens after truncation: a 10,000-character review costs what the model reads of it."""
    from bertx.serve.batcher import INPUT_OVERHEAD_TOKENS, TokenWeight
    from bertx.models.encoder import load_tokenizer

    tokenizer = load_tokenizer(tiny_bert)
    weigh = TokenWeight(tokenizer, 32)
    assert weigh("a good film") == INPUT_OVERHEAD_TOKENS + len(tokenizer("a good film")["input_ids"])
    assert weigh(("a good film", "a dull plot")) == INPUT_OVERHEAD_TOKENS + len(tokenizer("a good film", "a dull plot")["input_ids"])
    assert weigh(("a good film", None, "adapter-name")) == weigh("a good film")  # a bank's item: (text, pair, adapter)
    assert weigh("a good film " * 1000) == INPUT_OVERHEAD_TOKENS + 32
    assert weigh("a good film " * 2) < weigh("a good film " * 8) <= INPUT_OVERHEAD_TOKENS + 32


def test_the_slack_adds_seconds_and_does_not_scale_long_inputs():
    """What the cost model misses (HTTP, the event loop) is added in seconds: learned on short sentences whose
    answers came 50 ms late, it must not multiply a queue of long reviews into a refusal."""
    batcher = MicroBatcher(lambda inputs: inputs, max_batch_size=32, deadline_ms=2000, seconds_per_token=1e-4)
    for _ in range(40):
        batcher._learn_slip(0.05)
    assert batcher.slack == pytest.approx(0.05)
    batcher.queued_inputs, batcher.queued_weight = 31, 31 * 136  # 31 reviews of 128 tokens queued
    model = batcher._model_wait(136)
    assert batcher.expected_wait(136) == pytest.approx(model + 0.05) and model < 1.0
    batcher.check_admission(136)  # ~0.5 s of work against a 2 s deadline: taken
