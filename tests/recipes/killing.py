"""Kill a training run with SIGKILL right after optimizer step N, in a child process (for resume tests)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The child counts optimizer steps through the progress bar of the one training loop (`training/fit.py`), which
# advances once per step. With `inside` ("module:function"), the counting bar is installed only once that
# function is called: `bertx plan` is killed in its teacher stage, not in the baseline before it.
CHILD = r"""
import importlib, json, os, signal, sys
import bertx
recipe_name, config, kill_at, inside = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
bars = importlib.import_module("bertx.training.fit")
class Bar(bars.tqdm):
    def update(self, n=1):
        super().update(n)
        if self.n == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
def install():
    bars.tqdm = Bar
if inside:
    module, name = inside.split(":")
    module = importlib.import_module(module)
    original = getattr(module, name)
    def wrapped(*args, **kwargs):
        install()
        return original(*args, **kwargs)
    setattr(module, name, wrapped)
else:
    install()
getattr(bertx, recipe_name)(config, show_progress=True)
"""


def kill_after_step(recipe: str, config: dict, step: int, inside: str = "") -> None:
    """Run `bertx.<recipe>(config)` in a child process and kill it right after optimizer step `step`, counted
    from the call of `inside` when given."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, recipe, json.dumps(config), str(step), inside],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
