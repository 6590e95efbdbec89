"""One process per output folder: `FOLDER/.bertx.lock` holds the owner's PID, host and process start time.

A lock whose process is gone (same host, PID no longer alive, or reused by a later process) is stale:
it is taken over and the caller is told. A live owner's lock refuses the second process with one line.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from bertx.errors import BertxError
from bertx.runfolder.files import LOCK_FILE


class FolderLock:
    """One run per output folder: `OUTPUT/.bertx.lock` holds the owner's PID, host and start time.

    A lock whose process is gone (same host, PID no longer alive) is stale: it is taken over and the
    run says so. A live owner's lock refuses the second run.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE
        self.held = False
        self.took_over: dict | None = None

    def acquire(self) -> "FolderLock":
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "process_start": process_start(os.getpid()),
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise BertxError(
                        f"{self.path.parent}: another bertx run (pid {owner.get('pid')} on {owner.get('host')}, since "
                        f"{owner.get('started')}) is using this folder; wait for it or choose another --output"
                    ) from None
                self.took_over = owner or {}
                self.path.unlink(missing_ok=True)
                continue
            except OSError as err:
                raise BertxError(f"{self.path.parent}: cannot write in the output folder ({(err.strerror or str(err)).lower()})") from None
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(mine, handle)
            self.held = True
            return self
        raise BertxError(f"{self.path}: another run took the folder at the same moment; choose another --output")

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            return owner if isinstance(owner, dict) else None
        except (OSError, ValueError):
            return None  # unreadable or half-written: its writer died before finishing it

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, Linux), to tell it from a later one with its PID."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat; the split starts at field 3
    except (OSError, ValueError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked from here: assume it runs
    recorded = owner.get("process_start")
    if recorded is not None and isinstance(owner.get("pid"), int):
        current = process_start(owner["pid"])
        if current is not None and current != recorded:
            return False  # the PID now belongs to another process: the owner is gone
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except (KeyError, ValueError, TypeError):
        return False  # a malformed lock: no owner can be named, so none is waited for
    return True
