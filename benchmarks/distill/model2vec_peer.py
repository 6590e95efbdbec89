"""The timing every row of `distill_other_networks` shares (end to end at batch 32, one input at a time), and
model2vec, the peer at the fastest corner: distilled from the same MiniLM, its classifier trained on the
labelled sentences and on the transfer set, timed like every other row."""

from __future__ import annotations

import json
import statistics
import time


def timed(predict, texts: list[str], batch: int, repeats: int = 3) -> float:
    """Inputs/s at this batch size, raw strings to labels; the best of `repeats` passes."""
    predict(texts[: batch * 2], batch)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict(texts, batch)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def single_latency_ms(predict, texts: list[str], n: int = 300) -> float:
    """Median milliseconds for one input, raw string to label."""
    for text in texts[:20]:
        predict([text], 1)
    times = []
    for text in texts[:n]:
        start = time.perf_counter()
        predict([text], 1)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 3)


def model2vec_rows(texts_train, labels_train, transfer, dev_texts, dev_gold, teacher_folder: str, log) -> dict:
    """model2vec distilled from the teacher's own base encoder (the packaged MiniLM), its classifier trained on
    the labelled sentences, then on the transfer set with the teacher's hard labels."""
    from model2vec.distill import distill
    from model2vec.train import StaticModelForClassification

    from bertx.models.encoder import resolve_model_path

    started = time.perf_counter()
    static = distill(model_name=resolve_model_path(None), pca_dims=256)
    distill_s = time.perf_counter() - started
    rows = {}
    for name, (x, y) in {"labelled": (texts_train, labels_train), "transfer set": transfer}.items():
        if x is None:
            continue
        started = time.perf_counter()
        classifier = StaticModelForClassification.from_static_model(model=static).fit(list(x), list(y), random_seed=42)
        pipeline = classifier.to_pipeline()
        predict = lambda batch, size, pipeline=pipeline: pipeline.predict(batch, batch_size=size, use_multiprocessing=False)  # noqa: E731
        predicted = predict(dev_texts, 1024)
        rows[f"model2vec ({name})"] = {
            "accuracy": round(100 * sum(str(p) == g for p, g in zip(predicted, dev_gold)) / len(dev_gold), 2),
            "train_examples": len(x),
            "fit_s": round(time.perf_counter() - started + distill_s, 1),
            "parameters": int(sum(p.numel() for p in classifier.parameters())),
            "e2e_inputs_per_s_batch32": round(timed(predict, dev_texts, 32), 1),
            "e2e_latency_ms_batch1": single_latency_ms(predict, dev_texts),
        }
        log(f"{name}: {json.dumps(rows[f'model2vec ({name})'])}")
    return rows


def model2vec_speed(texts: list[str]) -> dict:
    """model2vec's speed, end to end: distilled from the packaged MiniLM as in `model2vec_rows`, its classifier
    fitted briefly (speed does not depend on how well it learnt), then timed like every other row."""
    from model2vec.distill import distill
    from model2vec.train import StaticModelForClassification

    from bertx.models.encoder import resolve_model_path

    static = distill(model_name=resolve_model_path(None), pca_dims=256)
    classifier = StaticModelForClassification.from_static_model(model=static).fit(
        texts[:200], ["a" if i % 2 else "b" for i in range(200)], max_epochs=1, random_seed=42
    )
    pipeline = classifier.to_pipeline()
    predict = lambda batch, size: pipeline.predict(batch, batch_size=size, use_multiprocessing=False)  # noqa: E731
    return {"e2e_inputs_per_s_batch32": round(timed(predict, texts, 32), 1), "e2e_latency_ms_batch1": single_latency_ms(predict, texts)}
