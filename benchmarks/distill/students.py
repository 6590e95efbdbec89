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
    from bertx.data.examples import Example
    from bertx.data.features import tokenize
    from bertx.evaluation.distill_report import measure_speed
    from bertx.inference.loading import load_trained

    trained = load_trained(folder, device="cpu")
    features = tokenize(trained.tokenizer, [Example(t, None, None, i + 1) for i, t in enumerate(texts)], trained.data.max_length)
    return measure_speed(trained.model, features, trained.pad_id)
