"""The Ray cluster a job runs on: the one place bertx imports Ray.

A job joins the cluster at `address` (`auto`: the one `ray start` runs on this machine;
`ray://HOST:PORT`: a remote head) or, with no address, starts a private one on this machine with
every core and stops it when the job ends. Workers split the cores Ray offers: actors x threads =
CPUs, so no actor's threads compete with another's.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from bertx.errors import BertxError

INSTALL = "pip install 'bertx[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise BertxError(f"--engine ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


@dataclass(frozen=True)
class Pool:
    workers: int  # actors, one model load each
    threads: int  # intra-op threads per actor


def split_cores(cpus: int, workers: Optional[int]) -> Pool:
    """Actors and threads per actor for `cpus` cores: by default one single-thread actor per core (the
    fastest split for batched inference: no intra-op synchronisation)."""
    cpus = max(1, int(cpus))
    if workers is not None and workers < 1:
        raise BertxError(f"--workers {workers}: give at least 1")
    workers = workers or cpus
    return Pool(workers, max(1, cpus // workers))


@contextmanager
def connected(address: Optional[str] = None, cpus: Optional[int] = None) -> Iterator[int]:
    """Join (or start) a Ray cluster for the block; yields the CPUs it offers."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        # Ray's own notices (deprecations, executor progress, actor-restart caveats) are not the user's business.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "CRITICAL")  # a failure reaches the user as one line of ours
        logging.getLogger("ray").setLevel(logging.ERROR)
        quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True, "logging_level": "ERROR"}
        try:
            with _stderr_silenced():  # Ray's C++ core announces its log level on stderr as it starts
                if address:
                    ray.init(address=address, **quiet)
                else:
                    ray.init(num_cpus=cpus or os.cpu_count(), **quiet)
        except ConnectionError as err:
            raise BertxError(f"--address {address}: cannot reach a Ray cluster ({str(err).splitlines()[0]})") from None
        except Exception as err:  # Ray raises many types for a bad address or a failed start
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BertxError(f"cannot start or join Ray{f' at {address}' if address else ''}: {detail}") from None
        started = True
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
    try:
        yield int(ray.cluster_resources().get("CPU", 1))
    finally:
        if started:
            ray.shutdown()


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
