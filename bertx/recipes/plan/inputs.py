"""The plan's inputs: the files every stage reads, after the draws the plan config asks for.

    train --(labelled: N, seeded)--> profile/data/train.*   the rest --(unlabelled_rest)--> profile/data/rest.*
    held out for the report (`report`): the `test:` file, read only once the plan has shipped; else a seeded
        `report_fraction` of the dev file, or of the labelled examples when there is no dev file. No stage,
        no checkpoint choice and no student choice ever sees it, so the scores the plan reports are not those
        of the split that picked the winner.
    no dev file --(dev_fraction of what is left, seeded)--> profile/data/dev.*   (the decisions' split)
    NER's rest as plain sentences (profile/data/rest-sentences.txt): what domain-adaptive pretraining reads

Each draw is written in the source file's own format, once; a rerun finds it and reads the same files.
"""

from __future__ import annotations

from pathlib import Path

from bertx import runfolder
from bertx.config.plan import PlanConfig
from bertx.data.draws import read_records, split_records, write_records
from bertx.errors import BertxError
from bertx.data.hf_datasets import local_file

REPORT_TEST = "test file"
REPORT_DEV_SHARE = "held-out share of the dev file"
REPORT_LABELLED_SHARE = "held-out share of the labelled examples"
REPORT_DEV = "dev (the split that chose checkpoints and students: optimistic)"


def read_task_file(config: PlanConfig, path: str) -> list:
    """A labelled file read as the plan's task reads it (examples, tagged sentences or questions); every
    problem is one line naming this file and its line."""
    if config.task == "ner":
        from bertx.data.conll import read_tagged

        sentences = read_tagged(path)
        if not sentences:
            raise BertxError(f"{path}: no sentences")
        return sentences
    if config.task == "qa":
        from bertx.data.squad import read_qa

        return read_qa(path)
    from bertx.data.examples import read_examples
    from bertx.tasks import get_task

    data = config.data
    return read_examples(path, get_task(config.task), data.text_column, data.text_pair_column, data.label_column, data.label_separator)[0]


def _checked_files(config: PlanConfig) -> tuple:
    """(train, dev, test, unlabelled): each found, and the user's train and dev files read through the task's own
    reader, so that an error names the user's file and line, never the draws' copies. The test file is only
    checked to exist."""
    train = local_file(config.resolve(config.train))
    dev = local_file(config.resolve(config.dev)) if config.dev else None
    test = config.resolve(config.test) if config.test else None
    unlabelled = [local_file(config.resolve(p)) for p in config.unlabelled]
    for role, path in [("train", train), ("dev", dev), ("test", test)] + [("unlabelled", p) for p in unlabelled]:
        if path and not Path(path).is_file():
            raise BertxError(f"plan {role} file {path}: file not found")
    for path in (train, dev):
        if path:
            read_task_file(config, path)
    return train, dev, test, unlabelled


def _unlabelled_rest(config: PlanConfig, rest: list, header, data: Path, suffix: str) -> str:
    """The labelled examples not drawn, as unlabelled text (all, or `unlabelled_rest` of them, a seeded draw);
    NER's as plain sentences."""
    tagged = config.task == "ner"
    keep = len(rest) if config.unlabelled_rest is True else min(len(rest), int(config.unlabelled_rest))
    rest = split_records(rest, keep, config.seed + 1)[0]
    rest_file = write_records(data / f"rest{'-tagged' if tagged else ''}{suffix}", header, rest, tagged)
    return str(_plain_sentences(rest_file, data / "rest-sentences.txt") if tagged else rest_file)


def prepare_inputs(config: PlanConfig, folder: Path) -> dict:
    """Resolve and check the plan's files; write the draws under `folder`. Returns the files and the draws made.
    The test file is checked to exist, never opened: it is read once, after the plan ships."""
    train, dev, test, unlabelled = _checked_files(config)
    tagged = config.task == "ner"
    suffix = Path(train).suffix
    notes: dict = {"source_train": train}
    if config.task == "qa" and (config.labelled or not dev):
        raise BertxError("plan: QA needs a dev file and takes the training file whole (no `labelled:` draw)")
    data = folder / "data"
    report, role = (test, REPORT_TEST) if test else (dev, REPORT_DEV)
    if dev and not test and config.task != "qa":  # SQuAD articles are not split: QA reports on dev, said so
        header, records = read_records(dev, tagged)
        held, kept = _held_out(records, config.report_fraction, config.seed + 3)
        if held:
            report, role = str(write_records(data / f"report{suffix}", header, held, tagged)), REPORT_DEV_SHARE
            dev = str(write_records(data / f"dev{suffix}", header, kept, tagged))
            notes["report_split"] = {"report": len(held), "dev": len(kept), "of": "dev"}
    if config.labelled or not dev:
        header, records = read_records(train, tagged)
        if config.labelled:
            if config.labelled >= len(records):
                raise BertxError(f"plan labelled: {config.labelled}: {train} holds only {len(records)} examples")
            records, rest = split_records(records, config.labelled, config.seed)
            notes["labelled"] = {"drawn": len(records), "of": len(records) + len(rest), "seed": config.seed}
            if config.unlabelled_rest:
                unlabelled.append(_unlabelled_rest(config, rest, header, data, suffix))
                notes["unlabelled_rest"] = min(len(rest), len(rest) if config.unlabelled_rest is True else int(config.unlabelled_rest))
        if not dev:
            if not test:
                held, records = _held_out(records, config.report_fraction, config.seed + 3)
                report, role = str(write_records(data / f"report{suffix}", header, held, tagged)), REPORT_LABELLED_SHARE
                notes["report_split"] = {"report": len(held), "of": "labelled"}
            held = max(1, round(config.dev_fraction * len(records)))
            dev_records, records = split_records(records, held, config.seed + 2)
            dev = str(write_records(data / f"dev{suffix}", header, dev_records, tagged))
            notes["dev_split"] = {"dev": len(dev_records), "train": len(records), "fraction": config.dev_fraction}
        train = str(write_records(data / f"train{suffix}", header, records, tagged))
    sources = [
        p
        for p in (config.resolve(config.train), config.resolve(config.dev) if config.dev else None, *(config.resolve(p) for p in config.unlabelled))
        if p
    ]
    return {
        "train": train,
        "dev": dev,
        "unlabelled": unlabelled,
        "report": report,
        "report_role": role,
        "draws": notes,
        "fingerprints": {str(p): fingerprint(p) for p in sources},
    }


def fingerprint(path: str) -> dict:
    """Size, modification time and a digest of a file the plan read: a rerun checks its inputs did not change."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stat = Path(path).stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def check_unchanged(inputs: dict) -> None:
    """A rerun continues only on the files its finished stages were trained on: one line names a file that
    changed (the plan's draws of it are stale) and how to start again."""
    for path, before in (inputs.get("fingerprints") or {}).items():
        if not Path(path).is_file():
            raise BertxError(f"{path}: this plan read it, and it is gone; restore it, or pass --overwrite to start the plan again")
        stat = Path(path).stat()
        if (stat.st_size, stat.st_mtime_ns) == (before["size"], before["mtime_ns"]):
            continue
        if fingerprint(path)["sha256"] != before["sha256"]:
            raise BertxError(
                f"{path}: changed since this plan read it (the finished stages trained on the old version); "
                "pass --overwrite to start the plan again on the new file, or restore it"
            )


def _held_out(records: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(held out, kept): a seeded `fraction` of the records (at least one, and one left), or none at fraction 0."""
    if fraction <= 0 or len(records) < 3:
        return [], records
    count = min(len(records) - 2, max(1, round(fraction * len(records))))
    return split_records(records, count, seed)


def _plain_sentences(tagged_file: Path, target: Path) -> Path:
    """A tagged file's sentences as plain text, one per line (domain-adaptive pretraining reads lines)."""
    from bertx.data.conll import read_tagged

    sentences = read_tagged(tagged_file, require_tags=False)
    return runfolder.write_text(target, "".join(" ".join(s.words) + "\n" for s in sentences if s.words))
