"""Single-input latency of a model folder as a user calls it: raw text in, prediction out (tokenisation,
the model, decoding), one input at a time; the median over the first dev inputs after a warm-up.

Works for any folder `bertx predict` loads: a run folder (PyTorch) or an ONNX export.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path


def single_input_latency(folder: str | Path, dev_path: str, inputs: int = 100, warmup: int = 5) -> dict:
    """{"latency_ms": median, "p90_ms", "inputs"} over the first `inputs` dev examples of `dev_path`."""
    call, items = _caller(Path(folder), dev_path, inputs + warmup)
    for item in items[:warmup]:
        call(item)
    times = []
    for item in items[warmup:] or items:
        start = time.perf_counter()
        call(item)
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"latency_ms": round(statistics.median(times), 3), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 3), "inputs": len(times)}


def paired_latency(folders: dict[str, str | Path], dev_path: str, rounds: int = 5, inputs: int = 20, warmup: int = 5) -> dict:
    """Single-input latency of several models timed in turns under the same conditions, as a benchmark
    times its rows: every model warmed up, then `rounds` rounds in which each model answers the same
    `inputs` dev inputs in turn; each model's median over all its calls. A load that comes and goes during
    the measurement falls on every model alike, so their ratios hold even on a shared machine.

    Returns {name: {"latency_ms", "p90_ms", "inputs"}}."""
    callers = {name: _caller(Path(folder), dev_path, inputs + warmup) for name, folder in folders.items()}
    times: dict[str, list[float]] = {name: [] for name in folders}
    for call, items in callers.values():
        for item in items[:warmup]:
            call(item)
    for _ in range(rounds):
        for name, (call, items) in callers.items():
            for item in items[warmup:] or items:
                start = time.perf_counter()
                call(item)
                times[name].append(1000 * (time.perf_counter() - start))
    found = {}
    for name, values in times.items():
        values.sort()
        found[name] = {
            "latency_ms": round(statistics.median(values), 3),
            "p90_ms": round(values[int(0.9 * (len(values) - 1))], 3),
            "inputs": len(values),
        }
    return found


def _caller(folder: Path, dev_path: str, n: int):
    from bertx.inference.loading import load_trained
    from bertx.inference.records import predictor_for

    trained = load_trained(folder, device="cpu")
    predictor = predictor_for(trained).inner
    if trained.task.name == "ner":
        from bertx.data.conll import read_tagged

        return (lambda words: predictor.tag([words])), [s.words for s in read_tagged(dev_path, limit=n)]
    if trained.task.name == "qa":
        from bertx.data.squad import read_qa

        return (lambda ex: predictor.predict([ex.question], [ex.context])), read_qa(dev_path, limit=n)
    from bertx.data.examples import read_examples

    examples, _ = read_examples(dev_path, predictor.task, **predictor.reading_options(), limit=n)
    return (lambda ex: predictor.predict([ex.text], None if ex.text_pair is None else [ex.text_pair])), examples
