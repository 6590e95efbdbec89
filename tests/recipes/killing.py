"""Kill a training run with SIGKILL right after optimizer step N, in a child process (for resume tests)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The child counts optimizer steps through the recipe's progress bar, which advances once per step.
CHILD = r"""
import importlib, json, os, signal, sys
import bertx
recipe_name, config, kill_at = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
recipe = importlib.import_module(f"bertx.recipes.{recipe_name}")
class Bar(recipe.tqdm):
    def update(self, n=1):
        super().update(n)
        if self.n == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
recipe.tqdm = Bar
getattr(bertx, recipe_name)(config, show_progress=True)
"""


def kill_after_step(recipe: str, config: dict, step: int) -> None:
    """Run `bertx.<recipe>(config)` in a child process and kill it right after optimizer step `step`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, recipe, json.dumps(config), str(step)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
