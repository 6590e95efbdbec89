"""The options of the commands that use a trained folder: `bertx export` and `bertx serve`. Each field is one
command-line option (`--max-wait-ms`), its type, bounds, default and help declared once, here."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from bertx.config.base import StrictModel


class ExportConfig(StrictModel):
    output: str = Field(description="Folder for the export.")
    quantize: Literal["none", "int8"] = Field(
        "none", description="none (fp32) or int8 (dynamic, per-channel weights; sensitive layers kept in fp32)."
    )
    format: Literal["onnx", "openvino"] = Field(
        "onnx", description="onnx, or openvino (fp32 graph as OpenVINO IR; its CPU plugin may compute in bf16)."
    )
    opset: int = Field(17, ge=14, le=20, description="ONNX opset.")
    max_metric_drop: float = Field(
        0.5, ge=0.0, description="Fail when the task's main metric on the labelled sample falls by more points (the default gate)."
    )
    min_agreement: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="Also fail when a smaller share of sample predictions agree with PyTorch (e.g. 0.99)."
    )
    sample: Optional[str] = Field(None, description="Labelled file for the parity check (default: the run's dev file).")
    sample_size: int = Field(1000, ge=1, description="Examples in the parity check.")
    fp32_groups: int = Field(
        5,
        ge=0,
        description="int8: most groups of MatMuls (a layer's attention, feed-forward in or out) kept in fp32, "
        "chosen by calibration on training text; 0: all int8.",
    )
    overwrite: bool = Field(False, description="Replace an earlier export in --output.")


class ServeConfig(StrictModel):
    host: str = Field("127.0.0.1", description="Address to bind (loopback unless told otherwise).")
    port: int = Field(8000, ge=0, le=65535, description="Port.")
    max_batch_size: int = Field(32, ge=1, description="Most inputs per model call (micro-batching).")
    max_wait_ms: float = Field(5.0, ge=0.0, description="How long a lone input waits for others to batch with.")
    max_queue: int = Field(1024, ge=1, description="Most inputs waiting per model (a bound on memory); beyond: 503.")
    max_inputs: int = Field(64, ge=1, description="Most inputs in one request (413 beyond).")
    max_body_mb: float = Field(
        8.0, ge=0.001, description="Largest request body in MB (413 beyond); long texts are truncated to the model's length, never refused."
    )
    deadline_ms: float = Field(
        2000.0,
        ge=1.0,
        description="A request whose expected queue wait is longer gets 503 + Retry-After at once: accepted requests wait at most about this long.",
    )
    admin_token_file: Optional[str] = Field(
        None,
        description="Turn on POST/DELETE /v1/adapters/NAME (add or remove adapters of a served folder of adapters, live) for loopback "
        "clients sending `Authorization: Bearer TOKEN`, TOKEN read from this file.",
    )
    adapter_runtime: Literal["onnx", "pytorch"] = Field(
        "onnx", description="What runs a served folder of adapters: onnx (one graph, 2-3x faster on CPUs) or pytorch."
    )
