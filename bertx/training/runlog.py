"""The run log: one JSON object per line in `OUTPUT/log.jsonl`, appended as training goes."""

from __future__ import annotations

import json
import time
from pathlib import Path


class RunLog:
    def __init__(self, path: Path, enabled: bool = True, mirror=None):
        self.path, self.enabled, self.mirror = path, enabled, mirror  # mirror: each line also goes there (trackers)

    def write(self, **record) -> None:
        if not self.enabled:
            return
        record.setdefault("time", round(time.time(), 3))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")
        if self.mirror is not None:
            self.mirror(record)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after `step`: a resumed run replays those steps and logs them again."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if record.get("step", 0) <= step:
                kept.append(line)
        self.path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
