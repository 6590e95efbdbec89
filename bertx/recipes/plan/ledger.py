"""plan.json as typed records: what a stage left (`StageRecord`) and what the plan decided (`Decision`).

The ledger itself stays the JSON document a rerun reads back; these records are the one place that says
what a line of it holds, so every writer builds a line the same way and every reader gets named fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from bertx import runfolder

PLAN_FILE = "plan.json"
PARTIAL = "compress-students"  # the compress stage's line while it runs: the students measured so far


@dataclass(frozen=True)
class StageRecord:
    """One stage's line in plan.json: done (with what it measured) or skipped (with why)."""

    status: Literal["done", "skipped"]
    seconds: float
    estimate_s: Optional[float] = None
    trains: Optional[bool] = None  # done: whether its time calibrates the training costs (None: not said)
    result: Optional[dict] = None
    reason: Optional[str] = None

    @classmethod
    def done(cls, seconds: float, estimate_s: float | None, result: dict, trains: bool | None = None) -> "StageRecord":
        return cls("done", round(seconds, 1), estimate_s, trains, result)

    @classmethod
    def skipped(cls, reason: str, estimate_s: float | None) -> "StageRecord":
        return cls("skipped", 0.0, estimate_s, reason=reason)

    def as_json(self) -> dict:
        if self.status == "skipped":
            return {"status": "skipped", "reason": self.reason, "estimate_s": self.estimate_s, "seconds": self.seconds}
        line = {"status": "done", "estimate_s": self.estimate_s, "seconds": self.seconds}
        if self.trains is not None:
            line["trains"] = self.trains
        return {**line, "result": self.result}

    @classmethod
    def of(cls, ledger: dict, stage: str) -> "StageRecord | None":
        """The stage's record, or None while it has not finished (or is a partial line such as compress's)."""
        raw = ledger["stages"].get(stage) or {}
        if raw.get("status") not in ("done", "skipped"):
            return None
        return cls(raw["status"], raw.get("seconds") or 0.0, raw.get("estimate_s"), raw.get("trains"), raw.get("result"), raw.get("reason"))


@dataclass(frozen=True)
class Decision:
    """A choice the plan made, with its measured reason: one line of plan.json's `decisions`."""

    stage: str
    decision: str
    why: str

    def as_json(self) -> dict:
        return {"stage": self.stage, "decision": self.decision, "why": self.why}


def record(ledger: dict, stage: str, line: StageRecord) -> None:
    ledger["stages"][stage] = line.as_json()


def save_ledger(out: Path, ledger: dict) -> None:
    """plan.json, rewritten whole after every stage."""
    runfolder.write_json(out / PLAN_FILE, ledger)


def elapsed(ledger: dict) -> float:
    """Seconds the plan's recorded stages took."""
    return round(sum(r.get("seconds") or 0.0 for r in ledger["stages"].values()), 1)
