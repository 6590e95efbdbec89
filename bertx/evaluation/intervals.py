"""Scores with their noise: a model folder's metrics on a labelled file with a bootstrap interval, and the
paired interval of its difference from another model on the same examples (is a gain real or noise?)."""

from __future__ import annotations

from pathlib import Path

from bertx.metrics.bootstrap import bootstrap_interval, paired_difference


def scorer_of(model_dir: str | Path, data: str):
    """(scorer, examples): the folder's outputs on `data`, computed once (`TaskKind.scorer`)."""
    from bertx.inference.loading import load_trained

    trained = load_trained(model_dir, device="cpu")
    evalset = trained.kind.load_eval(data, trained.data, trained.tokenizer, trained.label2id, dict(trained.run), None, None)
    scorer = trained.kind.scorer(trained.model, evalset, trained.pad_id, trained.data, autocast_dtype=trained.autocast_dtype)
    return scorer, evalset.size


def scored(models: dict[str, str | Path], data: str, metric: str, against: str | None = None, rounds: int = 1000, seed: int = 0) -> dict:
    """Each model's `metric` on `data` with its 95% interval, and (with `against`, one of the models) each other
    model's difference from it with the paired interval and whether that difference is inside the noise."""
    scorers = {name: scorer_of(folder, data) for name, folder in models.items()}
    result = {}
    for name, (scorer, examples) in scorers.items():
        low, high = bootstrap_interval(scorer, examples, metric, rounds, seed)
        result[name] = {"score": float(scorer(None)[metric]), "interval": [round(low, 4), round(high, 4)], "examples": examples}
    if against in scorers:
        base, examples = scorers[against]
        for name, (scorer, _) in scorers.items():
            if name == against:
                continue
            low, high = paired_difference(scorer, base, examples, metric, rounds, seed)
            result[name]["vs_" + against] = {
                "difference": round(result[name]["score"] - result[against]["score"], 4),
                "interval": [round(low, 4), round(high, 4)],
                "within_noise": low <= 0 <= high,
            }
    return result
