"""The one channel library code speaks through: `say(line)`.

Lines go through `tqdm.write`, so a progress bar on the terminal is redrawn below them instead of being
torn; `err=True` sends warnings to standard error. Functions that report progress take a `log` callback
whose default is `say`, so a caller (a test, a notebook, a service) can route or silence them.
"""

from __future__ import annotations

import sys


def say(line: str, err: bool = False) -> None:
    from tqdm.auto import tqdm

    stream = sys.stderr if err else sys.stdout
    tqdm.write(line, file=stream)
    stream.flush()
