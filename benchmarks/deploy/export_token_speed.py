"""NER and QA exports against bertx's own PyTorch predictors: speed at equal F1.

For each task a MiniLM model is fine-tuned briefly (or given with --ner-dir / --qa-dir), exported with
`bertx export` in fp32 and int8, and the three folders predict the same dev examples through the same
predictor code (EntityPredictor / AnswerPredictor: windows, Viterbi tags, n-best spans), timed end to
end; F1 comes from `bertx evaluate` on each folder, over more examples than are timed (the whole CoNLL dev
file; 4,000 SQuAD questions): on 1,000 questions two int8 graphs whose outputs differ tenfold were 0.3 F1
apart in either order, as a few near-tied answers flip.

Usage: python -m benchmarks.deploy.export_token_speed [--quick] [--ner-dir RUN] [--qa-dir RUN] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/deploy/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save, timed


def train(task: str, data_dir: str, examples: int) -> str:
    import bertx

    out = tempfile.mkdtemp() + f"/{task}"
    if task == "ner":
        data = {"train": f"{data_dir}/conll2003/train.txt", "max_train_examples": examples}
    else:
        data = {
            "train": f"{data_dir}/squad/train-v1.1.reconstructed.json",
            "train_articles": "0:60",
            "max_train_examples": examples,
            "max_length": 256,
        }
    bertx.finetune({"task": task, "output": out, "data": data, "train": {"epochs": 1, "save_steps": None, "precision": "bf16"}}, show_progress=False)
    return out


def measure(task: str, run_dir: str, dev: str, limit: int, repeats: int, articles: str | None, eval_limit: int) -> dict:
    import bertx
    from bertx.export.one_model import export

    folders = {"pytorch": run_dir}
    for quantize in ("none", "int8"):
        folder = Path(tempfile.mkdtemp()) / quantize
        export(run_dir, folder, quantize=quantize, min_agreement=0.0, max_metric_drop=100.0, sample_file=dev, sample_size=min(limit, 256))
        folders["onnx_fp32" if quantize == "none" else "onnx_int8"] = str(folder)
    if task == "ner":
        from bertx.data.conll import read_tagged

        sentences = [s.words for s in read_tagged(dev, limit=limit)]
        make = lambda folder: bertx.EntityPredictor.load(folder)  # noqa: E731
        run = lambda predictor: predictor.tag(sentences)  # noqa: E731
        count, metric = len(sentences), "f1"
    else:
        from bertx.data.squad import read_qa

        examples = read_qa(dev, articles=articles, limit=limit)
        make = lambda folder: bertx.AnswerPredictor.load(folder)  # noqa: E731
        run = lambda predictor: predictor.predict_examples(examples)  # noqa: E731
        count, metric = len(examples), "f1"
    rows = {}
    for name, folder in folders.items():
        predictor = make(folder)
        wall, _ = timed(lambda predictor=predictor: run(predictor), repeats)
        scores = bertx.evaluate(folder, dev, limit=eval_limit, **({"articles": articles} if articles else {}))
        rows[name] = {"wall_s": round(wall, 3), "examples_per_s": round(count / wall, 1), metric: round(100 * scores[metric], 2)}
        print(task, name, rows[name], file=sys.stderr, flush=True)
    for name in ("onnx_fp32", "onnx_int8"):
        rows[name]["speedup_vs_pytorch"] = round(rows[name]["examples_per_s"] / rows["pytorch"]["examples_per_s"], 2)
        rows[name]["f1_change_pts"] = round(rows[name][metric] - rows["pytorch"][metric], 2)
    return {"examples": count, "f1_examples": eval_limit, "run": run_dir, **rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller training and dev samples, one timing each.")
    parser.add_argument("--ner-dir", default=None)
    parser.add_argument("--qa-dir", default=None)
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--tasks", default="ner,qa", help="Which of ner, qa to measure (default both).")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    train_examples, limit, repeats, eval_limit = (1000, 300, 1, 1000) if args.quick else (8000, 1000, 3, 4000)
    ner_dir = (args.ner_dir or train("ner", args.data_dir, train_examples)) if "ner" in tasks else None
    qa_dir = (args.qa_dir or train("qa", args.data_dir, train_examples)) if "qa" in tasks else None
    squad = f"{args.data_dir}/squad/train-v1.1.reconstructed.json"
    result = {
        "benchmark": "export_token_speed",
        "quick": args.quick,
        **({"ner": measure("ner", ner_dir, f"{args.data_dir}/conll2003/dev.txt", limit, repeats, None, eval_limit)} if ner_dir else {}),
        **({"qa": measure("qa", qa_dir, squad, limit, repeats, "400:", eval_limit)} if qa_dir else {}),
        "machine": machine(),
    }
    name = "export_token_speed" + ("" if set(tasks) == {"ner", "qa"} else "_" + "_".join(tasks))
    save(name + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
