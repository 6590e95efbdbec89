"""What each stage of a plan will cost on this machine, from the profile's measured seconds per token.

A training run costs its sequences x the measured seconds per training sequence at their lengths (the
probe times a few lengths; a length distribution is priced by its quantiles), scaled by the model's share
of the probed encoder's work, plus the forward passes of its evaluations, plus a fixed start-up (loading,
tokenising, writing the folder). The constants below were fitted on measured plans (docs/results.md,
"Knowledge transfer as one system"); after each stage the plan multiplies later estimates by how far the
finished stages ran over or under (`Costs.calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

START_S = 5.0  # loading a model and the data, writing a run folder
EXPORT_S = 35.0  # int8 export of a 6-layer encoder: trace, calibrate, quantize, parity check
LATENCY_S = 2.0  # measuring single-input latency (load + 105 calls)
STUDENT_CHECK_S = 8.0  # scoring a student's export on dev and measuring its latency
TRAIN_EFFICIENCY = 0.8  # bertx's loop versus the probe's plain step ([CLS]-only last layer, frozen embeddings)
VOCAB_S_PER_LINE = 4e-4  # retraining a WordPiece on a line of text and counting its pieces (2 cores)
MLM_FACTOR = 1.25  # a masked-LM step versus a classification step of the same tokens

# Work of a student per token, as a share of the 6-layer teacher's (training and inference), and its
# expected single-input latency once exported to int8, as a share of the PyTorch teacher's (plus 0.2 ms of
# tokenising and decoding): fitted on the students of the four measured plans, each timed on a quiet machine.
STUDENT_WORK = {"bert-5": 0.88, "bert-4": 0.72, "bert-3": 0.55, "bert-2": 0.4, "bert-1": 0.22, "bilstm": 0.2, "cnn": 0.08, "bag": 0.03}
STUDENT_LATENCY = {"bert-5": 0.23, "bert-4": 0.19, "bert-3": 0.15, "bert-2": 0.11, "bert-1": 0.07, "bilstm": 0.15, "cnn": 0.08, "bag": 0.03}
# The order students are tried in: best expected dev score first (the distillation studies); the widest BERT
# students first, so that the widest one whose measured latency meets `ship` is the one trained.
STUDENT_QUALITY = ["bert-5", "bert-4", "bert-3", "bert-2", "bilstm", "cnn", "bert-1", "bag"]


@dataclass
class Costs:
    probe: dict
    profile: dict
    scale: float = 1.0
    history: list = field(default_factory=list)

    # ---- building blocks --------------------------------------------------------------------------
    @property
    def points(self) -> list[dict]:
        """The probe's lengths with seconds per sequence (a ledger from before the multi-length probe has one)."""
        if self.probe.get("points"):
            return self.probe["points"]
        length = self.probe["length"]
        return [{"length": length, "train_s": self.probe["train_s_per_token"] * length, "infer_s": self.probe["infer_s_per_token"] * length}]

    def per_sequence(self, key: str, length: float) -> float:
        """Seconds per sequence of `length` tokens: the per-token rate interpolated between the probed lengths
        (constant beyond them). A step's cost is not linear in length: short batches pay fixed costs per step,
        long ones pay for attention and memory traffic (training at 256 tokens costs 3x more per token than at 128)."""
        rates = [(p["length"], p[key] / p["length"]) for p in self.points]
        if length <= rates[0][0]:
            return rates[0][1] * length
        for (l0, r0), (l1, r1) in zip(rates, rates[1:]):
            if length <= l1:
                return (r0 + (r1 - r0) * (length - l0) / (l1 - l0)) * length
        return rates[-1][1] * length

    def mean_cost(self, key: str, lengths) -> float:
        """Mean seconds per sequence over `lengths`: one length, or quantiles of a length distribution."""
        lengths = [lengths] if isinstance(lengths, (int, float)) else list(lengths)
        return sum(self.per_sequence(key, n) for n in lengths) / len(lengths)

    def train_s(self, sequences: float, lengths=None, share: float = 1.0) -> float:
        return sequences * self.mean_cost("train_s", self.lengths if lengths is None else lengths) * share * TRAIN_EFFICIENCY

    def infer_s(self, sequences: float, lengths=None, share: float = 1.0) -> float:
        return sequences * self.mean_cost("infer_s", self.lengths if lengths is None else lengths) * share

    def quantiles(self, key: str = "length_quantiles", max_length: int | None = None):
        """The training (or dev) inputs' lengths within `max_length` (default: the plan's), as quantiles;
        the mean in a ledger from before they were recorded."""
        found = self.profile.get(key)
        if not found:
            return self.profile["mean_length_at_max" if key == "length_quantiles" else "dev_mean_length"]
        return [min(n, max_length or self.profile["max_length"]) for n in found]

    @property
    def lengths(self):
        return self.quantiles()

    def evals_s(self, evals: int, share: float = 1.0) -> float:
        return evals * self.infer_s(self.profile["dev_examples"], self.quantiles("dev_length_quantiles"), share)

    # ---- stages -----------------------------------------------------------------------------------
    def finetune(self, examples: int, epochs: float, evals: int, lengths=None, probe_head: bool = True) -> float:
        head = self.infer_s(min(examples, 1000), lengths) if probe_head else 0.0
        return START_S + self.train_s(epochs * examples, lengths) + self.evals_s(evals) + head

    def pretrain(self, steps: int, batch: int = 32, length: int = 128) -> float:
        return START_S + self.train_s(steps * batch, length) * MLM_FACTOR

    def rank(self, candidates: int, examples: int) -> float:
        return candidates * (3.0 + self.infer_s(min(examples, 2000)))

    def distill(self, student: str, transfer: int, epochs: float, evals: int, with_teacher: bool = True) -> float:
        share = STUDENT_WORK[student]
        labelling = self.infer_s(transfer) if with_teacher else 0.0
        return START_S + labelling + self.train_s(epochs * transfer, share=share) + self.evals_s(evals, share)

    def measure_student(self, kind: str) -> float:
        """Building a student of `kind` (one step), exporting it to int8 and timing it beside the baseline."""
        return START_S + self.export(STUDENT_WORK[kind]) + 2 * LATENCY_S

    def student(self, kind: str, transfer: int, epochs: float) -> float:
        """One student of the compress stage: distilled, exported, scored and timed."""
        return self.distill(kind, transfer, epochs, int(epochs)) + self.export(STUDENT_WORK[kind]) + STUDENT_CHECK_S

    def export(self, share: float = 1.0) -> float:
        return 8.0 + EXPORT_S * share

    def vocabulary(self, lines: int) -> float:
        """`vocab extend` on the target's text: a tokenizer retrained on it, pieces counted twice, a folder written."""
        return 20.0 + VOCAB_S_PER_LINE * lines

    def score(self, examples: int) -> float:
        """Scoring the baseline, the teacher and the shipped model on the held-out examples, with intervals."""
        return 3 * (LATENCY_S + self.infer_s(examples, self.quantiles("dev_length_quantiles"))) + 5.0

    def ship(self, export: bool) -> float:
        """Copying (or, for a teacher, making) the export, scoring it on dev, measuring its latency."""
        return LATENCY_S + 2.0 + (self.export() if export else 0.0)

    # ---- calibration ------------------------------------------------------------------------------
    def calibrate(self, estimated: float, measured: float) -> None:
        """Later estimates follow how far the finished training stages ran from theirs, weighted by their
        size: a short stage, mostly fixed costs, must not rescale the long ones that follow."""
        if estimated > 0:
            self.history.append((estimated, measured))
            self.scale = sum(m for _, m in self.history) / sum(e for e, _ in self.history)


def minutes(seconds: float) -> float:
    return round(seconds / 60, 1)
