"""An OpenVINO export that stands in for the HF task model it was exported from (`bertx export --format openvino`).

Like `OnnxTaskModel`, it takes the model's tensors and returns its output type, so every predictor,
decoder, metric and the server run it unchanged. OpenVINO's CPU plugin picks its own inference precision:
on CPUs with AVX512-BF16 or AMX it computes in bf16 unless told otherwise, which is where most of its
speed over ONNX Runtime fp32 comes from on such machines; the precision it ran at is in `precision`, and
the export's parity check measures what it costs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from bertx.errors import BertxError
from bertx.inference.graph_io import int64_feed, wrap_outputs

PRECISIONS = ("auto", "f32", "bf16")


def openvino():
    try:
        import openvino as ov
    except ImportError:
        raise BertxError("OpenVINO exports need the openvino package: pip install 'bertx[openvino]'") from None
    return ov


class OpenVinoTaskModel(torch.nn.Module):
    """A read-only task model backed by a compiled OpenVINO model on the CPU."""

    runtime = "openvino"

    def __init__(self, graph: str | Path, config, threads: int | None = None, precision: str | None = None):
        super().__init__()
        ov = openvino()
        precision = precision or os.environ.get("BERTX_OPENVINO_PRECISION", "auto")
        if precision not in PRECISIONS:
            raise BertxError(f"OpenVINO precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        properties = {"PERFORMANCE_HINT": "LATENCY"}  # one request at a time uses every core, as ONNX Runtime does
        threads = threads or int(os.environ.get("BERTX_ONNX_THREADS", "0"))
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        if precision != "auto":
            properties["INFERENCE_PRECISION_HINT"] = precision
        try:
            core = ov.Core()
            model = core.read_model(str(graph))
            self.compiled = core.compile_model(model, "CPU", properties)
        except Exception as err:  # OpenVINO raises its own types for a broken or foreign file
            raise BertxError(f"{graph}: not a loadable OpenVINO model ({str(err).strip().splitlines()[0][:200]})") from None
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # "f32", "bf16"
        self.config = config
        self.input_names = [port.get_any_name() for port in model.inputs]
        self.output_names = [port.get_any_name() for port in model.outputs]
        self._requests = threading.local()  # an infer request serves one thread at a time
        self.anchor = torch.nn.Parameter(torch.empty(0), requires_grad=False)  # "cpu", for the predictors
        self.eval()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_ignored):
        feed = int64_feed(self.input_names, input_ids, attention_mask, token_type_ids)
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        results = request.infer(feed)
        # Copied: the request reuses its output buffers on its next call.
        values = {name: torch.from_numpy(np.array(results[self.compiled.output(name)])) for name in self.output_names}
        return wrap_outputs(values)


def convert(onnx_graph: Path, target: Path) -> None:
    """An ONNX graph -> OpenVINO IR (xml + bin), weights kept in fp32."""
    ov = openvino()
    ov.save_model(ov.convert_model(str(onnx_graph)), str(target), compress_to_fp16=False)
