"""Corpus prediction and teacher labelling on Ray, against one process and against Ray's own first recipe.

On one machine, with a local Ray cluster the benchmark starts (one CPU per core):
  single         `bertx predict` (predict_file) over every input file in one process, ONNX Runtime with
                 every core (intra-op threads), the int8 export
  ray            `bertx predict --engine ray`: the same files, one single-thread actor per core, shards of
                 10,000 rows, the same int8 export (timed with and without starting the cluster)
  ray_pipeline   what a Ray user writes first (Ray's batch-inference guide): `ray.data.read_text` and
                 `map_batches` over an actor pool, each actor a Hugging Face `pipeline("text-classification")`
                 on the PyTorch model the export was made from, written with `write_json`; on a slice
                 of the corpus (--peer-rows), compared in rows per second
  labelling      the distillation teacher (PyTorch fp32) labels SST-2's training sentences and 4 augmented
                 variants of each on Ray (`--label-engine ray`'s path), timed; one process on a slice for the ratio
  rates          single-thread rows per second of each model a corpus job would run (teacher fp32 and int8,
                 a 3-layer student int8, a CNN student) and of the reader: the cost model in docs/scale.md

The corpus is SST-2's training sentences repeated to --rows rows, in 4 text files.
Usage: python -m benchmarks.scale.scale_predict [--quick] [--model-dir DIR] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/scale/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

FILES = 4


def make_model(data_dir: str, root: Path) -> str:
    import bertx

    out = root / "sst2"
    bertx.finetune(
        {
            "task": "classification",
            "output": str(out),
            "data": {"train": f"{data_dir}/sst2/train.tsv", "max_train_examples": 2000},
            "train": {"epochs": 1, "save_steps": None},
        },
        show_progress=False,
    )
    return str(out)


def export_int8(model_dir: str, target: Path) -> str:
    from bertx.export.one_model import export

    export(model_dir, target, quantize="int8", min_agreement=0.0, max_metric_drop=100.0)
    return str(target)


def write_corpus(texts: list[str], rows: int, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [texts[i % len(texts)] for i in range(rows)]
    per = -(-rows // FILES)
    paths = []
    for k in range(FILES):
        path = folder / f"part-{k}.txt"
        path.write_text("\n".join(lines[k * per : (k + 1) * per]) + "\n", encoding="utf-8")
        paths.append(str(path))
    return paths


def run_single(export: str, files: list[str], out: Path) -> float:
    from bertx.inference.predict_file import predict_file

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for k, path in enumerate(files):
        predict_file(export, path, str(out / f"{k}.jsonl"))
    return time.perf_counter() - start


def compare(single_dir: Path, files: list[str], ray_dir: Path) -> dict:
    """Row by row: the same label everywhere, and the largest probability difference."""
    corpus = {}
    for part in ray_dir.glob("part-*.jsonl"):
        for line in part.read_text(encoding="utf-8").split("\n")[:-1]:
            record = json.loads(line)
            corpus[(record["input"], record["row"])] = record
    rows = same = 0
    worst = 0.0
    for k, path in enumerate(files):
        for number, line in enumerate((single_dir / f"{k}.jsonl").read_text(encoding="utf-8").split("\n")[:-1], start=1):
            a, b = json.loads(line), corpus.get((path, number))
            rows += 1
            if b is None:
                continue
            same += a["label"] == b["label"] and a["text"] == b["text"]
            worst = max(worst, max(abs(a["probs"][k2] - b["probs"][k2]) for k2 in a["probs"]))
    return {"rows_compared": rows, "rows_in_ray_output": len(corpus), "same_label": same, "max_prob_difference": worst}


class PipelinePredictor:
    """The peer: Ray's batch-inference recipe with a Hugging Face pipeline in each actor."""

    def __init__(self, model_dir: str):
        from transformers import pipeline

        self.pipe = pipeline("text-classification", model=model_dir, device="cpu")

    def __call__(self, batch):
        predictions = self.pipe(list(batch["text"]))
        batch["label"] = [p["label"] for p in predictions]
        batch["score"] = [p["score"] for p in predictions]
        return batch


def run_peer(ray_data, model_dir: str, files: list[str], out: Path) -> float:
    start = time.perf_counter()
    ds = ray_data.read_text(files).map_batches(
        PipelinePredictor, fn_constructor_kwargs={"model_dir": model_dir}, compute=ray_data.ActorPoolStrategy(size=os.cpu_count()), num_cpus=1
    )
    ds.write_json(str(out))
    return time.perf_counter() - start


def labelling(model_dir: str, texts: list[str], variants: int, local_slice: int) -> dict:
    import torch

    from bertx.data.augment import augment
    from bertx.data.examples import Example
    from bertx.data.features import tokenize
    from bertx.recipes.distill import load_teacher
    from bertx.scale.labelling import label_on_ray
    from bertx.training.teacher_cache import TeacherCache

    teacher = load_teacher(model_dir, None)
    made, _ = augment(texts, None, variants, 42, teacher.tokenizer.mask_token)
    every = texts + made
    features = tokenize(teacher.tokenizer, [Example(t, None, None, i + 1) for i, t in enumerate(every)], 128)
    start = time.perf_counter()
    rows = label_on_ray(model_dir, features, teacher.pad_id, workers=os.cpu_count())
    ray_s = time.perf_counter() - start
    part = tokenize(teacher.tokenizer, [Example(t, None, None, i + 1) for i, t in enumerate(every[:local_slice])], 128)
    torch.set_num_threads(os.cpu_count())
    start = time.perf_counter()
    local = TeacherCache(teacher.model, part, "class", teacher.pad_id, "cpu")
    local_s = time.perf_counter() - start
    agree = float((local.rows.argmax(-1) == rows[:local_slice].argmax(-1)).mean())
    return {
        "texts": len(every),
        "sentences": len(texts),
        "variants": variants,
        "labelling_s": round(ray_s, 1),
        "texts_per_s": round(len(every) / ray_s, 1),
        "local_slice": local_slice,
        "local_texts_per_s": round(local_slice / local_s, 1),
        "ray_vs_local": round((len(every) / ray_s) / (local_slice / local_s), 3),
        "label_agreement_with_local": agree,
    }


def per_core_rates(model_dir: str, export: str, data_dir: str, texts: list[str], root: Path) -> dict:
    """Single-thread rows/s of each model (length-sorted batches of 128), and the reader's MB/s."""
    import torch

    import bertx
    from bertx.inference.predictor import Predictor
    from bertx.scale.corpus import expand_inputs, plan_shards

    students = {}
    for name, student in (("student_3layer", {"layers": 3}), ("student_cnn", {"name_or_path": "cnn"})):
        folder = root / name
        bertx.distill(
            {
                "teacher": model_dir,
                "output": str(folder),
                "student": student,
                "baseline": False,
                "data": {"train": f"{data_dir}/sst2/train.tsv", "max_train_examples": 256},
                "train": {"max_steps": 2, "save_steps": None},
            },
            show_progress=False,
        )
        students[name] = str(folder)
    students["student_3layer_int8"] = export_int8(students.pop("student_3layer"), root / "student_3layer_int8")
    torch.set_num_threads(1)
    os.environ["BERTX_ONNX_THREADS"] = "1"
    sample = texts[:4000]
    rates = {}
    for name, folder in (
        ("teacher_fp32", model_dir),
        ("teacher_int8", export),
        ("student_3layer_int8", students["student_3layer_int8"]),
        ("student_cnn", students["student_cnn"]),
    ):
        predictor = Predictor.load(folder, device="cpu")
        predictor.predict(sample[:256])
        start = time.perf_counter()
        predictor.predict(sample)
        rates[name] = round(len(sample) / (time.perf_counter() - start), 1)
    big = write_corpus(texts, 400_000, root / "reader")
    size = sum(Path(p).stat().st_size for p in big)
    start = time.perf_counter()
    plan_shards(expand_inputs(big), 10_000)
    rates["reader_mb_per_s"] = round(size / 2**20 / (time.perf_counter() - start), 1)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, a 2,000-row peer slice, 5,000 sentences labelled.")
    parser.add_argument("--rows", type=int, default=None, help="Corpus rows (default 200,000; quick 20,000).")
    parser.add_argument("--peer-rows", type=int, default=None, help="Rows the Ray + pipeline peer predicts (default 20,000; quick 2,000).")
    parser.add_argument("--label-sentences", type=int, default=None, help="SST-2 sentences labelled with 4 variants each (default all).")
    parser.add_argument("--model-dir", default=None, help="A fine-tuned SST-2 folder (default: make one).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    train = Path(args.data_dir) / "sst2/train.tsv"
    if not train.is_file():
        raise SystemExit(f"SST-2 not found at {train} (pass --data-dir)")
    rows = args.rows or (20_000 if args.quick else 200_000)
    peer_rows = args.peer_rows or (2_000 if args.quick else 20_000)
    texts = [line.split("\t")[0] for line in train.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    label_sentences = args.label_sentences or (5_000 if args.quick else len(texts))

    root = Path(tempfile.mkdtemp(prefix="bertx-scale-"))
    model_dir = args.model_dir or make_model(args.data_dir, root)
    export = export_int8(model_dir, root / "int8")
    files = write_corpus(texts, rows, root / "corpus")
    peer_files = write_corpus(texts, peer_rows, root / "peer-corpus")

    result: dict = {"benchmark": "scale_predict", "quick": args.quick, "rows": rows, "files": FILES}
    single_s = run_single(export, files, root / "single")
    result["single"] = {"wall_s": round(single_s, 2), "rows_per_s": round(rows / single_s, 1), "threads": os.cpu_count()}
    print(f"single process: {rows / single_s:,.0f} rows/s", file=sys.stderr)

    from bertx.scale.cluster import connected
    from bertx.scale.predict import CorpusJob, predict_corpus

    start = time.perf_counter()
    with connected(cpus=os.cpu_count()):
        cluster_s = time.perf_counter() - start
        import ray.data

        job_start = time.perf_counter()
        manifest = predict_corpus(CorpusJob(export, files, str(root / "ray")))
        job_s = time.perf_counter() - job_start
        output_bytes = sum(shard["bytes"] for shard in manifest["shards"]) / manifest["predictions"]  # the cost model's writing
        result["ray"] = {
            "wall_s": round(cluster_s + job_s, 2),
            "cluster_start_s": round(cluster_s, 2),
            "job_s": round(job_s, 2),
            "output_bytes_per_row": round(output_bytes, 1),
            "rows_per_s": round(rows / (cluster_s + job_s), 1),
            "rows_per_s_without_start": round(rows / job_s, 1),
            "workers": os.cpu_count(),
            "threads_per_worker": 1,
            "shards": len(manifest["shards"]),
        }
        print(f"ray: {rows / (cluster_s + job_s):,.0f} rows/s", file=sys.stderr)
        peer_s = run_peer(ray.data, model_dir, peer_files, root / "peer")
        result["ray_pipeline"] = {
            "rows": peer_rows,
            "wall_s": round(peer_s, 2),
            "rows_per_s": round(peer_rows / peer_s, 1),
            "note": "pipeline on the PyTorch fp32 model the export was made from (a pipeline cannot run "
            "the ONNX export); default pipeline batch size, Ray's default map_batches batch",
        }
        print(f"ray + pipeline: {peer_rows / peer_s:,.0f} rows/s", file=sys.stderr)
        result["labelling"] = labelling(model_dir, texts[:label_sentences], 4, min(10_000, label_sentences))
        print(f"labelling: {result['labelling']['labelling_s']} s", file=sys.stderr)
    result["identical"] = compare(root / "single", files, root / "ray")
    result["rates_per_core"] = per_core_rates(model_dir, export, args.data_dir, texts, root)

    same = result["identical"]
    result["ray_vs_single"] = round(result["ray"]["rows_per_s"] / result["single"]["rows_per_s"], 3)
    result["ray_vs_single_without_start"] = round(result["ray"]["rows_per_s_without_start"] / result["single"]["rows_per_s"], 3)
    result["ray_vs_ray_pipeline"] = round(result["ray"]["rows_per_s"] / result["ray_pipeline"]["rows_per_s"], 2)
    result["identical_to_single"] = same["rows_compared"] == same["rows_in_ray_output"] == same["same_label"] == rows
    result["labelling_s"] = result["labelling"]["labelling_s"]
    result["machine"] = machine()
    save("scale_predict_quick" if args.quick else "scale_predict", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
