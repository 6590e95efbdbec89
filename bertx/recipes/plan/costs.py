"""What each stage of a plan will cost on this machine, from the profile's measured seconds per token.

A training run costs its tokens x the measured seconds per training token, scaled by the model's share
of the probed encoder's work, plus the forward passes of its evaluations, plus a fixed start-up (loading,
tokenising, writing the folder). The constants below were fitted on measured plans (docs/results.md,
"Knowledge transfer as one system"); after each stage the plan multiplies later estimates by how far the
finished stages ran over or under (`Costs.calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

START_S = 10.0         # loading a model and the data, writing a run folder
EXPORT_S = 35.0        # int8 export of a 6-layer encoder: trace, calibrate, quantize, parity check
LATENCY_S = 2.0        # measuring single-input latency (load + 105 calls)
STUDENT_CHECK_S = 8.0  # scoring a student's export on dev and measuring its latency
TRAIN_EFFICIENCY = 0.8  # bertx's loop versus the probe's plain step ([CLS]-only last layer, frozen embeddings)
MLM_FACTOR = 1.25      # a masked-LM step versus a classification step of the same tokens

# Work of a student per token, as a share of the 6-layer teacher's (training and inference), and its
# expected single-input latency as a share of the teacher's model time once exported to int8.
STUDENT_WORK = {"bert-3": 0.55, "bert-2": 0.4, "bert-1": 0.22, "bilstm": 0.2, "cnn": 0.08, "bag": 0.03}
STUDENT_LATENCY = {"bert-3": 0.3, "bert-2": 0.2, "bert-1": 0.12, "bilstm": 0.2, "cnn": 0.06, "bag": 0.03}
# The order students are tried in: best expected dev score first (docs/results.md, distillation).
STUDENT_QUALITY = ["bert-3", "bert-2", "bilstm", "cnn", "bert-1", "bag"]


@dataclass
class Costs:
    probe: dict
    profile: dict
    scale: float = 1.0
    history: list = field(default_factory=list)

    # ---- building blocks --------------------------------------------------------------------------
    def train_s(self, tokens: float, share: float = 1.0) -> float:
        return tokens * self.probe["train_s_per_token"] * share * TRAIN_EFFICIENCY

    def infer_s(self, tokens: float, share: float = 1.0) -> float:
        return tokens * self.probe["infer_s_per_token"] * share

    @property
    def length(self) -> float:
        return self.profile["mean_length_at_max"]

    def evals_s(self, evals: int, share: float = 1.0) -> float:
        return evals * self.infer_s(self.profile["dev_examples"] * self.profile["dev_mean_length"], share)

    # ---- stages -----------------------------------------------------------------------------------
    def finetune(self, examples: int, epochs: float, evals: int, length: float | None = None, probe_head: bool = True) -> float:
        tokens = examples * (length or self.length)
        head = self.infer_s(min(examples, 1000) * (length or self.length)) if probe_head else 0.0
        return START_S + self.train_s(epochs * tokens) + self.evals_s(evals) + head

    def pretrain(self, steps: int, batch: int = 32, length: int = 128) -> float:
        return START_S + self.train_s(steps * batch * length) * MLM_FACTOR

    def rank(self, candidates: int, examples: int) -> float:
        return candidates * (3.0 + self.infer_s(min(examples, 2000) * self.length))

    def distill(self, student: str, transfer: int, epochs: float, evals: int, with_teacher: bool = True) -> float:
        share = STUDENT_WORK[student]
        labelling = self.infer_s(transfer * self.length) if with_teacher else 0.0
        return START_S + labelling + self.train_s(epochs * transfer * self.length, share) + self.evals_s(evals, share)

    def student(self, kind: str, transfer: int, epochs: float) -> float:
        """One student of the compress stage: distilled, exported, scored and timed."""
        return self.distill(kind, transfer, epochs, int(epochs)) + self.export(STUDENT_WORK[kind]) + STUDENT_CHECK_S

    def export(self, share: float = 1.0) -> float:
        return 8.0 + EXPORT_S * share

    def ship(self, export: bool) -> float:
        """Copying (or, for a teacher, making) the export, scoring it on dev, measuring its latency."""
        return LATENCY_S + 2.0 + (self.export() if export else 0.0)

    # ---- calibration ------------------------------------------------------------------------------
    def calibrate(self, estimated: float, measured: float) -> None:
        """Later estimates follow how far the finished training stages ran from theirs."""
        if estimated > 30:
            self.history.append(measured / estimated)
            self.scale = sum(self.history) / len(self.history)


def minutes(seconds: float) -> float:
    return round(seconds / 60, 1)
