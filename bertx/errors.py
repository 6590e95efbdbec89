"""User-facing errors: one clear line that names the file, the line and the problem.

The CLI catches `BertxError` and prints its message without a traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import signal
from pathlib import Path

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # 128 + the signal, as shells report them


class BertxError(Exception):
    """A problem with the user's input (data, config, model folder, output folder)."""


class DataError(BertxError):
    """A problem in a data file, located by file and line."""

    def __init__(self, path: str | Path, line: int | str | None, problem: str):
        # `line` is a line number, or for formats without useful lines (SQuAD JSON) a place such as
        # "question 56be4db0acb8001400a502ec".
        self.path, self.line, self.problem = str(path), line, problem
        if line is None:
            where = str(path)
        elif isinstance(line, int):
            where = f"{path}:{line}"
        else:
            where = f"{path} ({line})"
        super().__init__(f"{where}: {problem}")


class Terminated(Exception):
    """SIGTERM reached a command outside a training loop: raised so that every `finally` runs and the
    one writer removes its temporaries, then the command exits 143."""

    exit_code = EXIT_CODES[signal.SIGTERM]


class RunStopped(Exception):
    """A stop signal ended the run; `step` is the checkpointed step (None: before training began)."""

    def __init__(self, signum: int, step: int | None, output: Path, hint: str = "resume with --resume"):
        self.signum, self.step, self.output, self.hint = signum, step, output, hint
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))
        where = f"stopped at step {step}; {hint}" if step is not None else "stopped before training began"
        super().__init__(where)

    def in_matrix(self, folder: Path) -> "RunStopped":
        """The same stop, as a matrix command (intermediate, transfer) reports it: rerunning continues it."""
        return RunStopped(self.signum, self.step, folder, "run the same command again to continue (finished runs are reused)")
