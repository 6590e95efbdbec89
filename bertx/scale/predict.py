"""`bertx predict --engine ray`: a corpus of many files predicted by a pool of Ray actors.

    files and globs -> shards (corpus.py) -> Ray Data: `map_batches` over a fixed pool of ShardWorker
    actors (one model load each, actors x threads = the cluster's cores) -> OUTPUT/part-F-S.{jsonl,parquet}
    -> progress.jsonl (one line per finished shard) -> manifest.json and bad_rows.jsonl at the end

The output folder is bertx's: `bertx_run.yaml` records the settings (model, inputs with their sizes and
times, shard size, format). A rerun with the same settings does only the shards progress.jsonl does not
list (a killed job loses at most the shards in flight); other settings are refused unless --overwrite,
which replaces only an earlier corpus-prediction folder. Bad rows are skipped and listed; more than
`max_bad_rows` stops the job, and a rerun with a higher limit continues it.

The model, the inputs and the output folder must be reachable at the same paths from every node (one
machine, or a shared filesystem).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bertx.errors import BertxError
from bertx.inference.predict_file import CHUNK_LINES
from bertx.runfolder import (
    RUN_FILE,
    FolderLock,
    check_deletable,
    check_not_read,
    check_writable_target,
    empty_folder,
    folder_kind,
    make_folder,
    read_run_config,
    write_json,
    write_run_config,
    write_text,
)
from bertx.scale.cluster import connected, split_cores
from bertx.scale.corpus import Shard, expand_inputs, plan_shards
from bertx.scale.shard_worker import Reading, ShardWorker

KIND = "corpus predictions"
PROGRESS = "progress.jsonl"
OUTPUT_FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class CorpusJob:
    model: str
    inputs: list[str]
    output: str
    output_format: str = "jsonl"
    shard_rows: int = CHUNK_LINES  # the single-process chunks: the same batches, the same predictions
    batch_size: int = 128
    bf16: bool = False
    max_bad_rows: int = 100
    address: Optional[str] = None
    workers: Optional[int] = None
    overwrite: bool = False


def predict_corpus(job: CorpusJob, log: Callable[[str], None] = lambda line: None) -> dict:
    """Run the job (or the part of it not done yet); returns the manifest."""
    if job.output_format not in OUTPUT_FORMATS:
        raise BertxError(f"--output-format {job.output_format!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    if job.shard_rows < 1:
        raise BertxError(f"--shard-rows {job.shard_rows}: give at least 1")
    files = expand_inputs(job.inputs)
    out = Path(job.output)
    check_not_read(out, [job.model, *[f.path for f in files]])
    settings = {
        "model": str(Path(job.model).resolve()),
        "inputs": [[str(Path(f.path).resolve()), f.size, f.mtime_ns] for f in files],
        "shard_rows": job.shard_rows,
        "output_format": job.output_format,
        "batch_size": job.batch_size,
        "bf16": job.bf16,
    }
    check_writable_target(out)
    # The driver checks the model folder's task and every file's columns before Ray starts (from the
    # configs: the weights load in the actors only), and before the folder is touched: one error line, not a
    # million bad rows, and a corrected command finds the folder as it was.
    reading = Reading(job.model)
    shards = plan_shards(files, job.shard_rows)
    for path, fmt in dict.fromkeys((s.path, s.format) for s in shards):
        reading.columns(path, fmt)
    make_folder(out)
    lock = FolderLock(out).acquire()  # before anything in the folder is judged or replaced: one job per folder
    try:
        _claim(out, settings, job.overwrite)
        done = _done_shards(out, job.output_format)
        todo = [s for s in shards if s.name not in done]
        log(f"{len(shards)} shards in {len(files)} file(s); {len(shards) - len(todo)} done before, {len(todo)} to do")
        started = time.perf_counter()
        if todo:
            _run_on_ray(job, out, todo, done, log)
        _check_inputs_unchanged(files)
        return _finish(job, out, shards, done, files, time.perf_counter() - started)
    finally:
        lock.release()


def _claim(out: Path, settings: dict, overwrite: bool) -> None:
    """Make `out` this job's folder: new, empty, or an earlier run of the same job (resumed)."""
    found = folder_kind(out)
    if found is not None:
        earlier = (read_run_config(out) or {}).get("corpus") if found == KIND else None
        if earlier == settings and not overwrite:
            pass  # the same job: continue it
        elif not overwrite:
            what = "an earlier corpus prediction with other settings" if found == KIND else f"a bertx {found} folder"
            if found == "foreign":
                what = "files that are not bertx's"
            changed = _changed_inputs(earlier, settings) if found == KIND else []
            if changed:
                what = f"a corpus prediction of {changed[0]} as it was before it changed"
            raise BertxError(f"{out}: holds {what}; choose another --output or pass --overwrite")
        else:
            check_deletable(out, kind=KIND)
            empty_folder(out)  # the lock stays
    if not (out / RUN_FILE).is_file() or (read_run_config(out) or {}).get("corpus") != settings:
        write_run_config(out, {"written_as": KIND, "corpus": settings})


def _changed_inputs(earlier: dict | None, settings: dict) -> list[str]:
    """Inputs of the same job whose size or modification time differ from what it recorded."""
    if not earlier or {k: v for k, v in earlier.items() if k != "inputs"} != {k: v for k, v in settings.items() if k != "inputs"}:
        return []
    before = {path: (size, mtime) for path, size, mtime in earlier.get("inputs", [])}
    return [path for path, size, mtime in settings["inputs"] if path in before and before[path] != (size, mtime)]


def _check_inputs_unchanged(files) -> None:
    """Every input still has the size and time it had when the shards were planned: rows read from a file
    that changed meanwhile are not one file's predictions."""
    for f in files:
        try:
            stat = os.stat(f.path)
        except OSError:
            raise BertxError(f"{f.path}: disappeared while the job ran; rerun once the inputs are final") from None
        if (stat.st_size, stat.st_mtime_ns) != (f.size, f.mtime_ns):
            raise BertxError(
                f"{f.path}: changed while the job ran ({f.size:,} -> {stat.st_size:,} bytes); its predictions are "
                "not of one file: rerun with --overwrite once the file is final"
            )


def _done_shards(out: Path, output_format: str) -> dict[str, dict]:
    """Shards a previous run finished: listed in progress.jsonl with their file present at its recorded size
    (a line torn by a kill is ignored; its shard is done again)."""
    done = {}
    progress = out / PROGRESS
    if not progress.is_file():
        return done
    for line in progress.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "error" in entry or not isinstance(entry.get("name"), str):
            continue
        part = out / f"{entry['name']}.{output_format}"
        if part.is_file() and part.stat().st_size == entry.get("bytes"):
            done[entry["name"]] = entry
    return done


def _run_on_ray(job: CorpusJob, out: Path, todo: list[Shard], done: dict, log: Callable[[str], None]) -> None:
    with connected(job.address) as cpus:
        pool = split_cores(cpus, job.workers)
        log(f"Ray: {cpus} CPUs -> {pool.workers} workers x {pool.threads} thread(s)")
        import ray.data

        shards = ray.data.from_items([s.describe() for s in todo], override_num_blocks=len(todo))
        results = shards.map_batches(
            # One shard in flight per actor: shards are long, so no actor idles, and none holds a queue of
            # shards while another finishes early.
            ShardWorker,
            batch_size=1,
            num_cpus=pool.threads,
            compute=ray.data.ActorPoolStrategy(size=min(pool.workers, len(todo)), max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs={
                "model_dir": job.model,
                "output": str(out),
                "output_format": job.output_format,
                "batch_size": job.batch_size,
                "bf16": job.bf16,
                "threads": pool.threads,
            },
        )
        bad = sum(len(e["bad"]) for e in done.values())
        rows, started, last = 0, time.perf_counter(), 0.0
        with open(out / PROGRESS, "a", encoding="utf-8") as progress:
            for item in _worker_errors_as_one_line(results.iter_rows()):
                entry = json.loads(item["result"])
                if "error" in entry:
                    raise BertxError(entry["error"])
                _record(progress, entry)
                done[entry["name"]] = entry
                bad += len(entry["bad"])
                rows += entry["predictions"] + len(entry["bad"])
                if bad > job.max_bad_rows:
                    first = next(b for e in done.values() for b in e["bad"])
                    raise BertxError(
                        f"{bad} bad rows, more than --max-bad-rows {job.max_bad_rows} (first: {first['input']}:"
                        f"{first['row']}: {first['problem']}); the finished shards are kept: rerun with a higher "
                        "--max-bad-rows to continue"
                    )
                now = time.perf_counter()
                if now - last > 10:
                    last = now
                    log(f"{len(done)} shards done, {rows / (now - started):,.0f} rows/s")


def _worker_errors_as_one_line(rows):
    """Ray wraps an actor's failure (a model that does not load there, a full disk) in its own exception
    with the remote traceback; the user gets the actor's last line."""
    try:
        yield from rows
    except Exception as err:  # Ray's RayTaskError / ActorDiedError and their kin
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in reversed(lines) if "Error" in line.split(":")[0]), lines[-1] if lines else type(err).__name__)
        raise BertxError(f"a Ray worker failed: {detail[:300]}") from None


def _record(progress, entry: dict) -> None:
    progress.write(json.dumps(entry, ensure_ascii=False) + "\n")
    progress.flush()
    os.fsync(progress.fileno())  # a shard is done once its line is on disk


def _finish(job: CorpusJob, out: Path, shards: list[Shard], done: dict, files, seconds: float) -> dict:
    entries = [done[s.name] for s in shards]
    bad = [b for e in entries for b in e["bad"]]
    manifest = {
        "kind": KIND,
        "model": str(Path(job.model).resolve()),
        "format": job.output_format,
        "shard_rows": job.shard_rows,
        "inputs": [{"path": f.path, "format": f.format, "bytes": f.size} for f in files],
        "predictions": sum(e["predictions"] for e in entries),
        "bad_rows": len(bad),
        "seconds": round(seconds, 2),
        "shards": [
            {
                "file": f"{e['name']}.{job.output_format}",
                **{k: e[k] for k in ("input", "first", "count", "predictions", "bytes", "sha256")},
                "bad_rows": len(e["bad"]),
            }
            for e in entries
        ],
    }
    write_text(out / "bad_rows.jsonl", "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bad))
    write_json(out / "manifest.json", manifest)
    return manifest
