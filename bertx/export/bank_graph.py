"""The adapter bank as one ONNX graph: the base weights inside, every adapter's stacked factors as inputs.

    inputs   input_ids, attention_mask[, token_type_ids]    (batch, sequence)
             rows                                          (batch,)  each row's slot in the bank
             lora.<target>.A (N, in, r), .B (N, r, out)    per LoRA target, B pre-scaled
             head.<module>.W (N, out, in), .b (N, out)     per module the adapters save in full
    output   logits                                        (batch, widest head)

Inside, each adapted Linear is the base MatMul plus Gather(A, rows) and Gather(B, rows) and two batched
MatMuls; each head gathers its row's weights. Why the factors are inputs and not initializers: adding or
removing an adapter changes only the arrays a call passes, never the graph, so one graph traced when the
server starts serves every version of the bank, and a batch passes the snapshot it started with.
ONNX Runtime runs this graph 2-3x faster than PyTorch eager at batch 1 on the CPU, which is what
single-request latency is made of.
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from torch import nn

from bertx.errors import BertxError


def stack_inputs(state) -> dict[str, np.ndarray]:
    """A snapshot's stacked tensors as the graph's factor inputs, in the graph's order (views, no copies)."""
    inputs = {}
    for path in sorted(state.lora):
        inputs[f"lora.{path}.A"], inputs[f"lora.{path}.B"] = (t.numpy() for t in state.lora[path])
    for path in sorted(state.heads):
        inputs[f"head.{path}.W"], inputs[f"head.{path}.b"] = (t.numpy() for t in state.heads[path])
    return inputs


class _Traced(nn.Module):
    """Positional tensors in, logits out: what the exporter records."""

    def __init__(self, bank, names: list[str], targets: list[str], heads: list[str]):
        super().__init__()
        self.bank, self.names, self.targets, self.heads = bank, names, targets, heads
        self.model = bank.model  # registered, so the exporter sees the base weights as the graph's own

    def forward(self, *inputs):
        from bertx.models.lora_bank import BankState

        batch = dict(zip(self.names, inputs))
        rows, stacks = inputs[len(self.names)], inputs[len(self.names) + 1 :]
        lora = {path: (stacks[2 * i], stacks[2 * i + 1]) for i, path in enumerate(self.targets)}
        offset = 2 * len(self.targets)
        heads = {path: (stacks[offset + 2 * i], stacks[offset + 2 * i + 1]) for i, path in enumerate(self.heads)}
        return self.bank.traced(BankState(lora=lora, heads=heads), rows, **batch)


class BankGraph:
    """`logits(state, slots, batch)`: the bank's forward pass, run by ONNX Runtime."""

    def __init__(self, bank, tokenizer, opset: int = 17, threads: int | None = None):
        from bertx.export.one_model import input_names, trace
        from bertx.inference.onnx_model import cpu_session

        state = bank.state
        if not state.names:
            raise BertxError("an empty adapter bank has nothing to trace")
        self.targets, self.heads = sorted(state.lora), sorted(state.heads)
        model = bank.model
        model.set_attn_implementation("eager")  # plain MatMul/Softmax: what ONNX Runtime fuses
        self.names = input_names(model)
        # The sample snapshot: three slots and one more rank than the bank has, so no axis of the trace is 1
        # or equal to another by chance (the exporter would take it for a constant).
        sample = _sample_state(state)
        extra = {"rows": (torch.tensor([0, 2]), {0: "batch"})}
        for name, array in stack_inputs(sample).items():
            kind = name.rsplit(".", 1)[1]
            axes = {0: "adapters"}
            if kind in ("A", "B"):
                axes[2 if kind == "A" else 1] = f"rank_{name}"
            elif kind in ("W", "b"):
                axes[1] = f"width_{name.rsplit('.', 1)[0]}"
            extra[name] = (torch.from_numpy(array), axes)
        buffer = io.BytesIO()
        trace(
            _Traced(bank, self.names, self.targets, self.heads).eval(),
            tokenizer,
            self.names,
            {"logits": {0: "batch", 1: "labels"}},
            buffer,
            opset,
            extra,
        )
        # Its worker threads spin between operators, even in the server (where single-model graphs do not):
        # the bank's graph has three times a merged model's operators, most of them small, and waking the
        # threads for each cost more than spinning takes from the event loop. Measured on 2 cores, 100
        # adapters: p50 at concurrency 1 4.7 ms spinning vs 5.7 ms not, concurrency-32 throughput 322 vs 289/s.
        self.session = cpu_session(buffer.getvalue(), threads, what="the adapter bank's graph", spin=os.environ.get("BERTX_BANK_SPIN", "1") != "0")
        self.graph_bytes = len(buffer.getvalue())

    def logits(self, state, slots: list[int], batch: dict[str, torch.Tensor]) -> np.ndarray:
        if sorted(state.lora) != self.targets or sorted(state.heads) != self.heads:
            raise BertxError("the bank's adapted modules changed since its graph was traced")
        feed = {name: batch[name].numpy().astype(np.int64, copy=False) for name in self.names}
        feed["rows"] = np.asarray(slots, dtype=np.int64)
        feed.update(stack_inputs(state))
        return self.session.run(["logits"], feed)[0]


def _sample_state(state):
    from bertx.models.lora_bank import BankState, zero_padded

    pick = [0, min(1, len(state.names) - 1), 0]
    lora = {}
    for path, (A, B) in state.lora.items():
        r = A.shape[2] + 1
        lora[path] = (zero_padded(A[pick], 2, r).contiguous(), zero_padded(B[pick], 1, r).contiguous())
    heads = {path: (W[pick].contiguous(), b[pick].contiguous()) for path, (W, b) in state.heads.items()}
    return BankState(names=("a", "b", "c"), lora=lora, heads=heads)
