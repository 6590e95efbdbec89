"""Cross-lingual transfer by vocabulary transfer: does giving English MiniLM target-language word pieces
(and a little bilingual masked-LM training) close the zero-shot gap?

Zero-shot from English labels only (`bertx transfer`, method plain), scored on the target language's dev
data and on English dev. Rows, at equal masked-LM budgets (same steps, batch, sequence length, text):

  as-is          MiniLM unchanged
  mlm            MiniLM + continued bilingual MLM, English vocabulary
  extend-mean    `bertx vocab extend --init mean` (FVT) + the same MLM
  extend-random  `bertx vocab extend --init random` + the same MLM (the control)
  extend-mean-0  `bertx vocab extend --init mean` without any MLM (what the initialisation alone does)
  extend-aligned `bertx vocab extend --init aligned` + the same MLM: each new piece from the English pieces it
                 translates to in row-aligned sentence pairs (Dice-weighted; WECHSEL's idea with parallel text
                 instead of a bilingual dictionary). Pairs: the SST-2 training sentences and their PLUE
                 translations (pt; labels unused), the XNLI + PAWS-X dev pairs (de; no NER text)
  extend-aligned-0  the same without MLM
  translate-train (PT only, NOT zero-shot: the ceiling) MiniLM fine-tuned on the Portuguese training labels

Pairs: pt = SST-2 -> Portuguese SST-2 (PLUE; MLM text: WikiText-2 English + the Portuguese training
sentences, labels dropped); de = PAN-X English -> German NER (MLM text: WikiText-2 + German Wikipedia
paragraphs from de-text). Fine-tuning: configs/transfer/sst2-pt.yaml (8,000 English sentences, 2
epochs) and configs/transfer/panx-de.yaml.

Usage: python -m benchmarks.transfer.crosslingual_vocab [--quick] [--pairs pt,de] [--add 5000] [--mlm-steps 400]
The last line of stdout is one JSON object; it is also saved in benchmarks/transfer/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

ROOT = Path(__file__).resolve().parents[2]
PAIRS = {  # target language text for vocab and MLM, transfer config, target column, layout of the text
    "pt": {
        "text": "sst2-pt/train.tsv",
        "config": "configs/transfer/sst2-pt.yaml",
        "target": "pt",
        "documents": "blank",
        "ceiling": "sst2-pt/train.tsv",
    },
    "de": {"text": "de-text/mlqa_de_contexts.txt", "config": "configs/transfer/panx-de.yaml", "target": "de", "documents": "line", "ceiling": None},
}


def aligned_sst2(data: Path, work: Path) -> tuple[str, str]:
    """Row-aligned English/Portuguese SST-2 training sentences for `--init aligned`.

    The two training files are translations row by row, except for a few rows each dropped (3 from the
    Portuguese, 2 from the English), so the offset between them changes a few times. It is recovered
    per window of 50 rows as the shift (-4..4) under which labels agree and word counts are alike; windows
    with no clear shift are left out. Only training sentences are used, never dev text or labels beyond
    this check."""
    import csv

    out_en, out_pt = work / "parallel-en.txt", work / "parallel-pt.txt"
    if out_en.is_file() and out_pt.is_file():
        return str(out_en), str(out_pt)

    def rows(path: Path) -> list[tuple[str, str]]:
        with open(path, encoding="utf-8", newline="") as f:
            return [(r["sentence"], r["label"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]

    en, pt = rows(data / "sst2/train.tsv"), rows(data / "sst2-pt/train.tsv")

    def alike(i: int, j: int) -> bool:
        if not 0 <= j < len(pt) or en[i][1] != pt[j][1]:
            return False
        ratio = (len(pt[j][0].split()) + 1) / (len(en[i][0].split()) + 1)
        return 0.6 <= ratio <= 1.8

    pairs, window = [], 50
    for start in range(0, len(en), window):
        span = range(start, min(start + window, len(en)))
        agree = {shift: sum(alike(i, i + shift) for i in span) / len(span) for shift in range(-4, 5)}
        shift = max(agree, key=agree.get)
        if agree[shift] >= 0.8:
            pairs += [(en[i][0], pt[i + shift][0]) for i in span if alike(i, i + shift)]
    work.mkdir(parents=True, exist_ok=True)
    out_en.write_text("\n".join(a for a, _ in pairs) + "\n", encoding="utf-8")
    out_pt.write_text("\n".join(b for _, b in pairs) + "\n", encoding="utf-8")
    print(f"[parallel] {len(pairs)} aligned SST-2 training pairs of {len(en)} / {len(pt)} rows", file=sys.stderr, flush=True)
    return str(out_en), str(out_pt)


def parallel_de(data: Path, work: Path) -> tuple[str, str]:
    """English/German pairs from the XNLI and PAWS-X dev files (row-aligned translations; no NER text)."""
    import csv

    out_en, out_de = work / "parallel-en-de.en.txt", work / "parallel-en-de.de.txt"
    if out_en.is_file() and out_de.is_file():
        return str(out_en), str(out_de)
    en_lines, de_lines = [], []
    for folder in ("xnli", "pawsx"):
        with (
            open(data / folder / "dev-en.tsv", encoding="utf-8", newline="") as a,
            open(data / folder / "dev-de.tsv", encoding="utf-8", newline="") as b,
        ):
            for x, y in zip(csv.DictReader(a, delimiter="\t", quoting=csv.QUOTE_NONE), csv.DictReader(b, delimiter="\t", quoting=csv.QUOTE_NONE)):
                for column in ("sentence1", "sentence2"):
                    if x.get(column) and y.get(column):
                        en_lines.append(x[column].replace("\n", " "))
                        de_lines.append(y[column].replace("\n", " "))
    unique = list(dict.fromkeys(zip(en_lines, de_lines)))  # XNLI repeats each premise three times
    work.mkdir(parents=True, exist_ok=True)
    out_en.write_text("\n".join(a for a, _ in unique) + "\n", encoding="utf-8")
    out_de.write_text("\n".join(b for _, b in unique) + "\n", encoding="utf-8")
    return str(out_en), str(out_de)


def mlm(encoder: str, text_files: list[dict], out: Path, args) -> dict:
    """Continued bilingual MLM; the same budget for every row."""
    from bertx.config import PretrainConfig
    from bertx.recipes.pretrain import pretrain

    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    print(f"[mlm] {out.name} ...", file=sys.stderr, flush=True)
    return pretrain(
        PretrainConfig.model_validate(
            {
                "output": str(out),
                "model": {"name_or_path": encoder},
                "data": {"train": text_files, "max_length": 128, "eval_fraction": 0.02, "max_eval_sequences": 400},
                "objective": {"whole_word_mask": True, "sentence_task": "none"},
                "train": {
                    "max_steps": args.mlm_steps,
                    "batch_size": 32,
                    "lr": 1e-4,
                    "precision": "bf16",
                    "eval_steps": None,
                    "save_steps": None,
                    "head_warmup_steps": 30,
                    "warmup_ratio": 0.06,
                },
            }
        ),
        overwrite=True,
        show_progress=False,
    )


def zero_shot(encoder: str, pair: dict, out: Path, args, ceiling: bool = False) -> dict:
    """English (or, for the ceiling, target-language) labels -> scores on English and target dev."""
    from bertx.config import TransferConfig, load_config
    from bertx.recipes.transfer import transfer

    overrides = [f"data_dir={args.data_dir}", f"output={out}", f"model.name_or_path={encoder}"]
    if args.quick:
        overrides += ["data.max_train_examples=1000", "train.epochs=1"]
    config = load_config(ROOT / pair["config"], overrides, schema=TransferConfig)
    config.methods = ["plain"]
    if ceiling:  # translate-train: the source is the target language's own labelled training set
        config.sources[0].train = f"{args.data_dir}/{pair['ceiling']}"
    summary = transfer(config, show_progress=False)
    values, columns = summary["methods"]["plain"]["values"][0], summary["columns"]
    return {"en": values[columns.index("en")], pair["target"]: values[columns.index(pair["target"])]}


def run_pair(name: str, args, work: Path) -> dict:
    from bertx.models.encoder import resolve_model_path
    from bertx.recipes.vocab import extend_vocab

    pair = PAIRS[name]
    data = Path(args.data_dir)
    text = str(data / pair["text"])
    english = str(data / "wikitext2/wiki.train.tokens")
    texts = [
        {"path": english, "documents": "wikitext", "language": "en", "weight": args.english_weight},
        {"path": text, "documents": pair["documents"], "language": name},
    ]
    minilm = resolve_model_path(None)
    rows, extended = {}, {}
    parallel = aligned_sst2(data, work) if name == "pt" else parallel_de(data, work)
    for init in ("mean", "random", "aligned"):
        folder = work / f"minilm-{name}-{init}"
        if not (folder / "vocab_report.json").is_file():
            extend_vocab(
                minilm,
                [text],
                args.add,
                str(folder),
                init=init,
                reference=[english],
                documents=pair["documents"],
                overwrite=True,
                parallel=parallel if init == "aligned" else None,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
        extended[init] = json.loads((folder / "vocab_report.json").read_text())
    encoders = {  # the cheap rows first: the initialisations alone, then the MLM rows
        "as-is": (minilm, None),
        "extend-aligned-0": (str(work / f"minilm-{name}-aligned"), None),
        "extend-mean-0": (str(work / f"minilm-{name}-mean"), None),
        "extend-aligned": (str(work / f"minilm-{name}-aligned"), work / f"mlm-{name}-aligned"),
        "mlm": (minilm, work / f"mlm-{name}-plain"),
        "extend-mean": (str(work / f"minilm-{name}-mean"), work / f"mlm-{name}-mean"),
        "extend-random": (str(work / f"minilm-{name}-random"), work / f"mlm-{name}-random"),
    }
    if args.rows:
        encoders = {row: encoders[row] for row in args.rows.split(",") if row in encoders}
    for row, (start, mlm_out) in encoders.items():
        started = time.perf_counter()
        pretraining = mlm(start, texts, mlm_out, args) if mlm_out else None
        encoder = str(mlm_out) if mlm_out else start
        scores = zero_shot(encoder, pair, work / f"transfer-{name}-{row}", args)
        rows[row] = {
            "scores": scores,
            "mlm": {k: v for k, v in (pretraining or {}).items() if k.startswith("mlm_accuracy")} or None,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"[{name}] {row}: {scores}  mlm={rows[row]['mlm']}", file=sys.stderr, flush=True)
    if pair["ceiling"] and not args.rows:
        rows["translate-train (not zero-shot)"] = {"scores": zero_shot(minilm, pair, work / f"transfer-{name}-ceiling", args, ceiling=True)}
    base = rows["as-is"]["scores"]
    best = max((r for r in rows if r.startswith(("mlm", "extend"))), key=lambda r: rows[r]["scores"][pair["target"]])
    compared = "extend-mean" in rows and "extend-random" in rows
    target_gain = {"pt": 10.0, "de": 5.0}[name]
    return {
        "rows": rows,
        "vocab": {
            init: {k: report.get(k) for k in ("added", "initialised_from_old_pieces", "initialised_from_translations", "tokens_per_word", "seconds")}
            for init, report in extended.items()
        },
        "parallel_pairs": sum(1 for _ in open(parallel[0], encoding="utf-8")),
        "best": best,
        "gain": round(rows[best]["scores"][pair["target"]] - base[pair["target"]], 2),
        "english_change": round(rows[best]["scores"]["en"] - base["en"], 2),
        "mean_beats_random": (rows["extend-mean"]["scores"][pair["target"]] > rows["extend-random"]["scores"][pair["target"]]) if compared else None,
        "target_gain": target_gain,
        "met": rows[best]["scores"][pair["target"]] - base[pair["target"]] >= target_gain and rows[best]["scores"]["en"] - base["en"] >= -1.0,
    }


def table(result: dict) -> str:
    lines = []
    for name, pair in result["pairs"].items():
        target = PAIRS[name]["target"]
        lines += [f"\n{name}: zero-shot from English", f"| row | en | {target} | MLM acc (en / {target}) |", "|---|---:|---:|---|"]
        for row, r in pair["rows"].items():
            accuracy = r.get("mlm") or {}
            shown = " / ".join(f"{100 * accuracy[k]:.1f}" for k in ("mlm_accuracy_en", f"mlm_accuracy_{name}") if k in accuracy) or "-"
            lines.append(f"| {row} | {r['scores']['en']:.2f} | {r['scores'][target]:.2f} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 MLM steps, 1,000 training examples, 1 epoch, --add 1000.")
    parser.add_argument("--pairs", default="pt,de")
    parser.add_argument("--add", type=int, default=None, help="Pieces added (default 5000; quick 1000).")
    parser.add_argument("--mlm-steps", type=int, default=None, help="Continued MLM steps per row (default 400; quick 40).")
    parser.add_argument("--rows", default=None, help="Only these rows (comma-separated; as-is is always needed).")
    parser.add_argument("--english-weight", type=float, default=0.5, help="Sampling weight of the English text.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-crosslingual-vocab")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    args.add = args.add or (1000 if args.quick else 5000)
    args.mlm_steps = args.mlm_steps or (40 if args.quick else 400)
    if not (Path(args.data_dir) / "sst2-pt/dev.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/sst2-pt not found (pass --data-dir)")
    work = Path(args.work) / ("quick" if args.quick else "full")
    started = time.perf_counter()
    result = {
        "benchmark": "crosslingual_vocab",
        "quick": args.quick,
        "add": args.add,
        "mlm_steps": args.mlm_steps,
        "english_weight": args.english_weight,
        "pairs": {},
    }
    for name in [p for p in args.pairs.split(",") if p]:
        result["pairs"][name] = run_pair(name, args, work)
    result.update(
        wall_s=round(time.perf_counter() - started, 1), machine=machine(), device_run="not run: no device machine was lent to this session (CPU only)"
    )
    save(args.name or ("crosslingual_vocab_quick" if args.quick else "crosslingual_vocab"), result)
    print(table(result), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
