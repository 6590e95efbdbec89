"""The Accelerator every recipe runs on: one CPU, one GPU, or many processes, with the run's precision."""

from __future__ import annotations

import torch


def make_accelerator(precision: str, find_unused_parameters: bool = False):
    """An `Accelerator` for this run's precision ("fp32", "bf16", "fp16").

    `find_unused_parameters` tells data parallelism that a step may leave some weights without a
    gradient (a multi-task step trains one task's head; the other heads sit idle).

    Accelerate keeps its state in a process-wide singleton and refuses a second Accelerator with
    another precision; a script or notebook that pretrains in bf16 and then fine-tunes in fp32 would
    fail. The precision part of that state is reset here (the process group, if any, is kept).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True without a GPU: under torchrun / accelerate launch that makes Accelerate start a gloo
    # process group on the CPU instead of running N unrelated single-process jobs.
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no" if precision == "fp32" else precision,
                       kwargs_handlers=handlers)
