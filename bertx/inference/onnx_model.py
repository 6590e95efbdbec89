"""An exported ONNX graph that stands in for the HF task model it was exported from.

`OnnxTaskModel(**batch)` takes the same tensors as the PyTorch model and returns the same output type
(`SequenceClassifierOutput`, `TokenClassifierOutput`, `QuestionAnsweringModelOutput`), so every bertx
predictor, decoder and metric runs an export unchanged: length-sorted batching, Viterbi tags for NER,
n-best spans for QA. ONNX Runtime runs the graph on the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from bertx.errors import BertxError
from bertx.inference.graph_io import int64_feed, wrap_outputs


class OnnxTaskModel(torch.nn.Module):
    """A read-only task model backed by an ONNX Runtime session."""

    runtime = "onnx"  # what the server reports and what `bertx export` refuses to export again

    def __init__(self, graph: str | Path, config, threads: int | None = None):
        super().__init__()
        self.session = cpu_session(graph, threads)
        self.config = config
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        # The predictors ask a model for its device through its parameters: an empty one says "cpu".
        self.anchor = torch.nn.Parameter(torch.empty(0), requires_grad=False)
        self.eval()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_ignored):
        feed = int64_feed(self.input_names, input_ids, attention_mask, token_type_ids)
        values = dict(zip(self.output_names, self.session.run(None, feed)))
        return wrap_outputs({name: torch.from_numpy(v) for name, v in values.items()})


def cpu_session(graph: str | Path | bytes, threads: int | None = None, what: str = "", spin: bool | None = None):
    """An ONNX Runtime CPU session on a graph file (or its bytes), every optimisation on; worker threads
    spin between operators when `spin` (None: unless BERTX_ONNX_SPIN=0)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BertxError("running an ONNX graph needs onnxruntime: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or int(os.environ.get("BERTX_ONNX_THREADS", "0"))  # 0: all cores
    if spin is False or (spin is None and os.environ.get("BERTX_ONNX_SPIN", "1") == "0"):
        # Idle worker threads spin for a while after each run by default: fast for back-to-back batches,
        # but in a server they take the CPU the event loop needs to parse and answer requests.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types for a broken or foreign graph
        raise BertxError(f"{what or graph}: not a loadable ONNX graph ({str(err).strip().splitlines()[0][:200]})") from None
