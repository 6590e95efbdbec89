"""The Accelerator every recipe runs on: one CPU, one GPU, or many processes, with the run's precision."""

from __future__ import annotations

import os
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_bf16() -> str | None:
    """Why bf16 autocast is fast here (the hardware that runs it natively), or None."""
    if torch.cuda.is_available():
        return "GPU with bf16" if torch.cuda.is_bf16_supported() else None
    flags = cpu_flags()
    for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16")):
        if flag in flags:
            return name
    return None


def resolve_precision(precision: str) -> str:
    """The precision a run uses: `auto` becomes bf16 where the hardware runs it fast, fp32 elsewhere
    ($BERTX_PRECISION, when set, decides `auto` instead: tests pin it so that results agree across machines)."""
    if precision != "auto":
        return precision
    forced = os.environ.get("BERTX_PRECISION")
    if forced:
        if forced not in ("fp32", "bf16", "fp16"):
            from bertx.errors import BertxError

            raise BertxError(f"BERTX_PRECISION={forced!r}: choose fp32, bf16 or fp16")
        return forced
    return "bf16" if fast_bf16() else "fp32"


def make_accelerator(precision: str, find_unused_parameters: bool = False, report_to: list[str] | None = None, out: str | None = None):
    """An `Accelerator` for this run's precision ("auto", "fp32", "bf16", "fp16"; see `resolve_precision`).

    `report_to` names Accelerate trackers (tensorboard, mlflow) that log into the run's folder `out`
    (`bertx/training/trackers.py`). `find_unused_parameters` tells data parallelism that a step may leave some weights without a
    gradient (a multi-task step trains one task's head; the other heads sit idle).

    Accelerate keeps its state in a process-wide singleton and refuses a second Accelerator with
    another precision; a script or notebook that pretrains in bf16 and then fine-tunes in fp32 would
    fail. The precision part of that state is reset here (the process group, if any, is kept).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    precision = resolve_precision(precision)
    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True without a GPU: under torchrun / accelerate launch that makes Accelerate start a gloo
    # process group on the CPU instead of running N unrelated single-process jobs.
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    from bertx.training.trackers import accelerator_options

    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision="no" if precision == "fp32" else precision,
        kwargs_handlers=handlers,
        **accelerator_options(report_to or [], out),
    )
