"""`bertx report`: one self-contained HTML page for any run folder (figures inlined; no network needed).

run folder -> bertx_run.yaml (the config) + log.jsonl (learning curves, dev metrics over steps)
-> a model on a dev file: predictions scored per kind
     classification / pairs  confusion matrix, per-class precision / recall / F1, the 20 most
                             confident mistakes with their text
     regression              predicted against gold scores, the 20 largest errors
     NER                     per-type table, sentences with mistaken spans
     QA                      EM / F1, the 20 worst answers
-> figures and Markdown tables the run already wrote (multi-task, distillation, transfer, rank)
-> report.html
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import yaml

from bertx.errors import BertxError
from bertx import runfolder

MISTAKES = 20


def figure_tag(fig, alt: str) -> str:
    """A matplotlib figure as an inlined PNG."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(header: list[str], rows: list[list]) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def read_log(folder: Path) -> list[dict]:
    path = folder / "log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return records


def curves(records: list[dict]) -> str:
    """Training loss and learning rate, and every numeric dev metric, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = []
    train = [r for r in records if r.get("event") == "train" and "loss" in r]
    if train:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
        left.plot([r["step"] for r in train], [r["loss"] for r in train])
        left.set(title="training loss", xlabel="step")
        if any("lr" in r for r in train):
            right.plot([r["step"] for r in train if "lr" in r], [r["lr"] for r in train if "lr" in r], color="tab:orange")
        right.set(title="learning rate", xlabel="step")
        parts.append(figure_tag(fig, "learning curves"))
    evals = [r for r in records if r.get("event") == "eval"]
    names = sorted(
        {
            k
            for r in evals
            for k, v in r.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and k not in ("step", "time", "epoch")
            and "loss" not in k
            and not k.endswith("_s")
        }
    )
    if evals and names:
        fig, axis = plt.subplots(figsize=(10, 3.2))
        for name in names[:8]:
            points = [(r["step"], r[name]) for r in evals if name in r]
            axis.plot(*zip(*points), marker="o", label=name)
        axis.set(title="dev metrics", xlabel="step")
        axis.legend(fontsize=8)
        parts.append(figure_tag(fig, "dev metrics over steps"))
        parts.append(table(["step", *names], [[r["step"], *[r.get(n, "") for n in names]] for r in evals]))
    return "".join(parts) or "<p>No training log in this folder.</p>"


def sequence_section(trained, dev: str, limit: int | None) -> str:
    import matplotlib.pyplot as plt

    from bertx.data.examples import Columns
    from bertx.data.splits import encode_split
    from bertx.models.batched_outputs import model_outputs

    found = trained.run.get("columns") or {}
    columns = Columns(found["text"], found.get("text_pair"), found.get("label") or trained.data.label_column) if found.get("text") else None
    examples, features, _ = encode_split(
        dev, trained.task, trained.tokenizer, trained.data.max_length, trained.label2id, columns=columns, limit=limit
    )
    logits = model_outputs(trained.model, features, trained.pad_id, 64, autocast_dtype=trained.autocast_dtype)
    gold = np.asarray(features.labels)
    texts = [ex.text + (f" ||| {ex.text_pair}" if ex.text_pair else "") for ex in examples]
    if trained.task.label_kind == "score":
        pred = logits.reshape(-1)
        fig, axis = plt.subplots(figsize=(4.5, 4.5))
        axis.scatter(gold, pred, s=6, alpha=0.5)
        axis.set(xlabel="gold", ylabel="predicted", title="predicted against gold")
        worst = np.argsort(-np.abs(pred - gold))[:MISTAKES]
        return (
            figure_tag(fig, "predicted against gold")
            + "<h3>Largest errors</h3>"
            + table(["gold", "predicted", "text"], [[float(gold[i]), float(pred[i]), texts[i]] for i in worst])
        )
    if trained.task.label_kind != "class":
        return "<p>Multi-label runs: see the metrics above.</p>"
    labels = [trained.model.config.id2label[i] for i in range(trained.model.config.num_labels)]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    matrix = confusion_matrix(gold, pred, labels=list(range(len(labels))))
    fig, axis = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2))
    axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    axis.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted",
        ylabel="gold",
        title="confusion matrix",
    )
    precision, recall, f1, support = precision_recall_fscore_support(gold, pred, labels=list(range(len(labels))), zero_division=0)
    per_class = table(
        ["class", "precision", "recall", "F1", "support"],
        [[labels[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i])] for i in range(len(labels))],
    )
    wrong = np.flatnonzero(pred != gold)
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:MISTAKES]
    mistakes = table(
        ["gold", "predicted", "confidence", "text"], [[labels[gold[i]], labels[pred[i]], float(probs[i, pred[i]]), texts[i]] for i in worst]
    )
    return figure_tag(fig, "confusion matrix") + "<h3>Per class</h3>" + per_class + f"<h3>The {len(worst)} most confident mistakes</h3>" + mistakes


def ner_section(trained, dev: str, limit: int | None) -> str:
    from bertx.tasks.bio import decode_tags

    evalset = trained.kind.load_eval(dev, trained.data, trained.tokenizer, trained.label2id, trained.run, limit)
    labels = [trained.model.config.id2label[i] for i in range(trained.model.config.num_labels)]
    logits = trained.kind.word_logits(trained.model, evalset.extra, trained.pad_id, autocast_dtype=trained.autocast_dtype)
    pred = [decode_tags(x, labels, trained.data.tag_decoding) for x in logits]
    from bertx.metrics.tagging import tagging_metrics

    metrics = tagging_metrics(evalset.gold, pred)
    per_type = table(
        ["type", "precision", "recall", "F1", "support"],
        [[t, r["precision"], r["recall"], r["f1"], r["support"]] for t, r in metrics["per_type"].items()],
    )
    sentences, _ = trained.kind.read(dev, trained.data, limit)
    rows = []
    for sentence, gold, guess in zip(sentences, evalset.gold, pred):
        if list(gold) != list(guess):
            marked = " ".join(w if g == p else f"[{w}: {g}→{p}]" for w, g, p in zip(sentence.words, gold, guess))
            rows.append([marked])
        if len(rows) >= MISTAKES:
            break
    return (
        f"<p>entity F1 {metrics['f1']:.4f}, precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}</p>"
        + "<h3>Per type</h3>"
        + per_type
        + f"<h3>Sentences with mistaken tags (first {len(rows)})</h3>"
        + table(["words, [word: gold→predicted] where they differ"], rows)
    )


def qa_section(trained, dev: str, limit: int | None) -> str:
    from bertx.metrics.squad import exact_match, f1

    dev_articles = trained.data.dev_articles if Path(dev).resolve() == Path((trained.run.get("data") or {}).get("dev") or "").resolve() else None
    evalset = trained.kind.load_eval(dev, trained.data, trained.tokenizer, trained.label2id, trained.run, limit, dev_articles)
    qa, examples = evalset.extra
    found = trained.kind.answers(
        trained.model, qa, examples, trained.pad_id, None, 64, trained.autocast_dtype, trained.data.n_best, trained.data.max_answer_length
    )
    scored = []
    for example, answer, golds in zip(examples, found, evalset.gold):
        best_f1 = max(f1(answer["answer"], g) for g in golds) if golds else 0.0
        best_em = max(exact_match(answer["answer"], g) for g in golds) if golds else 0.0
        scored.append((best_f1, best_em, getattr(example, "question", ""), answer["answer"], " | ".join(golds)))
    em = float(np.mean([s[1] for s in scored])) if scored else 0.0
    mean_f1 = float(np.mean([s[0] for s in scored])) if scored else 0.0
    worst = sorted(scored, key=lambda s: s[0])[:MISTAKES]
    return f"<p>EM {100 * em:.2f}, F1 {100 * mean_f1:.2f} over {len(scored)} questions</p><h3>The worst answers</h3>" + table(
        ["F1", "question", "predicted", "gold"], [[s[0], s[2], s[3], s[4]] for s in worst]
    )


def run_figures(folder: Path) -> str:
    """PNG figures and Markdown tables the run itself wrote (matrices, reports, rankings)."""
    parts = []
    for path in sorted(folder.glob("*.png")):
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<h3>{html.escape(path.name)}</h3><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">')
    for path in sorted(folder.glob("*.md")):
        # A table someone else put in the folder may be in any encoding: shown with the bad bytes replaced.
        text = path.read_bytes().decode("utf-8", errors="replace")
        parts.append(f"<h3>{html.escape(path.name)}</h3><pre>{html.escape(text)}</pre>")
    return "".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5em 0}pre{background:#f7f7f7;padding:.7em;overflow:auto;font-size:12px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px}h3{font-size:15px}"""


def report(folder: str | Path, output: str | Path | None = None, dev: str | None = None, limit: int | None = 2000, warn=lambda line: None) -> Path:
    """Write the HTML report of the run in `folder` (default `folder/report.html`); returns its path.

    `warn` receives a line for each section left out for want of data (the run's dev file moved or gone)."""
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(folder)
    if not folder.is_dir():
        raise BertxError(f"{folder}: run folder not found")
    run = runfolder.read_run_config(folder)
    if not run and not (folder / "log.jsonl").is_file():
        raise BertxError(f"{folder}: not a bertx run folder (no {runfolder.RUN_FILE} or log.jsonl)")
    sections = [f"<h1>bertx run: {html.escape(str(folder))}</h1>"]
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        final = json.loads(metrics_file.read_text(encoding="utf-8"))
        flat = [[k, v] for k, v in final.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        sections.append("<h2>Final metrics</h2>" + table(["metric", "value"], flat))
    sections.append("<h2>Training</h2>" + curves(read_log(folder)))
    given_dev = dev
    dev = dev or ((run or {}).get("data") or {}).get("dev")
    has_model = (folder / "config.json").is_file() and run and run.get("task")
    if has_model and dev and not Path(dev).is_file():
        if given_dev:
            raise BertxError(f"{dev}: --dev file not found")
        warn(f"warning: the run's dev file {dev} is not there; the report has no predictions section (pass --dev FILE)")
    elif has_model and not dev:
        warn("warning: the run has no dev file; the report has no predictions section (pass --dev FILE)")
    if has_model and dev and Path(dev).is_file():
        from bertx.inference.loading import load_trained

        trained = load_trained(folder)
        kind = trained.task.label_kind
        section = ner_section if kind == "tags" else qa_section if kind == "span" else sequence_section
        sections.append(f"<h2>Predictions on {html.escape(dev)}</h2>" + section(trained, dev, limit))
    figures = run_figures(folder)
    if figures:
        sections.append("<h2>Figures and tables of the run</h2>" + figures)
    if run:
        sections.append("<h2>Config</h2><pre>" + html.escape(yaml.safe_dump(run, sort_keys=False)) + "</pre>")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bertx report: {html.escape(folder.name)}'
        f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
    target = Path(output) if output else folder / "report.html"
    reads = [p for p in folder.iterdir() if p.name != "report.html"] + ([Path(dev)] if dev else [])
    with runfolder.output_file(target, reads=reads) as handle:
        handle.write(page)
    return target
