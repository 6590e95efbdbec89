"""Student specs and the model-only speed figure, shared by the distillation benchmarks that train
non-transformer students (`distill_other_networks`, `distill_many`)."""

from __future__ import annotations


def parse_student(spec: str) -> dict:
    """`cnn-e128-h256-k2.3.4` -> {"kind": "cnn", "embedding_dim": 128, "hidden": 256, "kernel_sizes": [2, 3, 4]};
    `bilstm-l2` -> two BiLSTM layers."""
    kind, *parts = spec.split("-")
    student = {"kind": kind}
    for part in parts:
        if part[0] == "e":
            student["embedding_dim"] = int(part[1:])
        elif part[0] == "h":
            student["hidden"] = int(part[1:])
        elif part[0] == "k":
            student["kernel_sizes"] = [int(k) for k in part[1:].split(".")]
        elif part[0] == "l":
            student["layers"] = int(part[1:])
        else:
            raise SystemExit(f"--students {spec}: parts are eN (embedding width), hN (hidden), lN (layers) and kA.B (kernel widths)")
    return student


def model_only(folder: str, texts: list[str]) -> dict:
    """The distillation report's model-only figures (tokenised dev inputs; batch-1 latency, batch-32 inputs/s)."""
    from bertx.evaluation.distill_report import measure_speed

    return measure_speed(*_loaded(folder, texts))


def model_only_in_rounds(folders: dict[str, str], texts: list[str], rounds: int = 5) -> dict:
    """Model-only batch-32 inputs/s of several models measured in turns, `rounds` times, the median of each:
    one pass over 1,024 inputs takes a small student a fraction of a second, so a single pass, or models
    timed one after another, measure the machine's moment as much as the model."""
    import statistics

    from bertx.evaluation.distill_report import measure_speed

    loaded = {name: _loaded(folder, texts) for name, folder in folders.items()}
    seen: dict[str, list[float]] = {name: [] for name in folders}
    for _ in range(rounds):
        for name, args in loaded.items():
            seen[name].append(measure_speed(*args, latency_inputs=5)["inputs_per_s_batch32"])
    return {name: round(statistics.median(values), 1) for name, values in seen.items()}


def _loaded(folder: str, texts: list[str]) -> tuple:
    from bertx.data.examples import Example
    from bertx.data.features import tokenize
    from bertx.inference.loading import load_trained

    trained = load_trained(folder, device="cpu")
    features = tokenize(trained.tokenizer, [Example(t, None, None, i + 1) for i, t in enumerate(texts)], trained.data.max_length)
    return trained.model, features, trained.pad_id
