"""Students at the limit: BiLSTM, CNN and bag-of-embeddings students of the SST-2 MiniLM teacher against
model2vec, the 3-layer BERT student and the teacher itself (fp32 and int8), on one accuracy-against-
throughput plot; and (`--task ner`) BiLSTM and CNN taggers of the CoNLL-2003 MiniLM teacher.

SST-2, one run:
1. The teacher's int8 export (`bertx export --quantize int8`) is made once; it labels the transfer set when
   it decides as the fp32 teacher does on >= 99% of a sample (else fp32 labels it).
2. The transfer set: every training sentence plus `--augment` variants each (neighbour replacement in the
   teacher's embedding space), labelled once. Every student reads the same set from the teacher store, so
   the first student pays for the labelling and the others reuse it (each row records its store hits).
3. Each student in `--students` (`kind[-eN][-hN][-kA.B.C]`: embedding width, hidden size or channels,
   CNN kernel widths) is distilled, trained again on the labels alone (its baseline), and exported to
   ONNX int8. Rows: dev accuracy, parameters, size, model-only inputs/s at batch 32 (tokenised inputs,
   as issue 16 measured), end-to-end inputs/s at batch 32 and latency at batch 1 (raw strings to labels).
4. The 3-layer BERT student (`bertx distill`'s default) on the labelled text with the teacher's outputs.
5. model2vec (`model2vec.distill` from the same MiniLM; its classifier trained on the same labelled
   sentences, and on the transfer set's texts with the teacher's hard labels, as its trainer takes labels
   only), end to end at batch 32 and 1.

Every speed figure of an SST-2 run is measured after all training, one model after another (`measure_phase`);
`--remeasure WORK` repeats that phase for a finished run whose folders are in WORK.

Usage: python -m benchmarks.distill.distill_other_networks --teacher RUN [--task sst2|ner] [--quick] [--augment N] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/distill/results/ (with a plot).
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
from benchmarks.harness import results_of, machine, save
from benchmarks.distill.students import model_only, parse_student
from benchmarks.distill.model2vec_peer import model2vec_rows, model2vec_speed, single_latency_ms, timed

RESULTS = results_of(__file__)

DEFAULT_STUDENTS = "cnn,cnn-e64-h128,bilstm-e128-h150,bag-e128"
NER_STUDENTS = "bilstm,cnn"


def bertx_speed(folder: str, texts: list[str], ner: bool) -> dict:
    from bertx.inference.entities import EntityPredictor
    from bertx.inference.predictor import Predictor

    predictor = (EntityPredictor if ner else Predictor).load(folder, device="cpu")
    predict = lambda batch, size: predictor.predict(batch, batch_size=size)  # noqa: E731
    return {"e2e_inputs_per_s_batch32": round(timed(predict, texts, 32), 1), "e2e_latency_ms_batch1": single_latency_ms(predict, texts)}


def accuracy_of(folder: str, texts: list[str], gold: list[str]) -> float:
    from bertx.inference.predictor import Predictor

    predicted = Predictor.load(folder, device="cpu").predict(texts, batch_size=64)
    return round(100 * sum(p["label"] == g for p, g in zip(predicted, gold)) / len(gold), 2)


def folder_mb(folder: str, names=("model.safetensors", "model.onnx")) -> float:
    return round(sum(Path(folder, n).stat().st_size for n in names if Path(folder, n).is_file()) / 2**20, 1)


def dev_rows(data: Path, ner: bool) -> tuple[list[str], list[str]]:
    if not ner:
        rows = [line.split("\t") for line in (data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        return [r[0] for r in rows], [r[1] for r in rows]
    sentences = [
        " ".join(line.split()[0] for line in block.splitlines() if line.strip())
        for block in (data / "dev.txt").read_text(encoding="utf-8").split("\n\n")
    ]
    return [s for s in sentences if s and not s.startswith("-DOCSTART-")], []


def plot(points: list[dict], path: Path, score: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5))
    for point in points:
        axis.scatter([point["x"]], [point["y"]], marker=point.get("marker", "o"), label=point["name"])
    axis.set_xscale("log")
    axis.set_xlabel("inputs/s at batch 32, end to end with tokenisation (log)")
    axis.set_ylabel(metric)
    axis.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def unlabelled_sentences(data_dir: Path, work: Path, count: int) -> str:
    """`count` unlabelled English sentences, words only, one per line, for the CoNLL-2003 taggers: PAN-X
    English train, then its dev (Wikipedia entity sentences; their tags are not used), then WikiText-2's
    (Wikipedia articles, already split into words like CoNLL)."""
    from bertx.data.conll import read_tagged

    sentences = [" ".join(s.words) for name in ("train-en.txt", "dev-en.txt") for s in read_tagged(data_dir / "panx" / name, require_tags=False)]
    if len(sentences) < count:
        sentences += wikitext_sentences(data_dir / "wikitext2" / "wiki.train.tokens", count - len(sentences))
    path = work / "unlabelled-sentences.txt"
    path.write_text("\n".join(sentences[:count]) + "\n", encoding="utf-8")
    return str(path)


def wikitext_sentences(path: Path, count: int) -> list[str]:
    """WikiText-2 article text cut at every ` . `, its `@-@`-style joins undone; headings and sentences with
    `<unk>` left out, and so are lists (fewer than 3 lower-case words), the very short and the very long
    (6 to 60 words kept). Not `text_corpus.iter_text`: its sentence rule is more cautious and picks another
    11% of the sentences, and the recorded run (results/distill_other_networks_ner.json) used these."""
    from bertx.data.text_corpus import WIKI_MARKS

    sentences: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if not line or line.startswith("="):
                continue
            for mark, plain in WIKI_MARKS:
                line = line.replace(mark, plain)
            for part in line.split(" . "):
                words = part.split()
                if 6 <= len(words) <= 60 and "<unk>" not in words and sum(w.isalpha() and w.islower() for w in words) >= 3:
                    sentences.append(" ".join(words).rstrip(" .") + " .")
                    if len(sentences) == count:
                        return sentences
    return sentences


def transfer_texts(teacher: str, teacher_int8: str, data: Path, augment: int, seed: int, max_length: int, limit):
    """The distillation transfer set's variants as text with the teacher's labels: made by the same functions
    as `bertx distill` (so the same texts and token ids), labelled from the teacher store the distillation
    runs filled (no labelling here; None when it is not there)."""
    import numpy as np

    from bertx.data.augment import augment as make_variants, neighbours
    from bertx.data.examples import read_examples
    from bertx.data.transfer_set import augmented_features
    from bertx.inference.loading import load_trained
    from bertx.training import teacher_store

    trained = load_trained(teacher, device="cpu")
    embeddings = trained.model.get_input_embeddings().weight.detach().float().numpy()
    reading = {"text_column": None, "text_pair_column": None}
    features = augmented_features(str(data / "train.tsv"), trained.task, trained.tokenizer, max_length, limit, reading, augment, seed, embeddings)
    examples, _ = read_examples(str(data / "train.tsv"), trained.task, None, None, None, require_label=False, limit=limit)
    texts = [e.text for e in examples]
    variants, _ = make_variants(texts, None, augment, seed, trained.tokenizer.mask_token, near=neighbours(texts, trained.tokenizer, embeddings))
    for source, how in ((teacher_int8, "export"), (teacher, "bf16"), (teacher, "fp32")):  # whichever labelled it
        outputs = teacher_store.load(teacher_store.key(teacher_store.teacher_digest(source), how, "class", features), None)
        if outputs is not None:
            return variants, [trained.labels[i] for i in np.asarray(outputs).argmax(-1)]
    return variants, None


def _picked(row: dict, metric: str, score: str) -> dict:
    """A report row's figures under this benchmark's names."""
    return {
        score: round(100 * row["metrics"][metric], 2),
        "parameters": row["parameters"],
        "size_mb": row["size_mb"],
        "latency_ms_batch1": row["latency_ms_batch1"],
        "inputs_per_s_batch32": row["inputs_per_s_batch32"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", help="The fine-tuned SST-2 (or CoNLL-2003) teacher folder (required unless --remeasure).")
    parser.add_argument("--task", choices=("sst2", "ner"), default="sst2")
    parser.add_argument("--quick", action="store_true", help="10,000 training sentences, 1 variant, 2 epochs.")
    parser.add_argument("--augment", type=int, default=None, help="Variants per training sentence (default 1 quick, 8 full).")
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None, help="Peak learning rate of the students (default: bertx's).")
    parser.add_argument("--students", default=None, help=f"Default: {DEFAULT_STUDENTS} (NER: {NER_STUDENTS}).")
    parser.add_argument("--no-peers", action="store_true", help="Skip model2vec and the 3-layer BERT student.")
    parser.add_argument(
        "--unlabelled-sentences",
        type=int,
        default=None,
        help="NER: this many unlabelled sentences as the taggers' transfer text, words only: PAN-X "
        "English train, then its dev, then WikiText-2 (default 70,000; quick 4,000; 0: none). More text "
        "was the lever that took the BiLSTM tagger past 97%% of its teacher (results/distill_ner_sweep_h200.json).",
    )
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument(
        "--remeasure", default=None, metavar="WORK", help="SST-2: only the measuring phase again, for a finished run whose folders are in WORK."
    )
    args = parser.parse_args()
    if args.remeasure:
        remeasure(args.remeasure, args.quick)
        return
    if not args.teacher:
        parser.error("--teacher is required")
    ner = args.task == "ner"
    if args.unlabelled_sentences is None:
        args.unlabelled_sentences = (4_000 if args.quick else 70_000) if ner else 0
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    train_examples = args.train_examples or (10_000 if args.quick and not ner else 4_000 if args.quick else None)
    augment = 0 if ner else args.augment if args.augment is not None else (1 if args.quick else 8)
    # SST-2: 67k sentences x 9 is 600k texts an epoch, so 2 suffice; taggers see 14k + 70k sentences: 6 (quick: 4)
    epochs = args.epochs or ((4 if args.quick else 6) if ner else 2)
    data = Path(args.data_dir) / ("conll2003" if ner else "sst2")
    texts, gold = dev_rows(data, ner)
    max_length = 128 if ner else 66
    files = {
        "train": str(data / ("train.txt" if ner else "train.tsv")),
        "dev": str(data / ("dev.txt" if ner else "dev.tsv")),
        "max_length": max_length,
        **({"max_train_examples": train_examples} if train_examples else {}),
    }
    score = "f1" if ner else "accuracy"
    specs = (args.students or (NER_STUDENTS if ner else DEFAULT_STUDENTS)).split(",")

    import bertx
    from bertx.export.one_model import export

    work = Path(tempfile.mkdtemp())
    os.environ.setdefault("BERTX_CACHE", str(work / "cache"))  # a fresh teacher store: the labelling time is measured
    teacher_int8 = str(work / "teacher-int8")
    if not ner:
        started = time.perf_counter()
        export(args.teacher, teacher_int8, quantize="int8")
        log(f"teacher int8 export: {time.perf_counter() - started:.0f} s")

    rows: dict = {}
    teacher_row = None
    for spec in specs:
        out = work / spec
        config = {
            "teacher": args.teacher,
            "output": str(out),
            "augment": augment,
            "baseline": True,
            "data": files,
            "student": parse_student(spec),
            "train": {"epochs": epochs, "batch_size": 32 if ner else 64, "save_steps": None, "seed": 42, **({"lr": args.lr} if args.lr else {})},
        }
        if ner:
            config["loss"] = {"soft": 1.0, "hard": 1.0}  # gold tags beside the teacher's: entity boundaries are sharp
            if args.unlabelled_sentences:
                config["unlabelled"] = [unlabelled_sentences(Path(args.data_dir), work, args.unlabelled_sentences)]
        else:
            config.update(augment_rule="neighbours", labelling={"teacher_export": teacher_int8})
        started = time.perf_counter()
        final = bertx.distill(config, show_progress=False)
        report, metric = final["report"]["models"], final["report"]["main_metric"]
        student, plain = _picked(report["student"], metric, score), _picked(report["student without teacher"], metric, score)
        student.update(bertx_speed(str(out), texts, ner))
        if ner:  # no measuring phase for NER: the labels-only twin's end-to-end speed is taken here, as the student's
            plain.update(bertx_speed(str(out / "baseline"), texts, ner))
        if teacher_row is None:
            teacher_row = _picked(report["teacher"], metric, score)
            teacher_row.update(bertx_speed(args.teacher, texts, ner))
        row = {
            "student": student,
            "no_teacher": plain,
            "teacher_model_b32": _picked(report["teacher"], metric, score)["inputs_per_s_batch32"],
            "wall_s": round(time.perf_counter() - started, 1),
            "transfer_set": final.get("config", {}).get("transfer_set") or _transfer_summary(out),
        }
        if not ner:
            export(str(out), str(work / f"{spec}-int8"), quantize="int8")
            row["student_int8"] = {
                "accuracy": accuracy_of(str(work / f"{spec}-int8"), texts, gold),
                "size_mb": folder_mb(str(work / f"{spec}-int8")),
                **bertx_speed(str(work / f"{spec}-int8"), texts, ner),
            }
        row.update(
            student_kept=round(100 * student[score] / teacher_row[score], 2),
            speedup_model_b32=round(student["inputs_per_s_batch32"] / row["teacher_model_b32"], 2),
            speedup_e2e_b32=round(student["e2e_inputs_per_s_batch32"] / teacher_row["e2e_inputs_per_s_batch32"], 2),
            gain_over_no_teacher=round(student[score] - plain[score], 2),
            parameter_ratio=round(teacher_row["parameters"] / student["parameters"], 1),
        )
        rows[spec] = row
        log(f"{spec}: {json.dumps(row)}")

    peers: dict = {}
    if not ner:
        peers["teacher int8"] = {
            "accuracy": accuracy_of(teacher_int8, texts, gold),
            "size_mb": folder_mb(teacher_int8),
            **bertx_speed(teacher_int8, texts, ner),
        }
        for row in rows.values():
            best = max((row["student"], row.get("student_int8", {})), key=lambda r: -r.get("e2e_latency_ms_batch1", 1e9))
            row["vs_teacher_int8_b1"] = round(peers["teacher int8"]["e2e_latency_ms_batch1"] / best["e2e_latency_ms_batch1"], 2)
    if not ner and not args.no_peers:
        out = work / "bert-3layer"
        started = time.perf_counter()
        bertx.distill(
            {
                "teacher": args.teacher,
                "output": str(out),
                "baseline": False,
                "data": files,
                "train": {"epochs": 2 if args.quick else 3, "batch_size": 32, "save_steps": None, "seed": 42},
            },
            show_progress=False,
        )
        from bertx.evaluation.distill_report import describe

        bert = describe(out, files["dev"])
        peers["BERT 3-layer student"] = {
            "accuracy": round(100 * bert["metrics"]["accuracy"], 2),
            "parameters": bert["parameters"],
            "size_mb": bert["size_mb"],
            "inputs_per_s_batch32": bert["inputs_per_s_batch32"],
            "wall_s": round(time.perf_counter() - started, 1),
            **bertx_speed(str(out), texts, ner),
        }
        log(f"BERT 3-layer: {json.dumps(peers['BERT 3-layer student'])}")
        examples = [line.split("\t") for line in (data / "train.tsv").read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        examples = examples[:train_examples] if train_examples else examples
        variants, decided = transfer_texts(args.teacher, teacher_int8, data, augment, 42, max_length, train_examples) if augment else (None, None)
        transfer = (None, None)
        if decided is not None:  # the labelled sentences keep their gold labels, as in the distillation
            transfer = ([e[0] for e in examples] + variants, [e[1] for e in examples] + decided)
        else:
            log("note: the transfer set is not in the teacher store; model2vec is trained on the labelled sentences only")
        peers.update(model2vec_rows([e[0] for e in examples], [e[1] for e in examples], transfer, texts, gold, args.teacher, log))

    result = {
        "benchmark": "distill_other_networks",
        "task": args.task,
        "quick": args.quick,
        "teacher": args.teacher,
        "work": str(work),
        "train_examples": train_examples or "all",
        "augment": augment,
        "epochs": epochs,
        "lr": args.lr or "bertx default",
        **({"unlabelled_sentences": args.unlabelled_sentences} if ner else {}),
        "students": rows,
        "teacher_row": teacher_row,
        "peers": peers,
    }
    finish(result, texts, gold, score, ner, log)


def finish(result: dict, texts: list[str], gold: list[str], score: str, ner: bool, log) -> None:
    """The measuring phase (SST-2: every speed figure again, one model after another, nothing else training),
    the issue's keys, the plot, the result file."""
    if not ner:
        measure_phase(result, texts, log)
    rows, peers, teacher_row = result["students"], result["peers"], result["teacher_row"]
    result.update(summary(rows, peers, teacher_row, score, ner))
    result["machine"] = machine()
    name = "distill_other_networks" + ("_ner" if ner else "") + ("_quick" if result["quick"] else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    points = [{"name": "teacher (MiniLM fp32)", "x": teacher_row["e2e_inputs_per_s_batch32"], "y": teacher_row[score], "marker": "s"}]
    for spec, row in rows.items():
        points.append({"name": f"{spec}, distilled", "x": row["student"]["e2e_inputs_per_s_batch32"], "y": row["student"][score]})
        if "student_int8" in row:
            points.append(
                {
                    "name": f"{spec}, distilled, int8",
                    "x": row["student_int8"]["e2e_inputs_per_s_batch32"],
                    "y": row["student_int8"][score],
                    "marker": "^",
                }
            )
        plain = row["no_teacher"]
        if "e2e_inputs_per_s_batch32" in plain:  # the axis is end to end: a model-only figure would sit too far right
            points.append({"name": f"{spec}, labels only", "x": plain["e2e_inputs_per_s_batch32"], "y": plain[score], "marker": "x"})
    for peer, row in peers.items():
        points.append({"name": peer, "x": row["e2e_inputs_per_s_batch32"], "y": row[score], "marker": "D" if "model2vec" in peer else "s"})
    plot(points, RESULTS / f"{name}.png", score, "CoNLL-2003 dev entity F1" if ner else "SST-2 dev accuracy")
    save(name, result)
    print(json.dumps(result))


def measure_phase(result: dict, texts: list[str], log) -> None:
    """Every speed figure of an SST-2 run, measured after all training, one model after another in this
    process: the teacher (fp32, int8), each student, its labels-only twin and its int8 export, the 3-layer
    BERT student. (The model2vec rows are measured when fitted, at the end of the training phase.)"""
    work, teacher = Path(result["work"]), result["teacher"]
    both = lambda folder: {**model_only(folder, texts), **bertx_speed(folder, texts, False)}  # noqa: E731
    teacher_row = result["teacher_row"]
    teacher_row.update(both(teacher))
    peers = result["peers"]
    if (work / "teacher-int8").is_dir():
        peers.setdefault("teacher int8", {}).update(both(str(work / "teacher-int8")))
    if (work / "bert-3layer").is_dir() and "BERT 3-layer student" in peers:
        peers["BERT 3-layer student"].update(both(str(work / "bert-3layer")))
    for spec, row in result["students"].items():
        row["student"].update(both(str(work / spec)))
        row["no_teacher"].update(both(str(work / spec / "baseline")))
        if (work / f"{spec}-int8").is_dir():
            row["student_int8"].update(both(str(work / f"{spec}-int8")))
        student = row["student"]
        fastest_b1 = min(r["e2e_latency_ms_batch1"] for r in (student, row.get("student_int8") or student))
        row.update(
            teacher_model_b32=teacher_row["inputs_per_s_batch32"],
            speedup_model_b32=round(student["inputs_per_s_batch32"] / teacher_row["inputs_per_s_batch32"], 2),
            speedup_e2e_b32=round(student["e2e_inputs_per_s_batch32"] / teacher_row["e2e_inputs_per_s_batch32"], 2),
        )
        if "teacher int8" in peers:
            row["vs_teacher_int8_b1"] = round(peers["teacher int8"]["e2e_latency_ms_batch1"] / fastest_b1, 2)
        log(f"measured {spec}: {json.dumps({k: row[k] for k in ('speedup_model_b32', 'speedup_e2e_b32', 'vs_teacher_int8_b1') if k in row})}")
    if any(name.startswith("model2vec") for name in peers):
        speed = model2vec_speed(texts)  # the same static model and head size as the fitted rows: the same speed
        for name in peers:
            if name.startswith("model2vec"):
                peers[name].update(speed)
        log(f"measured model2vec: {json.dumps(speed)}")
    result["measured"] = "speeds measured after all training, one model after another (measure_phase)"


def remeasure(work: str, quick: bool) -> None:
    """`--remeasure WORK`: the measuring phase again for a finished run whose folders are in WORK."""
    name = "distill_other_networks" + ("_quick" if quick else "")
    result = json.loads((RESULTS / f"{name}.json").read_text())
    result["work"] = work
    data = Path(os.environ.get("BERTX_DATA_DIR", "../shared/data")) / "sst2"
    texts, gold = dev_rows(data, False)
    finish(result, texts, gold, "accuracy", False, lambda line: print(line, file=sys.stderr, flush=True))


def _transfer_summary(out: Path) -> dict | None:
    import yaml

    run = out / "bertx_run.yaml"
    return (yaml.safe_load(run.read_text()) or {}).get("transfer_set") if run.is_file() else None


def summary(rows: dict, peers: dict, teacher: dict, score: str, ner: bool) -> dict:
    """The issue's keys: the best student meeting the speed target (else the fastest-kept trade-off), and
    whether some bertx student dominates model2vec (as accurate and as fast, end to end at batch 32)."""
    if ner:
        return {"ner_bilstm_kept": rows.get("bilstm", {}).get("student_kept")}
    fast = {spec: row for spec, row in rows.items() if row["speedup_model_b32"] >= 10} or rows
    best = max(fast, key=lambda spec: fast[spec]["student_kept"])
    out = {
        "best_student": best,
        "best_student_kept": rows[best]["student_kept"],
        "best_student_speedup_model_b32": rows[best]["speedup_model_b32"],
        "best_student_vs_teacher_int8_b1": rows[best].get("vs_teacher_int8_b1"),
    }
    m2v = [row for name, row in peers.items() if name.startswith("model2vec")]
    if m2v:
        top = max(m2v, key=lambda row: row["accuracy"])
        candidates = [r for row in rows.values() for r in (row["student"], row.get("student_int8")) if r]
        out["model2vec_accuracy"] = top["accuracy"]
        out["model2vec_dominated"] = all(
            any(c[score] >= m[score] and c["e2e_inputs_per_s_batch32"] >= m["e2e_inputs_per_s_batch32"] for c in candidates) for m in m2v
        )
    return out


if __name__ == "__main__":
    main()
